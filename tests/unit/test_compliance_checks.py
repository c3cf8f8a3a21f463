"""Every check of the library: pass, fail, not-applicable and unknown rows with the reason a person
reads, parameters validated once (InvalidCheckParams naming control and check), and the API's enum
of names equal to the library."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from privatevault.api.v1alpha1.complianceframework import CHECK_NAMES as API_NAMES
from privatevault.api.v1alpha1.complianceframework import Check
from privatevault.compliance.checks import CHECK_NAMES, LIBRARY, Finding, compile_check
from privatevault.compliance.facts import (
    CertFact,
    ClusterFacts,
    ExportFact,
    NamespaceFacts,
    PolicyFacts,
    QuorumRuleFacts,
    TenantFacts,
    WorkloadFact,
    labels_of,
)
from privatevault.errors import SpecError

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)

GOOD_NS = NamespaceFacts(
    "acme",
    labels=labels_of({"pod-security.kubernetes.io/enforce": "restricted"}),
    has_default_deny=True,
    quota_hard=frozenset({"pods", "requests.cpu"}),
    owner_binding=True,
    mcs_label="s0:c1,c2",
)
BAD_NS = NamespaceFacts("acme-dev")
PQC = PolicyFacts("cnsa", "PQC", frozenset({"ML-KEM-1024", "ML-DSA-87", "AES-256-GCM"}), ready=True)
HYBRID = PolicyFacts("hybrid", "Hybrid", frozenset({"X-Wing", "Ed25519+ML-DSA-65", "AES-256-GCM"}), ready=True)
CLASSICAL = PolicyFacts("legacy", "Classical", frozenset({"X25519", "Ed25519", "AES-256-GCM"}), ready=True)
RULES = (
    QuorumRuleFacts("DeleteTenant", 2, frozenset({"security", "sre"})),
    QuorumRuleFacts("CryptoShred", 2, frozenset({"security", "sre"})),
)
TENANT = TenantFacts(
    name="acme",
    uid="u-1",
    region="eu-west-1",
    owners=2,
    deletion_policy="CryptoShred",
    mcs_level="s0:c1,c2",
    kms_provider="vault",
    kek_created=NOW - 100 * DAY,
    kek_rotated=NOW - 10 * DAY,
    namespaces=(GOOD_NS,),
    protection=PQC,
    quorum_policy="two-person",
    quorum_rules=RULES,
    last_export=ExportFact("q3", NOW - 5 * DAY, frozenset({"acme"})),
    ledger_refs=(("kek", 412),),
)
CLUSTER = ClusterFacts(checkpoint_verified_at=NOW - timedelta(hours=2), checkpoint_size=9000, witness_cosignatures=2)
NO_NS = replace(TENANT, namespaces=())
TWO_NS = replace(TENANT, namespaces=(GOOD_NS, BAD_NS))


def cert(name: str, *, days: float | None = 90, vulnerable: bool = False, risk: int | None = None) -> CertFact:
    return CertFact("acme", name, NOW + days * DAY if days is not None else None, vulnerable, risk)


def deploy(name: str, policy: str | None) -> WorkloadFact:
    return WorkloadFact("acme", "Deployment", name, protected=policy is not None, policy=policy)


# (check, params, tenant, cluster, outcome, a part of the reason)
Row = tuple[str, dict[str, Any], TenantFacts, ClusterFacts, str, str]
ROWS: list[Row] = [
    ("pod-security-restricted", {}, TENANT, CLUSTER, "pass", "every namespace enforces Pod Security restricted"),
    (
        "pod-security-restricted",
        {},
        TWO_NS,
        CLUSTER,
        "fail",
        "Pod Security restricted (pod-security.kubernetes.io/enforce) is not enforced in namespace acme-dev",
    ),
    ("pod-security-restricted", {}, NO_NS, CLUSTER, "unknown", "tenant acme has no namespaces yet"),
    ("network-default-deny", {}, TENANT, CLUSTER, "pass", "every namespace has the default-deny NetworkPolicy"),
    (
        "network-default-deny",
        {},
        TWO_NS,
        CLUSTER,
        "fail",
        "the default-deny NetworkPolicy privatevault-isolation is missing in namespace acme-dev",
    ),
    ("network-default-deny", {}, NO_NS, CLUSTER, "unknown", "no namespaces yet"),
    ("owners-defined", {}, TENANT, CLUSTER, "pass", "tenant acme has 2 owners, bound in every namespace"),
    ("owners-defined", {"minOwners": 3}, TENANT, CLUSTER, "fail", "tenant acme has 2 owners, fewer than 3"),
    (
        "owners-defined",
        {},
        TWO_NS,
        CLUSTER,
        "fail",
        "the owners' RoleBinding privatevault-owners is missing in namespace acme-dev",
    ),
    ("owners-defined", {}, NO_NS, CLUSTER, "unknown", "no namespaces yet"),
    ("quota-set", {}, TENANT, CLUSTER, "pass", "every namespace has a ResourceQuota"),
    (
        "quota-set",
        {"resources": ["pods"]},
        TENANT,
        CLUSTER,
        "pass",
        "every namespace has a ResourceQuota, limiting pods",
    ),
    ("quota-set", {}, TWO_NS, CLUSTER, "fail", "namespace acme-dev has no ResourceQuota"),
    (
        "quota-set",
        {"resources": ["limits.memory"]},
        TENANT,
        CLUSTER,
        "fail",
        "the ResourceQuota of namespace acme does not limit limits.memory",
    ),
    ("quota-set", {}, NO_NS, CLUSTER, "unknown", "no namespaces yet"),
    ("mcs-level-unique", {}, TENANT, CLUSTER, "pass", "MCS level s0:c1,c2 is the tenant's alone"),
    ("mcs-level-unique", {}, replace(TENANT, mcs_level=None), CLUSTER, "fail", "tenant acme has no MCS level"),
    (
        "mcs-level-unique",
        {},
        replace(TENANT, mcs_holders=frozenset({"globex"})),
        CLUSTER,
        "fail",
        "MCS level s0:c1,c2 is also held by globex",
    ),
    ("mcs-level-unique", {}, TWO_NS, CLUSTER, "fail", "MCS level s0:c1,c2 does not label namespace acme-dev"),
    ("mcs-level-unique", {}, NO_NS, CLUSTER, "unknown", "no namespaces yet"),
    ("kek-external-kms", {}, TENANT, CLUSTER, "pass", "the key encryption key is held by vault"),
    (
        "kek-external-kms",
        {"providers": ["hsm"]},
        TENANT,
        CLUSTER,
        "fail",
        "the key encryption key is held by vault, not by hsm",
    ),
    ("kek-external-kms", {}, replace(TENANT, kms_provider=None), CLUSTER, "unknown", "no key provider in its status"),
    ("kek-rotated-within", {}, TENANT, CLUSTER, "pass", "was rotated 10 days ago (≤ 90)"),
    ("kek-rotated-within", {"days": 5}, TENANT, CLUSTER, "fail", "was last rotated 10 days ago (> 5)"),
    (
        "kek-rotated-within",
        {},
        replace(TENANT, kek_rotated=None),
        CLUSTER,
        "fail",
        "was last created 100 days ago (> 90)",
    ),
    (
        "kek-rotated-within",
        {},
        replace(TENANT, kek_rotated=None, kek_created=None),
        CLUSTER,
        "unknown",
        "tenant acme has no key encryption key yet",
    ),
    ("workloads-quantum-safe", {}, TENANT, CLUSTER, "not-applicable", "has no Deployment or StatefulSet"),
    (
        "workloads-quantum-safe",
        {},
        replace(TENANT, workloads=(deploy("api", "cnsa"), deploy("web", "hybrid")), policies=(HYBRID,)),
        CLUSTER,
        "pass",
        "all 2 workloads are protected",
    ),
    (
        "workloads-quantum-safe",
        {},
        replace(TENANT, workloads=(deploy("api", "cnsa"), deploy("web", None))),
        CLUSTER,
        "fail",
        "1 workload not protected by a Ready PQC or Hybrid ProtectionPolicy: acme/web",
    ),
    (
        "workloads-quantum-safe",
        {},
        replace(TENANT, workloads=(deploy("api", "legacy"),), policies=(CLASSICAL,)),
        CLUSTER,
        "fail",
        "acme/api",
    ),
    (
        "workloads-quantum-safe",
        {},
        replace(TENANT, workloads=(deploy("api", "cnsa"),), protection=replace(PQC, ready=False)),
        CLUSTER,
        "fail",
        "not protected by a Ready",
    ),
    (
        "workloads-quantum-safe",
        {},
        replace(TENANT, workloads=(deploy("api", "elsewhere"),)),
        CLUSTER,
        "unknown",
        "the ProtectionPolicy of 1 workload is not known: acme/api",
    ),
    ("cnsa2-algorithms", {}, TENANT, CLUSTER, "pass", "ProtectionPolicy cnsa uses CNSA 2.0 algorithms only"),
    (
        "cnsa2-algorithms",
        {},
        replace(TENANT, protection=HYBRID),
        CLUSTER,
        "fail",
        "ProtectionPolicy hybrid uses Ed25519+ML-DSA-65, X-Wing, outside CNSA 2.0",
    ),
    ("cnsa2-algorithms", {}, replace(TENANT, protection=None), CLUSTER, "fail", "tenant acme has no ProtectionPolicy"),
    (
        "cnsa2-algorithms",
        {},
        replace(TENANT, protection=replace(PQC, algorithms=frozenset())),
        CLUSTER,
        "unknown",
        "the algorithms of ProtectionPolicy cnsa are not known",
    ),
    ("tls-not-expiring", {}, TENANT, CLUSTER, "not-applicable", "tenant acme has no TLS certificates"),
    ("tls-not-expiring", {}, replace(TENANT, certificates=(cert("web"),)), CLUSTER, "pass", "no certificate expires"),
    (
        "tls-not-expiring",
        {},
        replace(TENANT, certificates=(cert("web", days=10), cert("old", days=-1), cert("ok"))),
        CLUSTER,
        "fail",
        "2 certificates expired or expiring within 30 days (1 expired): acme/web, acme/old",
    ),
    (
        "tls-not-expiring",
        {"days": 5},
        replace(TENANT, certificates=(cert("web", days=10),)),
        CLUSTER,
        "pass",
        "within 5 days",
    ),
    (
        "tls-not-expiring",
        {},
        replace(TENANT, certificates=(cert("web", days=None),)),
        CLUSTER,
        "unknown",
        "the expiry of 1 certificate is not known: acme/web",
    ),
    ("tls-quantum-risk-below", {}, TENANT, CLUSTER, "not-applicable", "no TLS certificates"),
    (
        "tls-quantum-risk-below",
        {},
        replace(TENANT, certificates=(cert("web", vulnerable=True, risk=50), cert("pq", risk=90))),
        CLUSTER,
        "pass",
        "no quantum-vulnerable certificate above risk 50",
    ),
    (
        "tls-quantum-risk-below",
        {"maxRisk": 40},
        replace(TENANT, certificates=(cert("web", vulnerable=True, risk=50),)),
        CLUSTER,
        "fail",
        "1 quantum-vulnerable certificate above risk 40: acme/web (50)",
    ),
    (
        "tls-quantum-risk-below",
        {},
        replace(TENANT, certificates=(cert("web", vulnerable=True),)),
        CLUSTER,
        "unknown",
        "not scored yet: acme/web",
    ),
    ("ledger-verified-within", {}, TENANT, CLUSTER, "pass", "proven 2 hours ago and cosigned by 2 witnesses"),
    ("ledger-verified-within", {"hours": 1}, TENANT, CLUSTER, "fail", "last proven 2 hours ago (> 1)"),
    ("ledger-verified-within", {"minWitnesses": 3}, TENANT, CLUSTER, "fail", "2 witness cosignatures, fewer than 3"),
    ("ledger-verified-within", {}, TENANT, ClusterFacts(), "fail", "has never been proven consistent"),
    ("deletion-quorum", {}, TENANT, CLUSTER, "pass", "QuorumPolicy two-person requires ≥ 2 approvals and ≥ 2 roles"),
    ("deletion-quorum", {}, replace(TENANT, quorum_policy=None), CLUSTER, "fail", "no QuorumPolicy is in force"),
    (
        "deletion-quorum",
        {"actions": ["DestroyKey"]},
        TENANT,
        CLUSTER,
        "fail",
        "QuorumPolicy two-person does not gate DestroyKey",
    ),
    (
        "deletion-quorum",
        {"minApprovals": 3},
        TENANT,
        CLUSTER,
        "fail",
        "approves DeleteTenant with 2 approvals (< 3)",
    ),
    ("deletion-quorum", {"minRoles": 3}, TENANT, CLUSTER, "fail", "with 2 distinct roles (< 3)"),
    ("evidence-exported-within", {}, TENANT, CLUSTER, "pass", "evidence export q3 finished 5 days ago (≤ 30)"),
    ("evidence-exported-within", {"days": 2}, TENANT, CLUSTER, "fail", "the last evidence export q3 finished 5 days"),
    (
        "evidence-exported-within",
        {},
        replace(TENANT, last_export=None),
        CLUSTER,
        "fail",
        "no Ready EvidenceExport covers tenant acme",
    ),
    (
        "evidence-exported-within",
        {},
        replace(TENANT, last_export=ExportFact("q3", NOW, frozenset({"globex"}))),
        CLUSTER,
        "fail",
        "no Ready EvidenceExport covers tenant acme",
    ),
    ("data-residency", {"regions": ["eu-west-1"]}, TENANT, CLUSTER, "pass", "tenant acme lives in eu-west-1"),
    (
        "data-residency",
        {"regions": ["us-east-1", "us-west-2"]},
        TENANT,
        CLUSTER,
        "fail",
        "lives in eu-west-1, outside us-east-1, us-west-2",
    ),
    ("data-residency", {"regions": ["eu-west-1"]}, replace(TENANT, region=None), CLUSTER, "unknown", "names no region"),
    (
        "personal-data-cryptoshred",
        {},
        TENANT,
        CLUSTER,
        "not-applicable",
        "is not labelled privatevault.io/personal-data",
    ),
    (
        "personal-data-cryptoshred",
        {},
        replace(TENANT, labels=labels_of({"privatevault.io/personal-data": "true"})),
        CLUSTER,
        "pass",
        "crypto-shredded on deletion",
    ),
    (
        "personal-data-cryptoshred",
        {"label": "example.com/pii"},
        replace(TENANT, labels=labels_of({"example.com/pii": "true"}), deletion_policy="Retain"),
        CLUSTER,
        "fail",
        "its deletionPolicy is Retain, not CryptoShred",
    ),
    ("manual", {}, TENANT, CLUSTER, "unknown", "unknown until attested"),
]


def run(name: str, params: dict[str, Any], tenant: TenantFacts, cluster: ClusterFacts) -> Finding:
    return compile_check("C1", Check.model_validate({"name": name, "params": params}))(tenant, cluster, NOW)


@pytest.mark.parametrize("row", ROWS, ids=[f"{r[0]}-{r[4]}-{i}" for i, r in enumerate(ROWS)])
def test_check(row: Row) -> None:
    name, params, tenant, cluster, outcome, reason = row
    finding = run(name, params, tenant, cluster)
    assert finding.outcome == outcome, finding
    assert reason in finding.reason
    assert "\n" not in finding.reason


def test_every_check_has_rows_for_each_outcome_it_documents() -> None:
    seen = {(name, outcome) for name, _, _, _, outcome, _ in ROWS}
    documented = {(spec.name, outcome) for spec in LIBRARY.values() for outcome in spec.outcomes}
    assert documented <= seen, documented - seen
    assert seen <= documented, seen - documented


def test_evidence_references() -> None:
    assert run("network-default-deny", {}, TENANT, CLUSTER).evidence == ("NetworkPolicy/acme/privatevault-isolation",)
    assert run("quota-set", {}, TWO_NS, CLUSTER).evidence == ("Namespace/acme-dev",)
    assert run("kek-rotated-within", {}, TENANT, CLUSTER).evidence == ("Tenant/acme", "ledger:412")
    assert run("deletion-quorum", {}, TENANT, CLUSTER).evidence == ("QuorumPolicy/two-person",)
    assert run("evidence-exported-within", {}, TENANT, CLUSTER).evidence == ("EvidenceExport/q3",)
    assert run("cnsa2-algorithms", {}, TENANT, CLUSTER).evidence == ("ProtectionPolicy/cnsa",)
    assert run("ledger-verified-within", {}, TENANT, CLUSTER).evidence == ("checkpoint:9000",)


def test_a_long_list_of_names_is_cut() -> None:
    many = replace(TENANT, namespaces=tuple(NamespaceFacts(f"ns-{i}") for i in range(10)))
    finding = run("network-default-deny", {}, many, CLUSTER)
    assert "missing in namespaces ns-0, ns-1, ns-2 and 7 more" in finding.reason
    assert len(finding.evidence) == 10


def test_the_api_lists_the_library_names() -> None:
    assert API_NAMES == CHECK_NAMES
    assert len(CHECK_NAMES) == 17


@pytest.mark.parametrize(
    ("name", "params", "problem"),
    [
        ("quota-set", {"resource": ["pods"]}, "resource: Extra inputs are not permitted"),
        ("kek-rotated-within", {"days": 0}, "days: Input should be greater than or equal to 1"),
        ("kek-rotated-within", {"days": "often"}, "days: Input should be a valid integer"),
        ("data-residency", {}, "regions: Field required"),
        ("data-residency", {"regions": []}, "regions: List should have at least 1 item"),
        ("owners-defined", {"min_owners": 2}, "min_owners: Extra inputs are not permitted"),
        ("manual", {"x": 1}, "x: Extra inputs are not permitted"),
    ],
)
def test_bad_params_name_control_and_check(name: str, params: dict[str, Any], problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        compile_check("CC6.1", Check.model_validate({"name": name, "params": params}))
    assert caught.value.reason == "InvalidCheckParams"
    assert str(caught.value).startswith(f"control CC6.1, check {name}: invalid params: ")
    assert problem in str(caught.value)


def test_an_unknown_name_is_refused() -> None:
    with pytest.raises(SpecError) as caught:
        compile_check("CC6.1", Check.model_construct(name="tenant-network-isolated", params={}))  # type: ignore[arg-type]
    assert caught.value.reason == "UnknownCheck"
    assert "control CC6.1: 'tenant-network-isolated' is not a check of the library" in str(caught.value)


def test_params_are_validated_once() -> None:
    check = compile_check("C", Check.model_validate({"name": "deletion-quorum", "params": {"minRoles": 1}}))
    assert check.params.model_dump(by_alias=True) == {
        "minApprovals": 2,
        "minRoles": 1,
        "actions": ["DeleteTenant", "CryptoShred"],
    }
