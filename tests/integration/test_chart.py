"""The Helm chart without a cluster: `helm lint`, every rendered object valid against the Kubernetes
schemas (kubernetes-validate), values refused outside the schema, CRDs and README in step with their
sources, a ClusterRole holding nothing the operator does not call, the alerts checked and tested
by promtool, and a dashboard querying only metrics the operator exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from privatevault.api.v1alpha1.evidenceexport import Destination
from tests.charts import CHART, EVERYTHING, EXPORTED, helm, metric_names, of_kind, render, set_args
from tests.support import REPO

pytestmark = pytest.mark.integration

#: Built-in kinds are validated against this Kubernetes version's schemas (the bench's minor).
KUBERNETES = "1.36"
#: Kinds of other projects' CRDs: not in the Kubernetes schemas.
FOREIGN = {"ServiceMonitor", "PrometheusRule"}


def test_helm_lint_is_clean() -> None:
    done = helm("lint", "--strict", str(CHART), *set_args(EVERYTHING))
    assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("values", [{}, EVERYTHING], ids=["defaults", "everything"])
def test_rendered_objects_are_valid_kubernetes(values: dict[str, str]) -> None:
    objects = render(values)
    kinds = {obj["kind"] for obj in objects}
    assert {"ClusterRole", "Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget", "Job"} <= kinds
    for obj in objects:
        if obj["kind"] in FOREIGN:
            continue
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_the_deployment_is_locked_down() -> None:
    objects = render({**EVERYTHING, "securityContext.seLinuxType": "privatevault_operator_t"})
    for workload in of_kind(objects, "Deployment") + of_kind(objects, "Job"):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["securityContext"]["seLinuxOptions"] == {"type": "privatevault_operator_t"}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
    operator = of_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]
    container = operator["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    # No static Vault token: Kubernetes auth with a projected token of the pod's own ServiceAccount.
    assert "PRIVATEVAULT_VAULT_TOKEN_FILE" not in env and env["PRIVATEVAULT_VAULT_AUTH_ROLE"]
    projected = {v["name"]: v for v in operator["volumes"]}["vault-token"]["projected"]["sources"][0]
    assert projected["serviceAccountToken"]["path"] == "token"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "api", "scheme": "HTTPS"}
    assert container["args"][:2] == ["operator", "run"] and "command" not in container  # the image's entrypoint
    assert f"--liveness=http://0.0.0.0:{container['ports'][1]['containerPort']}/healthz" in container["args"]
    assert container["resources"]["limits"]["memory"]


def _evidence(objects: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The operator's evidence volume and its mount."""
    pod = of_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]
    volume = {v["name"]: v for v in pod["volumes"]}["evidence"]
    mount = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}["evidence"]
    return volume, mount


def test_evidence_bundles_go_to_an_emptydir_by_default_at_the_default_destination() -> None:
    objects = render()
    volume, mount = _evidence(objects)
    # EvidenceExport's spec.destination.path defaults here (api/v1alpha1/evidenceexport.py).
    assert mount["mountPath"] == Destination().path
    assert volume == {"name": "evidence", "emptyDir": {"sizeLimit": "1Gi"}}
    assert of_kind(objects, "PersistentVolumeClaim") == []


def test_evidence_bundles_on_a_claim_the_chart_makes_and_keeps() -> None:
    objects = render({"evidence.persistence.enabled": "true", "evidence.persistence.storageClassName": "fast"})
    volume, _ = _evidence(objects)
    [claim] = of_kind(objects, "PersistentVolumeClaim")
    assert volume["persistentVolumeClaim"] == {"claimName": "pv-privatevault-evidence"}
    assert claim["metadata"]["name"] == "pv-privatevault-evidence"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"  # helm uninstall keeps bundles
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "storageClassName": "fast",
        "resources": {"requests": {"storage": "10Gi"}},
    }
    kubernetes_validate.validate(claim, KUBERNETES, strict=True)


def test_evidence_bundles_on_an_existing_claim() -> None:
    objects = render(
        {
            "evidence.persistence.enabled": "true",
            "evidence.persistence.existingClaim": "audit-bundles",
            "evidence.mountPath": "/srv/evidence",
        }
    )
    volume, mount = _evidence(objects)
    assert volume["persistentVolumeClaim"] == {"claimName": "audit-bundles"}
    assert mount["mountPath"] == "/srv/evidence"
    assert of_kind(objects, "PersistentVolumeClaim") == []


