"""The Helm chart on the real API server: `helm install` into the bench's control plane, the ledger
migrated by the migration Job's own command, then the operator run with the Deployment's own
arguments and environment and **the token of the chart's ServiceAccount** (no scheduler or kubelet
runs here, so the Deployment's pod never starts: the process runs beside it with its identity).

A Tenant, a ProtectionPolicy with a protected Deployment and StatefulSet and keys in OpenBao (the
operator logged in through Kubernetes auth, no static token), a quorum-gated deletion and a
bypassed gate all reconcile without one refusal by RBAC, with the admission webhook registered and
a witness cosigning the checkpoints: the ClusterRole is enough; and the API server's audit log
shows every permission granted used (but those listed in UNSEEN, with why): it is not more.
/metrics answers every name the alerts and dashboard read, and a real Prometheus scraping the
operator answers every panel with data. `helm upgrade` and `helm uninstall` keep the ledger, the
CRDs and the tenants."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from privatevault.evidence import verifier as evidence_verifier
from privatevault.kms.vault import operator_policy, vault_client
from privatevault.ledger.checkpoint import parse_verifier_key
from privatevault.ledger.cosignature import parse_cosignature_key
from privatevault.ledger.schema import Database
from privatevault.testbench import Bench
from privatevault.testbench.ports import free_port
from privatevault.testbench.process import ManagedProcess
from tests import builders
from tests.charts import CHART, EXPORTED, exported_names, helm, of_kind, set_args
from tests.quorum_keys import ApproverKeys, approver, signed_approval
from tests.support import Kubectl, Operator, eventually, wait_for_condition
from tests.witnesses import OurWitness

pytestmark = [pytest.mark.e2e]

SUFFIX = uuid.uuid4().hex[:6]
OPENREPORTS_CRD = Path(__file__).resolve().parents[1] / "fixtures" / "openreports" / "openreports.io_reports.yaml"
RELEASE = "pv"
#: The operator's own values for the test: fast resyncs, a checkpoint every second.
VALUES = {
    "operator.driftInterval": "2",
    "operator.protectionInterval": "2",
    "operator.retryDelay": "1",
    "ledger.checkpointEverySeconds": "1",
    "vault.enabled": "true",
    "webhook.enabled": "true",
    "webhook.configuration": f"validating-chart-{SUFFIX}.privatevault.io",
}


@dataclass
class Release:
    namespace: str
    kubectl: Kubectl
    bench: Bench
    database: Database
    workdir: Path
    values: dict[str, str]
    #: The witness the operator submits its checkpoints to (started once the log's keys are known).
    witness: OurWitness

    @property
    def account(self) -> str:
        return f"{RELEASE}-privatevault"

    def deploy(self, verb: str, values: dict[str, str]) -> None:
        """`helm install` or `upgrade` without hooks: no kubelet runs the hook Job (see :meth:`migrate`)."""
        helm(
            verb,
            RELEASE,
            str(CHART),
            "-n",
            self.namespace,
            "--no-hooks",
            *set_args(values),
            "--values",
            str(self.witnesses_file()),
            kubeconfig=self.kubectl.kubeconfig,
        )

    def witnesses_file(self) -> Path:
        """A values file for the list of witnesses (verifier keys do not go through --set)."""
        path = self.workdir / "witnesses.yaml"
        witness = {"url": self.witness.url, "verifierKey": self.witness.vkey}
        path.write_text(yaml.safe_dump({"ledger": {"witnesses": [witness], "witnessTimeout": 2}}))
        return path

    def manifest(self) -> list[dict[str, Any]]:
        done = helm("get", "manifest", RELEASE, "-n", self.namespace, kubeconfig=self.kubectl.kubeconfig)
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc]

    def hooks(self) -> list[dict[str, Any]]:
        done = helm("get", "hooks", RELEASE, "-n", self.namespace, kubeconfig=self.kubectl.kubeconfig)
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc]

    def secret_file(self, name: str, key: str, into: Path) -> Path:
        """A Secret's key as the pod sees it mounted."""
        secret = self.kubectl.get("secret", name, self.namespace)
        assert secret is not None, f"Secret {name} missing"
        into.parent.mkdir(parents=True, exist_ok=True)
        into.write_bytes(base64.b64decode(secret["data"][key]))
        into.chmod(0o600)
        return into

    def migrate(self) -> dict[str, Any]:
        """The migration hook Job's container, run here: its command and arguments, its Secret."""
        job = next(h for h in self.hooks() if h["kind"] == "Job")
        container = job["spec"]["template"]["spec"]["containers"][0]
        mount = self.workdir / "ledger-owner"
        volume = job["spec"]["template"]["spec"]["volumes"][0]["secret"]
        self.secret_file(volume["secretName"], volume["items"][0]["key"], mount / "dsn")
        args = [a.replace("/var/run/secrets/privatevault/ledger-owner", str(mount)) for a in container["args"]]
        assert args[:2] == ["ledger", "migrate"]
        done = subprocess.run(
            [sys.executable, "-m", "privatevault", *args],  # the image's entrypoint, then the Job's args
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def kubeconfig(self) -> Path:
        """The chart's ServiceAccount as the operator's only credential (a TokenRequest token)."""
        token = self.kubectl.run("create", "token", self.account, "-n", self.namespace, "--duration=2h").stdout.strip()
        cp = self.bench.control_plane
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "bench",
                    "cluster": {
                        "server": cp.server,
                        "certificate-authority-data": base64.b64encode(cp.ca_file.read_bytes()).decode(),
                    },
                }
            ],
            "users": [{"name": self.account, "user": {"token": token}}],
            "contexts": [
                {
                    "name": "chart",
                    "context": {"cluster": "bench", "user": self.account, "namespace": self.namespace},
                }
            ],
            "current-context": "chart",
        }
        path = self.workdir / f"kubeconfig-{time.monotonic_ns()}"
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path

    def operator(self) -> tuple[Operator, int, str]:
        """The Deployment's container as a local process: its env and args, files where it mounts them."""
        deployment = of_kind(self.manifest(), "Deployment")[0]
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert pod["serviceAccountName"] == self.account
        assert container["args"][:2] == ["operator", "run"]
        mounts = {"/var/run/secrets/privatevault/ledger/dsn": self.workdir / "ledger" / "dsn"}
        ledger = {v["name"]: v for v in pod["volumes"]}["ledger-dsn"]["secret"]
        self.secret_file(
            ledger["secretName"], ledger["items"][0]["key"], mounts["/var/run/secrets/privatevault/ledger/dsn"]
        )
        jwt = self.workdir / "vault" / "token"
        jwt.parent.mkdir(exist_ok=True)
        jwt.write_text(
            self.kubectl.run("create", "token", self.account, "-n", self.namespace, "--duration=1h").stdout.strip()
        )
        mounts["/var/run/secrets/privatevault/vault/token"] = jwt
        env: dict[str, str] = {}
        for item in container["env"]:
            if "valueFrom" in item:
                assert item["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
                env[item["name"]] = self.namespace
            else:
                env[item["name"]] = str(mounts.get(item["value"], item["value"]))
        metrics, health = free_port(), free_port()
        env |= {"PRIVATEVAULT_METRICS_PORT": str(metrics), "PRIVATEVAULT_METRICS_ADDR": "127.0.0.1"}
        # Everything here listens on the loopback: the chart's own address and port, moved.
        (flag,) = [arg for arg in container["args"] if arg.startswith("--liveness=")]
        liveness = flag.removeprefix("--liveness=").replace("0.0.0.0:8080", f"127.0.0.1:{health}")
        # The operator's only OpenBao address: the bench's (the chart's points at a Service).
        env["PRIVATEVAULT_VAULT_ADDR"] = self.bench.openbao.address
        env["PRIVATEVAULT_VAULT_KUBERNETES_HOST"] = self.bench.control_plane.server
        # The webhook: served here on the loopback, where the bench's API server calls it (the
        # chart points the API server at its Service, which has no pods here: no kubelet runs),
        # its generated certificate in a state directory.
        assert env.pop("PRIVATEVAULT_WEBHOOK_SERVICE") == f"{self.namespace}/{RELEASE}-privatevault"
        # The read API on a free loopback port (the chart's 0.0.0.0:8443 would clash between runs).
        env |= {"PRIVATEVAULT_API_ADDR": "127.0.0.1", "PRIVATEVAULT_API_PORT": str(free_port())}
        env |= {
            "PRIVATEVAULT_WEBHOOK_ADDR": "127.0.0.1",
            "PRIVATEVAULT_WEBHOOK_HOST": "127.0.0.1",
            "PRIVATEVAULT_WEBHOOK_PORT": str(free_port()),
            "PRIVATEVAULT_STATE_DIR": str(self.workdir / "state"),
        }
        running = Operator(
            self.workdir, self.kubeconfig(), Path(env.pop("PRIVATEVAULT_LEDGER_DSN_FILE")), liveness=liveness, **env
        )
        return running.start(), metrics, liveness


def admin_grants_openbao_login(bench: Bench, kubectl: Kubectl, namespace: str, account: str, mount: str) -> None:
    """What a platform team does once: Kubernetes auth for the operator's ServiceAccount, bound to
    the operator's policy; the reviewer is a ServiceAccount of its own with system:auth-delegator."""
    reviewer_ns = f"openbao-{SUFFIX}"
    kubectl.run("create", "namespace", reviewer_ns)
    kubectl.run("create", "serviceaccount", "reviewer", "-n", reviewer_ns)
    kubectl.run(
        "create",
        "clusterrolebinding",
        f"openbao-reviewer-{SUFFIX}",
        "--clusterrole=system:auth-delegator",
        f"--serviceaccount={reviewer_ns}:reviewer",
    )
    reviewer = kubectl.run("create", "token", "reviewer", "-n", reviewer_ns, "--duration=2h").stdout.strip()
    root = vault_client(bench.openbao.address, token=bench.openbao.root_token)
    root.sys.create_or_update_policy("privatevault-operator", operator_policy())
    root.sys.enable_auth_method("kubernetes", path=mount)
    root.write_data(
        f"auth/{mount}/config",
        data={
            "kubernetes_host": bench.control_plane.server,
            "kubernetes_ca_cert": bench.control_plane.ca_file.read_text(),
            "token_reviewer_jwt": reviewer,
        },
    )
    root.write_data(
        f"auth/{mount}/role/privatevault-operator",
        data={
            "bound_service_account_names": [account],
            "bound_service_account_namespaces": [namespace],
            "token_policies": ["privatevault-operator"],
            "token_ttl": "1h",
        },
    )


@pytest.fixture
def release(kubectl: Kubectl, bench: Bench, database: Database, tmp_path: Path) -> Iterator[Release]:
    namespace = f"pv-chart-{SUFFIX}"
    mount = f"operators-{SUFFIX}"
    kubectl.run("create", "namespace", namespace)
    for name, dsn in (
        ("privatevault-ledger", database.operator_dsn),
        ("privatevault-ledger-owner", database.owner_dsn),
    ):
        kubectl.run("create", "secret", "generic", name, "-n", namespace, f"--from-literal=dsn={dsn}")
    admin_grants_openbao_login(bench, kubectl, namespace, f"{RELEASE}-privatevault", mount)
    role = psycopg.conninfo.conninfo_to_dict(database.operator_dsn)["user"]
    values = VALUES | {
        "vault.address": "https://openbao.openbao.svc:8200",
        "vault.auth.mount": mount,
        "ledger.migration.operatorRole": str(role),
    }
    witness = OurWitness(tmp_path, f"privatevault.test/chart-{SUFFIX}")
    yield Release(namespace, kubectl, bench, database, tmp_path, values, witness)
    witness.process.stop(grace=5)
    helm("uninstall", RELEASE, "-n", namespace, kubeconfig=kubectl.kubeconfig, check=False)
    kubectl.run("delete", "namespace", namespace, f"openbao-{SUFFIX}", "--wait=false", "--ignore-not-found")
    kubectl.run("delete", "clusterrolebinding", f"openbao-reviewer-{SUFFIX}", "--ignore-not-found")
    kubectl.run("delete", "validatingwebhookconfiguration", VALUES["webhook.configuration"], "--ignore-not-found")


Permission = tuple[str, str, str]  # API group, resource[/subresource], verb

#: Granted permissions no request of the operator shows in the audit log, and why they are needed.
UNSEEN: dict[Permission, str] = {
    # Server-side apply that makes an object is one PATCH request, authorised as create as well.
    ("", "namespaces", "create"): "apply of a tenant namespace that does not exist yet",
    ("", "resourcequotas", "create"): "apply of a new tenant namespace's ResourceQuota",
    ("", "limitranges", "create"): "apply of a new tenant namespace's LimitRange",
    ("networking.k8s.io", "networkpolicies", "create"): "apply of a new tenant namespace's NetworkPolicy",
    ("rbac.authorization.k8s.io", "rolebindings", "create"): "apply of a new tenant namespace's RoleBinding",
    ("", "configmaps", "create"): "apply of the checkpoint and integrity ConfigMaps the first time",
    ("", "serviceaccounts", "create"): "apply of the TokenReviewer ServiceAccount the first time",
    ("rbac.authorization.k8s.io", "clusterrolebindings", "create"): "apply of the TokenReviewer's binding",
    ("openreports.io", "reports", "create"): "apply of a framework's Report the first time",
    # Code paths these scenarios do not take.
    ("authentication.k8s.io", "tokenreviews", "create"): "a client of the read API (tests/e2e/test_read_api.py)",
    ("authorization.k8s.io", "subjectaccessreviews", "create"): "a client of the read API, authorised per tenant",
    ("privatevault.io", "protectionpolicies", "get"): "an Approval of a ProtectionPolicy weakening reads its target",
    ("privatevault.io", "evidenceexports", "get"): "an Approval of an export reads its target; the read API, a bundle",
    # kopf's record of what it handled is their status (handlers/observed.py) and they have no
    # finalizer: kopf patches them only for its progress annotations while a handler is retried.
    ("privatevault.io", "quorumpolicies", "patch"): "kopf's progress annotations, while a handler is retried",
    ("privatevault.io", "complianceframeworks", "patch"): "kopf's progress annotations, while a handler is retried",
    # Checked by the API server on the objects the operator writes, not requested by it.
    ("rbac.authorization.k8s.io", "clusterroles", "bind"): "RoleBindings to admin, the binding to auth-delegator",
    (
        "privatevault.io",
        "tenants/finalizers",
        "update",
    ): "children's blockOwnerDeletion (OwnerReferencesPermissionEnforcement)",
}


def grants(manifest: list[dict[str, Any]]) -> set[Permission]:
    return {
        (group, resource, verb)
        for role in manifest
        if role["kind"] in ("ClusterRole", "Role")
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def requests(audit_log: Path, user: str) -> tuple[set[Permission], set[Permission]]:
    """What ``user`` asked the API server for (audit log), and what RBAC refused it."""
    used, refused = set(), set()
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef")
        if event["user"]["username"] != user or not ref:
            continue  # another identity, or discovery (non-resource URLs every identity may read)
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        permission = (ref.get("apiGroup", ""), resource, event["verb"])
        (refused if event.get("responseStatus", {}).get("code") == 403 else used).add(permission)
    return used, refused


def two_person(name: str, people: dict[str, ApproverKeys]) -> dict[str, Any]:
    """Deleting (and crypto-shredding) a tenant needs security and platform from two regions."""
    rule = {"min_approvals": 2, "required_roles": ["security", "platform"], "min_distinct_regions": 2}
    # Self-approval allowed: without the admission webhook the requester is unknown.
    rule["allow_self_approval"] = True
    return builders.quorum_policy(
        name,
        approvers=[
            approver("alice", people["alice"], roles=["security"], region="eu-west-1"),
            approver("bob", people["bob"], roles=["platform"], region="us-east-1"),
        ],
        rules=[builders.rule("DeleteTenant", **rule), builders.rule("CryptoShred", **rule)],
    )


def pending_of(kubectl: Kubectl, kind: str, name: str, action: str) -> dict[str, Any]:
    """The object's ``status.pending`` entry for ``action``, once the operator holds it."""

    def found() -> dict[str, Any] | None:
        entries = ((kubectl.get(kind, name) or {}).get("status") or {}).get("pending") or []
        return next((dict(entry) for entry in entries if entry["action"] == action), None)

    entry: dict[str, Any] = eventually(found, timeout=60, what=f"{kind} {name} pending {action}")
    return entry


def tls_secret(name: str, namespace: str, days: int) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}.{namespace}.svc")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"tls.crt": base64.b64encode(pem).decode(), "tls.key": base64.b64encode(private).decode()},
    }


