"""The real API server refuses bad specs with the CRDs' CEL rules and schema, with readable messages,
and accepts the good ones next to them; where a Tenant field becomes a child object (ResourceQuota,
LimitRange, NetworkPolicy, RoleBinding), the Tenant is refused exactly when that child would be."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from privatevault.api.v1alpha1 import complianceframework, evidenceexport, quorumpolicy, resources
from privatevault.api.v1alpha1 import tenant as tenant_api
from privatevault.api.v1alpha1.approval import ApprovalSpec
from privatevault.api.v1alpha1.complianceframework import ComplianceFrameworkSpec
from privatevault.api.v1alpha1.evidenceexport import EvidenceExportSpec
from privatevault.api.v1alpha1.quorumpolicy import QuorumPolicySpec
from privatevault.mcs.level import parse
from tests import builders
from tests.support import Kubectl

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("crds")]


def tenant(name: str, **options: Any) -> dict[str, Any]:
    """A Tenant owned by the user alice: the cases are about its other fields."""
    options.setdefault("owners", [builders.user("alice")])
    return builders.tenant(name, **options)


def quorum(name: str, approvers: int, min_approvals: int) -> dict[str, Any]:
    """A QuorumPolicy of ``approvers`` approvers whose rule for deleting a tenant needs ``min_approvals``."""
    return builders.quorum_policy(
        name,
        approvers=[builders.approver(f"approver-{i}") for i in range(approvers)],
        rules=[builders.rule("DeleteTenant", min_approvals=min_approvals)],
    )


@pytest.mark.parametrize(
    ("good", "bad", "message"),
    [
        (
            builders.protection_policy("pp-hybrid", mode="Hybrid", kem="X-Wing", signature="Ed25519+ML-DSA-65"),
            builders.protection_policy("pp-x25519", mode="PQC", kem="X25519"),
            "mode PQC or Hybrid needs a post-quantum KEM",
        ),
        (
            builders.protection_policy("pp-pqc", mode="PQC", kem="ML-KEM-1024", signature="ML-DSA-87"),
            builders.protection_policy("pp-ed25519", mode="Hybrid", kem="X-Wing", signature="Ed25519"),
            "Ed25519 and ECDSA-P384 alone are classical",
        ),
        (
            builders.protection_policy("pp-classical", mode="Classical", kem="X25519", signature="ECDSA-P384"),
            builders.protection_policy("pp-ecdsa", mode="PQC", signature="ECDSA-P384"),
            "needs a post-quantum or composite signature",
        ),
        (
            quorum("qp-ok", approvers=3, min_approvals=3),
            quorum("qp-too-many", approvers=2, min_approvals=3),
            "a rule cannot require more approvals than the policy has approvers",
        ),
        (
            builders.evidence_export("ee-ok", start="2026-01-01T00:00:00Z", end="2026-02-01T00:00:00Z"),
            builders.evidence_export("ee-backwards", start="2026-02-01T00:00:00Z", end="2026-01-01T00:00:00Z"),
            "the evidence window must start before it ends",
        ),
        (tenant("t-ok"), tenant("t-region", region="Europe"), "spec.region: Invalid value"),
        (
            tenant("t-ns-ok", namespaces=["a-b"]),
            tenant("t-ns-bad", namespaces=["Not_A_Label"]),
            "spec.namespaces[0]: Invalid value",
        ),
        (
            tenant("t-owner-ok"),
            tenant("t-owner-bad", owners=[{"kind": "Robot", "name": "r2"}]),
            'Unsupported value: "Robot"',
        ),
        (
            tenant("t-sa-ok", owners=[builders.service_account("ci", "tools")]),
            tenant("t-sa-bad", owners=[{"kind": "ServiceAccount", "name": "ci"}]),
            "a ServiceAccount owner needs the namespace it lives in",
        ),
        (tenant("t-locale-ok", locale="de-DE"), tenant("t-locale-bad", locale="german"), "spec.locale: Invalid value"),
    ],
    ids=lambda v: v if isinstance(v, str) else v["metadata"]["name"] if isinstance(v, dict) else None,
)
def test_refused_with_message_and_good_neighbour_accepted(
    kubectl: Kubectl, good: dict[str, Any], bad: dict[str, Any], message: str
) -> None:
    kubectl.apply(good)
    refused = kubectl.apply(bad, check=False)
    assert refused.returncode != 0
    assert message in refused.stderr, refused.stderr
    assert kubectl.get(bad["kind"].lower(), bad["metadata"]["name"]) is None


def test_tenant_region_cannot_change(kubectl: Kubectl) -> None:
    kubectl.apply(tenant("t-residency", region="eu-central-1"))
    moved = kubectl.apply(tenant("t-residency", region="us-east-1"), check=False)
    assert moved.returncode != 0
    assert "region is immutable" in moved.stderr
    other_change = kubectl.apply(tenant("t-residency", region="eu-central-1", locale="fr-FR"), check=False)
    assert other_change.returncode == 0, other_change.stderr


def test_a_frameworks_quorum_policy_cannot_change_or_go(kubectl: Kubectl) -> None:
    kubectl.apply(builders.compliance_framework("cf-pinned", quorum_policy_ref="board"))
    for ref in ("my-own-board", None):
        moved = kubectl.apply(builders.compliance_framework("cf-pinned", quorum_policy_ref=ref), check=False)
        assert moved.returncode != 0, ref
        assert complianceframework.QUORUM_POLICY_PINNED_MESSAGE in moved.stderr, moved.stderr
    assert kubectl.get("complianceframework", "cf-pinned")["spec"]["quorumPolicyRef"] == "board"
    other_change = kubectl.apply(
        builders.compliance_framework("cf-pinned", quorum_policy_ref="board", interval="2h"), check=False
    )
    assert other_change.returncode == 0, other_change.stderr
    kubectl.apply(builders.compliance_framework("cf-unpinned"))
    pinned_later = kubectl.apply(builders.compliance_framework("cf-unpinned", quorum_policy_ref="board"), check=False)
    assert pinned_later.returncode == 0, pinned_later.stderr  # nothing could have been waived without one


def test_approval_is_immutable(kubectl: Kubectl) -> None:
    kubectl.apply(builders.approval("ap-frozen", digest="sha256:" + "a" * 64))
    refused = kubectl.apply(builders.approval("ap-frozen", digest="sha256:" + "b" * 64), check=False)
    assert refused.returncode != 0
    assert "an Approval is immutable once created" in refused.stderr


def refused(kubectl: Kubectl, manifest: dict[str, Any], message: str) -> None:
    """``manifest`` is refused with ``message`` and nothing is stored."""
    done = kubectl.apply(manifest, check=False)
    assert done.returncode != 0, f"{manifest['spec']} was accepted"
    assert message in done.stderr, done.stderr
    assert kubectl.get(manifest["kind"].lower(), manifest["metadata"]["name"]) is None


def accepted(kubectl: Kubectl, manifest: dict[str, Any]) -> None:
    done = kubectl.apply(manifest, check=False)
    assert done.returncode == 0, f"{manifest.get('spec')} was refused: {done.stderr}"


def dry_run(kubectl: Kubectl, manifest: dict[str, Any]) -> bool:
    """Whether the API server would accept ``manifest`` (validated and admitted, not stored)."""
    return kubectl.run("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(manifest), check=False).returncode == 0


LONG = "t" * 64


@pytest.mark.parametrize(
    ("name", "spec", "message"),
    [
        ("t" * 63, {}, None),
        (LONG, {}, tenant_api.NAME_LENGTH_MESSAGE),
        (LONG, {"namespaces": ["long-a"]}, tenant_api.NAME_LENGTH_MESSAGE),
        ("acme.corp", {}, tenant_api.NAME_LABEL_MESSAGE),
        ("acme.corp", {"namespaces": ["acme-corp"]}, tenant_api.NAME_LABEL_MESSAGE),
        ("kube-public", {}, tenant_api.NAME_SYSTEM_MESSAGE),
        ("kube-node-lease", {"namespaces": ["knl-apps"]}, None),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None,
)
def test_tenant_name_fits_every_name_made_from_it(
    kubectl: Kubectl, name: str, spec: dict[str, Any], message: str | None
) -> None:
    manifest = tenant(name, **spec)
    if message is None:
        accepted(kubectl, manifest)
    else:
        refused(kubectl, manifest, message)


MCS_LEVELS = [
    "s0:c0,c1023",
    "s0:c1023,c0",
    "s0:c0005,c9",
    "s0:c5000,c1",
    "s0:c1024,c1",
    "s0:c7,c7",
    "s0:c7,c0007",
    "s0:c7",
    "s1:c1,c2",
    "s0:c1,c2,c3",
]


def operator_takes(level: str) -> bool:
    try:
        parse(level)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("level", MCS_LEVELS)
def test_mcs_level_is_refused_exactly_when_the_operator_cannot_use_it(kubectl: Kubectl, level: str) -> None:
    name = "t-mcs-" + level.replace(":", "-").replace(",", "-")
    problem = tenant_api.mcs_level_problem(level)
    assert (problem is None) == operator_takes(level)
    if problem is None:
        accepted(kubectl, tenant(name, mcs_level=level))
    else:
        refused(kubectl, tenant(name, mcs_level=level), problem)


def test_namespaces_are_distinct_and_not_the_clusters(kubectl: Kubectl) -> None:
    refused(kubectl, tenant("t-ns-system", namespaces=["tns-a", "kube-system"]), tenant_api.SYSTEM_NAMESPACE_MESSAGE)
    refused(kubectl, tenant("t-ns-twice", namespaces=["tns-b", "tns-b"]), 'Duplicate value: "tns-b"')
    refused(kubectl, tenant("t-cf-twice", compliance_framework_refs=["soc2", "soc2"]), 'Duplicate value: "soc2"')


QUOTAS: list[tuple[dict[str, Any], str | None]] = [
    (
        {
            "pods": 10,
            "requests.cpu": "2",
            "limits.memory": "16Gi",
            "memory": "1.5Gi",
            "cpu": "1e3",
            "count/deployments.apps": 5,
            "requests.nvidia.com/gpu": "1.5",
            "hugepages-2Mi": "1Gi",
            "requests.hugepages-2Mi": "1Gi",
            "services.loadbalancers": 0,
            "secrets": "1k",
        },
        None,
    ),
    ({"cpu": "lots"}, resources.QUANTITY_MESSAGE),
    ({"memory": "-1Gi"}, resources.QUANTITY_MESSAGE),
    ({"pods": -1}, resources.QUANTITY_MESSAGE),
    ({"pods": "1.5"}, resources.QUOTA_INTEGER_MESSAGE),
    ({"secrets": "500m"}, resources.QUOTA_INTEGER_MESSAGE),
    ({"count/pods": "2.5"}, resources.QUOTA_EXTENDED_INTEGER_MESSAGE),
    ({"nvidia.com/gpu": "500m"}, resources.QUOTA_EXTENDED_INTEGER_MESSAGE),
    ({"storage": "10Gi"}, resources.QUOTA_NAMES_MESSAGE),
    ({"gpus": 1}, resources.QUOTA_NAMES_MESSAGE),
    ({"Pods": 1}, resources.QUOTA_NAMES_MESSAGE),
    ({"a/b/c": 1}, resources.QUOTA_NAMES_MESSAGE),
]


@pytest.mark.parametrize(("hard", "message"), QUOTAS, ids=lambda v: json.dumps(v) if isinstance(v, dict) else None)
def test_quota_is_refused_exactly_when_its_resourcequota_would_be(
    kubectl: Kubectl, hard: dict[str, Any], message: str | None
) -> None:
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "parity", "namespace": "default"},
        "spec": {"hard": hard},
    }
    assert dry_run(kubectl, quota) is (message is None)
    name = f"t-quota-{QUOTAS.index((hard, message))}"
    if message is None:
        accepted(kubectl, tenant(name, quota=hard))
    else:
        refused(kubectl, tenant(name, quota=hard), message)


#: (limits, message, whether a LimitRange takes them): the Tenant refuses negative limits, which
#: a LimitRange stores but every pod in the namespace would then be refused for.
LIMITS: list[tuple[dict[str, Any], str | None, bool]] = [
    (
        {
            "default": {"cpu": "500m", "memory": "512Mi", "nvidia.com/gpu": 1},
            "defaultRequest": {"cpu": "100m"},
            "max": {"cpu": "2", "hugepages-2Mi": "1Gi"},
            "min": {"cpu": "50m"},
        },
        None,
        True,
    ),
    ({"default": {"cpu": "2"}, "max": {"cpu": "1"}}, resources.limit_order_message("default", "max"), False),
    ({"min": {"memory": "1Gi"}, "max": {"memory": "512Mi"}}, resources.limit_order_message("min", "max"), False),
    (
        {"defaultRequest": {"cpu": "2"}, "default": {"cpu": "1"}},
        resources.limit_order_message("defaultRequest", "default"),
        False,
    ),
    (
        {"min": {"cpu": "1"}, "defaultRequest": {"cpu": "500m"}},
        resources.limit_order_message("min", "defaultRequest"),
        False,
    ),
    ({"min": {"cpu": "1"}, "default": {"cpu": "500m"}}, resources.limit_order_message("min", "default"), False),
    (
        {"defaultRequest": {"cpu": "2"}, "max": {"cpu": "1"}},
        resources.limit_order_message("defaultRequest", "max"),
        False,
    ),
    ({"default": {"pods": 1}}, resources.LIMIT_NAMES_MESSAGE, False),
    ({"max": {"requests.cpu": 1}}, resources.LIMIT_NAMES_MESSAGE, False),
    (
        {"default": {"nvidia.com/gpu": 2}, "defaultRequest": {"nvidia.com/gpu": 1}},
        resources.NO_OVERCOMMIT_MESSAGE,
        False,
    ),
    ({"default": {"memory": "-1Gi"}}, resources.QUANTITY_MESSAGE, True),
    ({"max": {"cpu": "two"}}, resources.QUANTITY_MESSAGE, False),
]


@pytest.mark.parametrize(
    ("limits", "message", "limitrange_takes"), LIMITS, ids=lambda v: json.dumps(v) if isinstance(v, dict) else None
)
def test_limits_are_refused_when_their_limitrange_would_be(
    kubectl: Kubectl, limits: dict[str, Any], message: str | None, limitrange_takes: bool
) -> None:
    limit_range = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "parity", "namespace": "default"},
        "spec": {"limits": [{"type": "Container", **limits}]},
    }
    assert dry_run(kubectl, limit_range) is limitrange_takes
    name = f"t-limits-{[case[0] for case in LIMITS].index(limits)}"
    if message is None:
        accepted(kubectl, tenant(name, limits=limits))
    else:
        refused(kubectl, tenant(name, limits=limits), message)


CIDRS = [
    ("10.0.0.0/8", True),
    ("2001:db8::/32", True),
    ("192.168.1.5/24", False),
    ("010.0.0.0/8", False),
    ("::ffff:10.0.0.0/104", False),
    ("10.0.0.0/33", False),
    ("10.0.0.0", False),
    ("example.com", False),
]


@pytest.mark.parametrize(("cidr", "good"), CIDRS)
def test_egress_cidrs_are_refused_exactly_when_their_networkpolicy_would_be(
    kubectl: Kubectl, cidr: str, good: bool
) -> None:
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "parity", "namespace": "default"},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"cidr": cidr}}]}]},
    }
    assert dry_run(kubectl, policy) is good
    manifest = tenant(f"t-cidr-{[c for c, _ in CIDRS].index(cidr)}", network={"allowEgressCidrs": [cidr]})
    if good:
        accepted(kubectl, manifest)
    else:
        refused(kubectl, manifest, tenant_api.CIDR_MESSAGE)


ACCOUNTS = [("ci-bot", True), ("ci.bot", True), ("CI_Bot", False), ("ci@x", False)]


@pytest.mark.parametrize(("account", "good"), ACCOUNTS)
def test_service_account_owners_are_refused_exactly_when_their_rolebinding_would_be(
    kubectl: Kubectl, account: str, good: bool
) -> None:
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "parity", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": "tools"}],
    }
    assert dry_run(kubectl, binding) is good
    owner = builders.service_account(account, "tools")
    case = ACCOUNTS.index((account, good))
    manifest = tenant(f"t-sa-owner-{case}", owners=[owner])
    if good:
        accepted(kubectl, manifest)
    else:
        refused(kubectl, manifest, tenant_api.SERVICE_ACCOUNT_NAME_MESSAGE)
    # A User may be named anything a subject may: the rule is about ServiceAccounts only.
    accepted(kubectl, tenant(f"t-user-owner-{case}", owners=[builders.user(account)]))


def same_refusal(kubectl: Kubectl, manifest: dict[str, Any], model: type[BaseModel], message: str | None) -> None:
    """The API server and the model agree on the spec: both take it, or both refuse it (the server with ``message``)."""
    if message is None:
        accepted(kubectl, manifest)
        model.model_validate(manifest["spec"])
        return
    refused(kubectl, manifest, message)
    with pytest.raises(ValidationError):
        model.model_validate(manifest["spec"])


ED25519, ML_DSA_65 = builders.PLACEHOLDER_KEY, builders.PLACEHOLDER_ML_DSA_65_KEY
TWO = (
    builders.approver("ann", roles=["security"], region="eu-west-1"),
    builders.approver("bob", roles=["sre"], region="us-east-1"),
)


def quorum_case(approvers: tuple[dict[str, Any], ...] = TWO, **rule: Any) -> dict[str, Any]:
    """A QuorumPolicy of ``approvers`` with one rule for deleting a tenant."""
    return builders.quorum_policy("qp-case", approvers=approvers, rules=[builders.rule(**rule)])


QUORUM_CASES: list[tuple[dict[str, Any], str | None]] = [
    (
        quorum_case(
            (*TWO, builders.approver("cid", ml_dsa65=ML_DSA_65)),
            required_roles=["security", "sre"],
            min_distinct_regions=2,
            allowed_regions=["eu-west-1", "us-east-1"],
            signature_mode="hybrid-required",
            ttl="30m",
        ),
        None,
    ),
    (quorum_case((builders.approver("ann"), builders.approver("ann"))), "Duplicate value"),
    (quorum_case((builders.approver("ann", region="Europe"),)), "spec.approvers[0].region: Invalid value"),
    (quorum_case((builders.approver("ann", ed25519=None),)), quorumpolicy.NO_KEY_MESSAGE),
    (quorum_case((builders.approver("ann", ed25519="AAAA"),)), quorumpolicy.ED25519_MESSAGE),
    (quorum_case((builders.approver("ann", ed25519=ED25519 + "AAAA"),)), quorumpolicy.ED25519_MESSAGE),
    (quorum_case((builders.approver("ann", ed25519=None, ml_dsa65=ED25519),)), quorumpolicy.ML_DSA_65_MESSAGE),
    (quorum_case(required_roles=["auditor"]), quorumpolicy.REQUIRED_ROLES_MESSAGE),
    (quorum_case(min_distinct_regions=3), quorumpolicy.DISTINCT_REGIONS_MESSAGE),
    (quorum_case(min_distinct_regions=2, allowed_regions=["eu-west-1"]), quorumpolicy.DISTINCT_REGIONS_MESSAGE),
    (quorum_case(signature_mode="hybrid-required"), quorumpolicy.HYBRID_MESSAGE),
    (quorum_case(ttl="0s"), quorumpolicy.TTL_MESSAGE),
    (builders.quorum_policy("qp-case", approvers=TWO, rules=[builders.rule()] * 2), "Duplicate value"),
]


@pytest.mark.parametrize("case", range(len(QUORUM_CASES)))
def test_quorum_policy_that_could_never_be_met_is_refused(kubectl: Kubectl, case: int) -> None:
    manifest, message = QUORUM_CASES[case]
    manifest = manifest | {"metadata": {"name": f"qp-case-{case}"}}
    same_refusal(kubectl, manifest, QuorumPolicySpec, message)


EXPORT_CASES: list[tuple[dict[str, Any], str | None]] = [
    (
        builders.evidence_export(
            "ee-case", destination={"type": "PersistentVolumeClaim", "claimName": "evidence", "path": "/evidence/q1"}
        ),
        None,
    ),
    (builders.evidence_export("ee-case", destination={"path": "/var/lib/privatevault/evidence/q1"}), None),
    (builders.evidence_export("ee-case", destination={"type": "PersistentVolumeClaim"}), evidenceexport.CLAIM_MESSAGE),
    (builders.evidence_export("ee-case", destination={"claimName": "evidence"}), evidenceexport.CLAIM_MESSAGE),
    (builders.evidence_export("ee-case", destination={"path": "evidence"}), evidenceexport.PATH_MESSAGE),
    (builders.evidence_export("ee-case", destination={"path": "/var/lib/../../etc"}), evidenceexport.PATH_MESSAGE),
    (builders.evidence_export("ee-case", tenants=["acme", "acme"]), 'Duplicate value: "acme"'),
    (builders.evidence_export("ee-case", tenants=["Acme Corp"]), "spec.tenants[0]: Invalid value"),
]


@pytest.mark.parametrize("case", range(len(EXPORT_CASES)))
def test_evidence_export_destination_and_tenants(kubectl: Kubectl, case: int) -> None:
    manifest, message = EXPORT_CASES[case]
    manifest = manifest | {"metadata": {"name": f"ee-case-{case}"}}
    same_refusal(kubectl, manifest, EvidenceExportSpec, message)


EXCEPTION = {"control": "CC6.1", "tenants": ["acme"], "reason": "migration", "expires": "2027-01-01T00:00:00Z"}
ATTESTATION = {"control": "CC1.4", "statement": "staff trained in Q3", "expires": "2027-01-01T00:00:00Z"}
MANUAL = builders.control("CC1.4", "Competence", checks=[builders.compliance_check("manual")])


def selector(**requirement: Any) -> dict[str, Any]:
    return {"matchExpressions": [requirement]}


FRAMEWORK_CASES: list[tuple[dict[str, Any], str | None]] = [
    (
        builders.compliance_framework(
            "cf-case",
            interval="5m",
            controls=[builders.control(), MANUAL],
            exceptions=[EXCEPTION],
            attestations=[ATTESTATION],
            quorum_policy_ref="two-person",
            tenant_selector={
                "matchLabels": {"example.com/tier": "gold"},
                "matchExpressions": [{"key": "region", "operator": "In", "values": ["eu"]}],
            },
        ),
        None,
    ),
    (builders.compliance_framework("cf-case", interval="30s"), complianceframework.INTERVAL_MESSAGE),
    (
        builders.compliance_framework(
            "cf-case", exceptions=[EXCEPTION | {"control": "CC9.9"}], quorum_policy_ref="two-person"
        ),
        complianceframework.EXCEPTION_CONTROL_MESSAGE,
    ),
    (
        builders.compliance_framework("cf-case", exceptions=[EXCEPTION, EXCEPTION], quorum_policy_ref="two-person"),
        "Duplicate value",
    ),
    (
        builders.compliance_framework("cf-case", attestations=[ATTESTATION], quorum_policy_ref="two-person"),
        complianceframework.ATTESTATION_CONTROL_MESSAGE,
    ),
    (
        builders.compliance_framework(
            "cf-case", attestations=[ATTESTATION | {"control": "CC6.1"}], quorum_policy_ref="two-person"
        ),
        complianceframework.ATTESTATION_CONTROL_MESSAGE,
    ),
    (
        builders.compliance_framework(
            "cf-case",
            controls=[builders.control(checks=[builders.compliance_check("manual")] * 16)] * 1
            + [builders.control(f"C{i}", checks=[builders.compliance_check("manual")] * 16) for i in range(255)],
            attestations=[ATTESTATION | {"control": f"C{i}"} for i in range(64)],
            quorum_policy_ref="two-person",
        ),
        None,
    ),
    (
        builders.compliance_framework("cf-case", controls=[builders.control(), MANUAL], attestations=[ATTESTATION]),
        complianceframework.QUORUM_POLICY_MESSAGE,
    ),
    (builders.compliance_framework("cf-case", exceptions=[EXCEPTION]), complianceframework.QUORUM_POLICY_MESSAGE),
    (
        builders.compliance_framework(
            "cf-case", controls=[builders.control(checks=[builders.compliance_check("tenant-network-isolated")])]
        ),
        "Unsupported value",
    ),
    (
        builders.compliance_framework(
            "cf-case", exceptions=[EXCEPTION | {"tenants": ["Not_A_Name"]}], quorum_policy_ref="two-person"
        ),
        "should match",
    ),
    (
        builders.compliance_framework(
            "cf-case", exceptions=[EXCEPTION | {"tenants": ["acme", "acme"]}], quorum_policy_ref="two-person"
        ),
        "Duplicate value",
    ),
    (builders.compliance_framework("cf-case", controls=[builders.control()] * 2), "Duplicate value"),
    (
        builders.compliance_framework("cf-case", tenant_selector=selector(key="tier", operator="In")),
        complianceframework.VALUES_MESSAGE,
    ),
    (
        builders.compliance_framework("cf-case", tenant_selector=selector(key="tier", operator="Exists", values=["x"])),
        complianceframework.VALUES_MESSAGE,
    ),
    (
        builders.compliance_framework("cf-case", tenant_selector=selector(key="not a key", operator="Exists")),
        complianceframework.LABEL_KEY_MESSAGE,
    ),
    (
        builders.compliance_framework("cf-case", tenant_selector={"matchLabels": {"a/b/c": "x"}}),
        complianceframework.LABEL_KEY_MESSAGE,
    ),
]


@pytest.mark.parametrize("case", range(len(FRAMEWORK_CASES)))
def test_compliance_framework_exceptions_selectors_and_interval(kubectl: Kubectl, case: int) -> None:
    manifest, message = FRAMEWORK_CASES[case]
    manifest = manifest | {"metadata": {"name": f"cf-case-{case}"}}
    same_refusal(kubectl, manifest, ComplianceFrameworkSpec, message)


def test_an_approval_carries_one_signature_per_key(kubectl: Kubectl) -> None:
    twice = builders.approval("ap-twice", signatures=[builders.envelope_signature()] * 2)
    same_refusal(kubectl, twice, ApprovalSpec, "Duplicate value")