def test_the_migration_job_runs_as_the_owner_before_install_and_upgrade() -> None:
    job = of_kind(render(), "Job")[0]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]
    assert container["args"][:2] == ["ledger", "migrate"] and "command" not in container
    assert container["args"][2] == "--owner-dsn-file=/var/run/secrets/privatevault/ledger-owner/dsn"
    assert pod["volumes"][0]["secret"]["secretName"] == "privatevault-ledger-owner"


@pytest.mark.parametrize(
    ("values", "refusal"),
    [
        ({"unknown": "1"}, "additional properties 'unknown' not allowed"),
        ({"vault.token": "s.abc"}, "additional properties 'token' not allowed"),
        ({"image.pullPolicy": "Sometimes"}, "pullPolicy"),
        ({"securityContext.seLinuxType": "spc"}, "seLinuxType"),
        ({"replicaCount": "6"}, "replicaCount"),
        ({"evidence.mountPath": "relative"}, "mountPath"),
        ({"evidence.persistence.accessModes[0]": "ReadMostly"}, "accessModes"),
        ({"metrics.prometheusRule.complianceScoreMin": "101"}, "complianceScoreMin"),
    ],
)
def test_values_outside_the_schema_are_refused(values: dict[str, str], refusal: str) -> None:
    done = helm("template", "pv", str(CHART), *[f"--set={k}={v}" for k, v in values.items()], check=False)
    assert done.returncode != 0 and refusal in done.stderr, done.stderr


def test_global_is_open_to_umbrella_charts() -> None:
    assert render({"global.imageRegistry": "registry.example", "global.anything.nested": "x"})


def test_the_chart_crds_are_the_generated_ones() -> None:
    generated = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    assert sorted(p.name for p in (CHART / "crds").glob("*.yaml")) == generated
    for name in generated:
        assert (CHART / "crds" / name).read_bytes() == (REPO / "crds" / name).read_bytes(), (
            f"charts/privatevault/crds/{name} differs from crds/{name}: cp crds/*.yaml charts/privatevault/crds/"
        )


def test_the_readme_values_table_is_generated_from_the_schema() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "chart_readme.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    schema = json.loads((CHART / "values.schema.json").read_text())

    def closed(node: dict[str, Any], path: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path or 'the root'} must refuse unknown keys"
            for key, child in node["properties"].items():
                if f"{path}.{key}".lstrip(".") != "global":
                    closed(child, f"{path}.{key}")

    closed(schema, "")


# -- least privilege ------------------------------------------------------------------------------