class Prometheus:
    """Debian's Prometheus scraping the operator every second, as a ServiceMonitor would label it."""

    def __init__(self, workdir: Path, target: int, *, namespace: str, job: str) -> None:
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": job,
                            "static_configs": [
                                {"targets": [f"127.0.0.1:{target}"], "labels": {"namespace": namespace, "pod": "pv-0"}}
                            ],
                        }
                    ],
                }
            )
        )
        self.process = ManagedProcess(
            "prometheus",
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            workdir / "prometheus.log",
        )

    def start(self) -> Prometheus:
        self.process.start()
        self.process.wait_ready(self._ready, timeout=60, waiting_for="/-/ready")
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def query(self, expr: str) -> list[Any]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as answer:
            body = json.loads(answer.read())
        assert body["status"] == "success", body
        result: list[Any] = body["data"]["result"]
        return result

    def stop(self) -> None:
        self.process.stop(grace=5)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def records(database: Database) -> int:
    with psycopg.connect(database.operator_dsn) as conn:
        found = conn.execute("SELECT count(*) FROM audit_records").fetchone()
    return int(found[0]) if found else 0


def verify(release: Release) -> dict[str, Any]:
    dsn = release.workdir / "ledger" / "dsn"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "privatevault",
            "audit",
            "verify",
            "--dsn-file",
            str(dsn),
            "--format",
            "json",
            "--kubeconfig",
            str(release.kubectl.kubeconfig),
            "--namespace",
            release.namespace,
            "--state",
            str(release.workdir / "verify-state"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_chart_installs_and_its_service_account_runs_every_scenario(
    release: Release, kubectl: Kubectl, record_property: Any
) -> None:
    figures: dict[str, Any] = {}
    started = time.monotonic()
    release.deploy("install", release.values)
    figures["chart install (s)"] = round(time.monotonic() - started, 2)
    assert kubectl.get("crd", "tenants.privatevault.io") is not None
    assert release.migrate()["operatorRole"] == release.values["ledger.migration.operatorRole"]

    operator, metrics_port, probe = release.operator()
    prometheus = Prometheus(release.workdir, metrics_port, namespace=release.namespace, job=release.account).start()
    # The witness learns the log's keys from the published checkpoint's ConfigMap, then cosigns.
    published = eventually(
        lambda: (
            (kubectl.get("configmap", "privatevault-ledger-checkpoint", release.namespace) or {}).get("data") or {}
        ).get("verifier-keys"),
        what="the published checkpoint and its verifier keys",
    )
    release.witness.configure(str(published).split())
    release.witness.start()
    people = {name: ApproverKeys.generate() for name in ("alice", "bob")}
    qp, pp = f"chart-qp-{SUFFIX}", f"chart-pp-{SUFFIX}"
    gated, kept, bypassed = f"chart-a-{SUFFIX}", f"chart-b-{SUFFIX}", f"chart-c-{SUFFIX}"
    try:
        # A QuorumPolicy, a ProtectionPolicy and two Tenants: one gated and with keys in OpenBao.
        kubectl.apply(two_person(qp, people))
        kubectl.apply(builders.protection_policy(pp, profile="hybrid-default", workload_selector={"protect": "yes"}))
        kubectl.apply(
            builders.tenant(
                gated, kms="vault", protection_policy_ref=pp, quorum_policy_ref=qp, deletion_policy="CryptoShred"
            )
        )
        extra = f"{kept}-extra"
        kubectl.apply(builders.tenant(kept, owners=[builders.user("ops")], namespaces=[kept, extra]))
        for kind, name in (("quorumpolicy", qp), ("tenant", gated), ("tenant", kept)):
            wait_for_condition(kubectl, kind, name, "Ready", current=True, timeout=90)
        for kind in ("resourcequota", "limitrange", "networkpolicy", "rolebinding"):
            found = json.loads(kubectl.run("get", kind, "-n", gated, "-o", "json").stdout)["items"]
            assert found, f"no {kind} in {gated}"

        # A protected workload: keys made and wrapped under the tenant's OpenBao key, template patched.
        kubectl.apply(builders.deployment("web", gated, labels={"app": "web", "protect": "yes"}, run_as_user=10001))
        eventually(
            lambda: (
                (
                    (kubectl.get("deployment", "web", gated) or {})
                    .get("spec", {})
                    .get("template", {})
                    .get("metadata", {})
                    .get("annotations", {})
                    .get("privatevault.io/key-version")
                )
                == "1"
            ),
            timeout=90,
            what="the protected workload's key version 1",
        )
        assert kubectl.get("secret", "web-privatevault-keys", gated) is not None
        # A StatefulSet is protected the same way.
        database_set = builders.deployment("db", gated, labels={"app": "db", "protect": "yes"}, run_as_user=10001)
        database_set["kind"], database_set["spec"]["serviceName"] = "StatefulSet", "db"
        kubectl.apply(database_set)
        eventually(
            lambda: kubectl.get("secret", "db-privatevault-keys", gated), timeout=90, what="the StatefulSet's keys"
        )
        wait_for_condition(kubectl, "protectionpolicy", pp, "Ready", current=True, timeout=60)
        # The workload released (unlabelled): its key Secret goes, its template is restored.
        kubectl.run("label", "deployment", "web", "-n", gated, "protect-")
        eventually(lambda: kubectl.get("secret", "web-privatevault-keys", gated) is None, what="key Secret removed")
        # A namespace dropped from the tenant's spec goes (it is empty).
        kubectl.run("patch", "tenant", kept, "--type=merge", "-p", json.dumps({"spec": {"namespaces": [kept]}}))
        eventually(
            lambda: (kubectl.get("namespace", extra) or {"metadata": {"deletionTimestamp": "gone"}})["metadata"].get(
                "deletionTimestamp"
            ),
            what=f"namespace {extra} deleted",
        )
        # An evidence export of the ungated tenant: written to the destination, verified offline
        # with the keys the chart's operator published and the witness's key.
        destination = release.workdir / "evidence"
        destination.mkdir()
        until = dt.datetime.now(dt.UTC).replace(microsecond=0)
        kubectl.apply(
            builders.evidence_export(
                f"chart-ee-{SUFFIX}",
                tenants=[kept],
                start="2020-01-01T00:00:00Z",
                end=until.strftime("%Y-%m-%dT%H:%M:%SZ"),
                destination={"path": str(destination)},
            )
        )
        exported = wait_for_condition(
            kubectl, "evidenceexport", f"chart-ee-{SUFFIX}", "Ready", current=True, timeout=90
        )
        data = (kubectl.get("configmap", "privatevault-ledger-checkpoint", release.namespace) or {}).get("data") or {}
        keys = [k for name in ("verifier-keys", "evidence-keys") for k in data.get(name, "").splitlines() if k]
        report = evidence_verifier.verify(
            Path(exported["status"]["location"]),
            [parse_verifier_key(k) for k in keys],
            [parse_cosignature_key(release.witness.vkey)],
        )
        assert report.ok and report.complete, report.problem
        figures["evidence records verified"] = report.records

        # A ComplianceFramework over the tenant that stays: its score, its OpenReports Report (the
        # CRD installed), then (after the dashboard's check) deleted with its Report.
        kubectl.run("apply", "--server-side", "-f", str(OPENREPORTS_CRD))
        kubectl.run("wait", "--for=condition=Established", "--timeout=60s", "crd", "reports.openreports.io")
        kubectl.run("label", "tenant", kept, f"compliance=chart-{SUFFIX}")
        framework = f"chart-cf-{SUFFIX}"
        kubectl.apply(
            builders.compliance_framework(framework, tenant_selector={"matchLabels": {"compliance": f"chart-{SUFFIX}"}})
        )
        scored = wait_for_condition(kubectl, "complianceframework", framework, "Ready", current=True, timeout=60)
        assert scored["status"]["tenants"] == 1
        eventually(
            lambda: kubectl.get("reports.openreports.io", f"privatevault-{framework}", kept),
            what="the framework's Report",
        )
        figures["compliance score"] = scored["status"].get("score", -1)

        # A tenant whose namespace someone else holds is Stalled (NamespaceConflict), and counted so.
        orphan = f"chart-d-{SUFFIX}"
        kubectl.run("create", "namespace", orphan)
        kubectl.apply(builders.tenant(orphan))
        wait_for_condition(kubectl, "tenant", orphan, "Stalled", timeout=60)
        # A TLS certificate for the crypto inventory (and its expiry metrics), in the tenant that stays.
        kubectl.apply(tls_secret("web-tls", kept, days=10))

        # Every metric the alerts and the dashboard read is exported by this operator.
        def exported() -> set[str] | None:
            names = exported_names(scrape(metrics_port))
            return names if names >= EXPORTED else None

        names = eventually(exported, timeout=60, what=lambda: f"{EXPORTED} in /metrics")
        assert "privatevault_crypto_asset_expiration_timestamp_seconds" in names
        # The readiness probe's URL answers 200 while the ledger's integrity holds.
        with urllib.request.urlopen(probe, timeout=5) as ready:  # noqa: S310 - loopback
            assert ready.status == 200

        # The webhook is registered by the operator (kopf) under the chart's name.
        hook = eventually(
            lambda: kubectl.get("validatingwebhookconfiguration", VALUES["webhook.configuration"]),
            what="the webhook configuration",
        )
        assert hook["webhooks"] and hook["webhooks"][0]["clientConfig"]["url"].startswith("https://127.0.0.1:")

        # The quorum-gated deletion: held, then let through by two approvers of two roles and regions.
        kubectl.run("delete", "tenant", gated, "--wait=false")
        pending = pending_of(kubectl, "tenant", gated, "DeleteTenant")
        for name, keys in people.items():
            kubectl.apply(signed_approval(None, pending, name, keys))
        eventually(lambda: kubectl.get("tenant", gated) is None, timeout=120, what=f"tenant {gated} deleted")
        # A gate bypassed: a gated tenant's finalizer stripped by hand (recorded, raised, counted).
        kubectl.apply(builders.tenant(bypassed, quorum_policy_ref=qp))
        wait_for_condition(kubectl, "tenant", bypassed, "Ready", current=True, timeout=60)
        kubectl.run("delete", "tenant", bypassed, "--wait=false")
        pending_of(kubectl, "tenant", bypassed, "DeleteTenant")
        kubectl.run("patch", "tenant", bypassed, "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
        eventually(lambda: kubectl.get("tenant", bypassed) is None, timeout=30, what=f"tenant {bypassed} gone")

        # Every panel of the dashboard has data in a real Prometheus scraping this operator.
        dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
        queries = {
            f"{panel['title']} [{target['refId']}]": target["expr"].replace("$namespace", release.namespace)
            for panel in dashboard["panels"]
            for target in panel["targets"]
        }
        empty: list[str] = []

        def every_panel_answers() -> bool:
            empty[:] = [title for title, expr in queries.items() if not prometheus.query(expr)]
            return not empty

        eventually(every_panel_answers, timeout=90, what=lambda: f"data for the panels {empty}")
        figures["dashboard queries answered"] = len(queries)
        kubectl.run("delete", "complianceframework", framework)
        eventually(
            lambda: kubectl.get("reports.openreports.io", f"privatevault-{framework}", kept) is None,
            what="the Report deleted with its framework",
        )

        log = operator.log()
        assert "forbidden" not in log.lower(), [line for line in log.splitlines() if "orbidden" in line][:5]
    finally:
        prometheus.stop()
        operator.stop()
    figures["records after the scenarios"] = records(release.database)
    # Not more than needed: every permission granted was used by the operator in the scenarios,
    # or is one the API server checks without a request of its own (explained in UNSEEN).
    granted = grants(release.manifest())
    used, refused = requests(
        release.bench.control_plane.audit_log, f"system:serviceaccount:{release.namespace}:{release.account}"
    )
    assert not refused, f"requests refused by RBAC: {sorted(refused)}"
    assert used <= granted
    unused, unseen = granted - used, set(UNSEEN)
    assert unused == unseen, (
        f"granted, never used: {sorted(unused - unseen)}; used after all: {sorted(unseen - unused)}"
    )
    figures["RBAC rules"] = sum(len(o["rules"]) for o in release.manifest() if o["kind"] in ("ClusterRole", "Role"))
    figures["permissions used"] = len(used)
    before = verify(release)
    assert before["ok"] is True

    # An upgrade: the migration again (pre-upgrade), a changed value, the same tenants and ledger.
    release.deploy("upgrade", release.values | {"operator.workers": "8"})
    release.migrate()
    upgraded, _, _ = release.operator()
    try:
        wait_for_condition(kubectl, "tenant", kept, "Ready", current=True, timeout=60)
        assert "forbidden" not in upgraded.log().lower()
    finally:
        upgraded.stop()
    assert verify(release)["records"] >= before["records"]

    # Uninstall: the CRDs stay (Helm never deletes crds/), so do the tenants and the ledger.
    kept_records = records(release.database)
    helm("uninstall", RELEASE, "-n", release.namespace, kubeconfig=kubectl.kubeconfig)
    assert kubectl.get("crd", "tenants.privatevault.io") is not None
    assert kubectl.get("tenant", kept) is not None and kubectl.get("namespace", kept) is not None
    assert kubectl.get("clusterrole", f"{RELEASE}-privatevault") is None
    assert records(release.database) == kept_records
    # Cleanup without an operator: the finalizer goes by hand (no gate on this tenant).
    kubectl.run("patch", "tenant", kept, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    kubectl.run("delete", "tenant", kept, "--wait=false")
    kubectl.run("patch", "tenant", orphan, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False)
    kubectl.run("delete", "tenant", orphan, "--wait=false", check=False)
    kubectl.run("delete", "namespace", orphan, "--wait=false", check=False)
    kubectl.run("delete", "quorumpolicy", qp, "--wait=false", check=False)
    kubectl.run("delete", "protectionpolicy", pp, "--wait=false", check=False)
    for name, value in figures.items():
        record_property(name, value)
    print(f"\nchart figures: {json.dumps(figures)}")
