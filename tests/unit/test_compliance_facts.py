"""The compliance facts gathered from what the operator holds (fakes of the caches and the ledger):
each namespace's labels, default-deny policy, quota and owners' binding, the workloads and the
policy protecting them, the QuorumPolicy in force (read from the ledger once and kept until the
policy is reconciled again), the last Ready EvidenceExport, who else holds the MCS level, and the
checkpointer's last proof."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from privatevault.api.v1alpha1 import QuorumPolicy, Tenant
from privatevault.compliance_facts import Facts, Gates
from privatevault.ledger.integrity import Integrity
from privatevault.manifests import tenant as tenant_manifests
from privatevault.manifests.protectionpolicy import POLICY_ANNOTATION
from privatevault.reconcile import quorumpolicy, tenant_gate
from privatevault.reconcile.ports import TenantPorts
from tests import builders

from .fakes import FakeCluster, FakeKeys, FakeLedger, FakeLevels

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
READY = {"type": "Ready", "status": "True", "reason": "Reconciled", "lastTransitionTime": "2026-11-29T10:00:00Z"}


def acme() -> dict[str, Any]:
    return dict(
        builders.tenant(
            "acme",
            uid="uid-acme",
            generation=1,
            labels={"tier": "prod"},
            namespaces=["acme-a", "acme-b"],
            protection_policy_ref="cnsa",
            quorum_policy_ref="two-person",
            deletion_policy="CryptoShred",
            status={
                "namespaces": ["acme-a", "acme-b"],
                "mcsLevel": "s0:c1,c2",
                "kms": {"provider": "vault", "keyName": "acme", "latestVersion": 2, "created": "2026-10-01T00:00:00Z"},
            },
        )
    )


def world() -> tuple[FakeCluster, FakeLedger, Integrity]:
    cluster, ledger = FakeCluster(), FakeLedger()
    body = acme()
    tenant = Tenant.model_validate(body)
    cluster.put(body)
    for child in tenant_manifests.children(tenant, "s0:c1,c2"):
        if child["metadata"].get("namespace") != "acme-b" or child["kind"] != "ResourceQuota":
            cluster.put(child)  # acme-b has no quota
    cluster.put(dict(builders.tenant("other", uid="uid-other", status={"mcsLevel": "s0:c1,c2"})))
    protected = builders.deployment("web", "acme-a")
    protected["spec"]["template"]["metadata"].setdefault("annotations", {})[POLICY_ANNOTATION] = "cnsa"
    cluster.put(protected)
    cluster.put(builders.deployment("batch", "acme-b"))
    cluster.put(
        dict(
            builders.protection_policy(
                "cnsa",
                profile="cnsa-2.0",
                uid="pp-uid",
                generation=1,
                status={"conditions": [{**READY, "observedGeneration": 1}]},
            )
        )
    )
    cluster.put(dict(builders.evidence_export("q3", tenants=["acme"], uid="ee", status={"conditions": [READY]})))
    policy = dict(
        builders.quorum_policy(
            "two-person",
            approvers=[builders.approver("x", roles=["a"]), builders.approver("y", roles=["b"])],
            rules=[builders.rule("DeleteTenant", min_approvals=2, required_roles=["a", "b"])],
            uid="qp",
        )
    )
    quorumpolicy.reconcile(
        QuorumPolicy.model_validate(policy), policy, cluster=cluster, ledger=ledger, actor="t", now=NOW
    )
    ports = TenantPorts(cluster=cluster, ledger=ledger, levels=FakeLevels(), keys=FakeKeys())
    tenant_gate.change(tenant, body, ports=ports, actor="t", now=NOW)
    return cluster, ledger, Integrity(checkpoint_size=42, verified_at=NOW, cosignatures=2)


def test_a_tenants_facts_come_from_the_caches_and_the_ledger() -> None:
    cluster, ledger, integrity = world()
    facts = Facts(cluster, Gates(ledger), integrity, {}).snapshot()
    found = facts.tenant(cluster.get("privatevault.io/v1alpha1", "Tenant", "acme") or {})
    a, b = found.namespaces
    assert (a.name, a.has_default_deny, a.owner_binding, a.mcs_label) == ("acme-a", True, True, "s0:c1,c2")
    assert a.label("pod-security.kubernetes.io/enforce") == "restricted"
    assert a.quota_hard is not None and b.quota_hard is None
    assert [(w.name, w.protected, w.policy) for w in found.workloads] == [("web", True, "cnsa"), ("batch", False, None)]
    assert found.protection is not None and found.protection.ready and found.protection.mode == "PQC"
    assert found.protection.algorithms == {"ML-KEM-1024", "ML-DSA-87", "AES-256-GCM"}
    assert found.quorum_policy == "two-person"
    assert [(r.action, r.min_approvals, r.roles) for r in found.quorum_rules] == [("DeleteTenant", 2, {"a", "b"})]
    assert found.last_export is not None and found.last_export.name == "q3"
    assert found.mcs_holders == {"other"} and found.kms_provider == "vault" and found.owners == 1
    assert found.kek_created == datetime(2026, 10, 1, tzinfo=UTC) and found.deletion_policy == "CryptoShred"
    assert facts.cluster.checkpoint_verified_at == NOW and facts.cluster.witness_cosignatures == 2


def test_the_policy_in_force_is_read_once_until_the_policy_is_reconciled() -> None:
    cluster, ledger, integrity = world()
    gates = Gates(ledger)
    body = cluster.get("privatevault.io/v1alpha1", "Tenant", "acme") or {}
    Facts(cluster, gates, integrity, {}).snapshot().tenant(body)
    ledger.down = True  # every read from here on would fail
    again = Facts(cluster, gates, integrity, {}).snapshot().tenant(body)
    assert again.quorum_policy == "two-person"
    ledger.down = False
    gates.forget_policy("two-person")
    ledger.records = [r for r in ledger.records if not r.idempotency_key.startswith("quorumpolicy/")]
    assert Facts(cluster, gates, integrity, {}).snapshot().tenant(body).quorum_policy is None