#: Every (API group, resource, verb) the ClusterRole and Role may grant, with the code that needs it.
#: The e2e test proves these are enough; this one that nothing else creeps in.
NEEDED: dict[tuple[str, str], set[str]] = {
    ("privatevault.io", "tenants"): {"list", "watch", "patch"},  # kopf watches, finalizer, annotations
    ("privatevault.io", "protectionpolicies"): {"get", "list", "watch", "patch"},  # get: an Approval's target
    ("privatevault.io", "quorumpolicies"): {"list", "watch", "patch"},
    ("privatevault.io", "approvals"): {"list", "watch", "patch"},
    # get: an Approval's target, and the read API's bundle lookup (App.evidence_bundle)
    ("privatevault.io", "evidenceexports"): {"get", "list", "watch", "patch"},
    ("privatevault.io", "evidenceexports/status"): {"patch"},
    ("privatevault.io", "tenants/status"): {"patch"},  # handlers/wiring.write_status
    ("privatevault.io", "protectionpolicies/status"): {"patch"},
    ("privatevault.io", "quorumpolicies/status"): {"patch"},
    ("privatevault.io", "approvals/status"): {"patch"},
    ("privatevault.io", "complianceframeworks"): {"list", "watch", "patch"},
    ("privatevault.io", "complianceframeworks/status"): {"patch"},
    ("openreports.io", "reports"): {"get", "create", "patch", "delete"},  # app.Reports, when installed
    ("privatevault.io", "tenants/finalizers"): {"update"},  # blockOwnerDeletion on children
    # kopf's observation; get: whether the OpenReports CRD is installed (by name)
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
    ("", "namespaces"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "resourcequotas"): {"list", "watch", "create", "patch"},
    ("", "limitranges"): {"list", "watch", "create", "patch"},
    ("networking.k8s.io", "networkpolicies"): {"list", "watch", "create", "patch"},
    ("networking.k8s.io", "ingresses"): {"list", "watch"},  # crypto inventory exposure
    ("rbac.authorization.k8s.io", "rolebindings"): {"list", "watch", "create", "patch"},
    ("rbac.authorization.k8s.io", "clusterroles"): {"bind"},  # only admin (and auth-delegator with Vault)
    ("", "secrets"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "services"): {"list", "watch"},
    ("", "pods"): {"list"},  # a namespace dropped from a tenant goes only when empty
    ("", "persistentvolumeclaims"): {"list"},
    ("apps", "deployments"): {"list", "watch", "patch"},
    ("apps", "statefulsets"): {"list", "watch", "patch"},
    ("", "events"): {"create"},
    ("", "configmaps"): {"get", "create", "patch"},  # Role: the two ledger ConfigMaps only
    ("coordination.k8s.io", "leases"): {"create", "get", "update"},  # Role: the leader's Lease
    ("authentication.k8s.io", "tokenreviews"): {"create"},  # the read API's callers
    ("authorization.k8s.io", "subjectaccessreviews"): {"create"},
    # With vault.enabled: the TokenReviewer ServiceAccount, its token and binding (by name).
    ("", "serviceaccounts"): {"create", "patch"},
    ("", "serviceaccounts/token"): {"create"},
    ("rbac.authorization.k8s.io", "clusterrolebindings"): {"create", "patch"},
    # With webhook.enabled: kopf's managed ValidatingWebhookConfiguration.
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): {"create", "patch"},
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): {"create", "patch"},  # kopf keeps both
}
#: Grants that must be limited to named objects.
BY_NAME = {
    ("rbac.authorization.k8s.io", "clusterroles"): {"admin", "system:auth-delegator"},
    ("", "configmaps"): {"privatevault-ledger-checkpoint", "privatevault-ledger-integrity"},
    ("coordination.k8s.io", "leases"): {"privatevault-operator"},
    ("", "serviceaccounts"): {"privatevault-token-reviewer"},
    ("", "serviceaccounts/token"): {"privatevault-token-reviewer"},
    ("rbac.authorization.k8s.io", "clusterrolebindings"): {"privatevault-token-reviewer-privatevault"},
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): {"validating.privatevault.io"},
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): {"validating.privatevault.io"},
}


def grants(rules: list[dict[str, Any]]) -> list[tuple[str, str, str, frozenset[str]]]:
    return [
        (group, resource, verb, frozenset(rule.get("resourceNames") or ()))
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule["verbs"]
    ]


@pytest.mark.parametrize("values", [{}, EVERYTHING], ids=["defaults", "everything"])
def test_the_roles_grant_nothing_the_operator_does_not_call(values: dict[str, str]) -> None:
    objects = render(values)
    roles = of_kind(objects, "ClusterRole") + of_kind(objects, "Role")
    assert len(of_kind(objects, "ClusterRole")) == 1 and len(of_kind(objects, "Role")) == 1
    for role in roles:
        for rule in role["rules"]:
            assert "nonResourceURLs" not in rule, rule
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), f"a wildcard in {role['kind']} {rule}"
            assert not {"escalate", "impersonate", "deletecollection", "update"} & set(rule["verbs"]) or rule[
                "resources"
            ] in (["tenants/finalizers"], ["leases"]), rule
    found = grants([rule for role in roles for rule in role["rules"]])
    for group, resource, verb, names in found:
        assert verb in NEEDED.get((group, resource), set()), f"{verb} {group or 'core'}/{resource} is not needed"
        if ((group, resource) in BY_NAME and verb != "create") or resource == "clusterroles":
            assert names and names <= BY_NAME[(group, resource)], f"{verb} {resource} must name its objects"
    # Secrets: cluster-wide only as the code needs (the inventory's TLS Secrets, key Secrets).
    namespaced = of_kind(objects, "Role")[0]
    assert not any("secrets" in rule["resources"] for rule in namespaced["rules"])
    # ConfigMaps only in the operator's namespace, only the ledger's two.
    cluster = of_kind(objects, "ClusterRole")[0]
    assert not any("configmaps" in rule["resources"] for rule in cluster["rules"])
    vault = values.get("vault.enabled") == "true"
    assert any((g, r) == ("", "serviceaccounts/token") for g, r, _, _ in found) is vault
    assert any(r == "validatingwebhookconfigurations" for _, r, _, _ in found) is (
        values.get("webhook.enabled") == "true"
    )


def test_every_rule_says_what_needs_it() -> None:
    """Each rule of templates/rbac.yaml has a comment right above it."""
    lines = (CHART / "templates" / "rbac.yaml").read_text().splitlines()
    for at, line in enumerate(lines):
        if line.strip().startswith("- apiGroups:"):
            above = next(prev for prev in reversed(lines[:at]) if not prev.strip().startswith("{{"))
            assert above.strip().startswith("#"), f"rule at line {at + 1} has no comment: {line.strip()}"


# -- alerts and the dashboard -----------------------------------------------------------------------

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
#: Series Prometheus itself makes for every target.
PROMETHEUS_OWN = {"up"}


def rules_file(into: Path) -> Path:
    rule = of_kind(render({"metrics.prometheusRule.enabled": "true"}), "PrometheusRule")[0]
    path = into / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    return path


def test_promtool_checks_and_tests_the_alerts(tmp_path: Path) -> None:
    rules = rules_file(tmp_path)
    checked = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    shutil.copy(REPO / "tests" / "alerts" / "privatevault_test.yaml", tmp_path)
    tested = subprocess.run(
        [PROMTOOL, "test", "rules", "privatevault_test.yaml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = {r["alert"] for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"]}
    tests_text = (REPO / "tests" / "alerts" / "privatevault_test.yaml").read_text()
    assert {a for a in alerts if f"alertname: {a}" not in tests_text} == set(), "every alert has a promtool test"


def test_alerts_and_dashboard_read_only_exported_metrics(tmp_path: Path) -> None:
    rules = yaml.safe_load(rules_file(tmp_path).read_text())
    alerting = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    panels = dashboard["panels"]
    assert panels and all(panel["targets"] for panel in panels)
    expressions = [target["expr"] for panel in panels for target in panel["targets"]]
    expressions += [dashboard["templating"]["list"][1]["definition"].replace("label_values(", "").split(",")[0]]
    # The e2e test wants data for every panel: the dashboard reads only what is exported today.
    shown = set().union(*(metric_names(expr) for expr in expressions))
    assert shown - EXPORTED - PROMETHEUS_OWN == set()
    used = shown.union(*(metric_names(expr) for expr in alerting))
    assert used - EXPORTED - PROMETHEUS_OWN == set()
    assert {"privatevault_ledger_integrity_ok", "privatevault_objects", "privatevault_crypto_assets"} <= used
    # The panels' PromQL parses: promtool checks them as recording rules.
    recorded = tmp_path / "panels.yaml"
    recorded.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "panels",
                        "rules": [
                            {"record": f"panel:{i}", "expr": re.sub(r"\$namespace", "privatevault", expr)}
                            for i, expr in enumerate(t["expr"] for p in panels for t in p["targets"])
                        ],
                    }
                ]
            }
        )
    )
    checked = subprocess.run([PROMTOOL, "check", "rules", str(recorded)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'max by (namespace, pod) (privatevault_ledger_integrity_ok{namespace="x"}) == 0',
            {"privatevault_ledger_integrity_ok"},
        ),
        ("increase(a_total[5m]) > 0 and on (job) b", {"a_total", "b"}),
        ('(up{job="x"} == 0) or absent(up{job="x"})', {"up"}),
        ('bottomk(10, m_seconds{namespace="$namespace"} - time()) < 14 * 86400e0', {"m_seconds"}),
        ('sum without (le) (rate(h_bucket{a=~"b|c"}[1h] offset 5m))', {"h_bucket"}),
    ],
)
def test_metric_names_are_read_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
