"""Tenant reconcile decisions: level, key and children made once, every change audited first,
conflicts stall before anything is made, drift restored with a record of its own, a retried
reconcile writes no duplicate record, removed namespaces released only when empty, deletion
retains or shreds the key and tombstones the level."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from privatevault.api.v1alpha1 import Tenant
from privatevault.errors import ConflictError, KmsUnavailable, LedgerUnavailable, SpecError, TransientError
from privatevault.ledger import verify_chain
from privatevault.manifests import labels
from privatevault.reconcile import tenant as decisions
from privatevault.reconcile.ports import TenantPorts
from tests import builders

from .fakes import FakeCluster, FakeKeys, FakeLedger, FakeLevels

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PER_NAMESPACE = ["ResourceQuota", "LimitRange", "NetworkPolicy", "RoleBinding"]


class World:
    def __init__(self) -> None:
        self.cluster, self.ledger, self.levels, self.keys = FakeCluster(), FakeLedger(), FakeLevels(), FakeKeys()
        self.ports = TenantPorts(cluster=self.cluster, ledger=self.ledger, levels=self.levels, keys=self.keys)

    def reconcile(self, tenant: Tenant, **kwargs: Any) -> tuple[Tenant, decisions.Result]:
        result = decisions.reconcile(tenant, ports=self.ports, actor="test", now=NOW, **kwargs)
        status = decisions.status_after(tenant, result=result, error=None, now=NOW)
        return tenant.model_copy(update={"status": status}), result

    def actions(self) -> list[str]:
        return [e.action for e in self.ledger.events]


def make_tenant(name: str = "acme", *, uid: str = "tenant-uid-1", **options: Any) -> Tenant:
    """The Tenant as the API server hands it over (uid, generation 1), owned by the group acme-admins."""
    options.setdefault("owners", [builders.group("acme-admins")])
    return Tenant.model_validate(builders.tenant(name, uid=uid, generation=1, **options))


def test_first_reconcile_makes_level_key_and_children_once_auditing_each_first() -> None:
    world = World()
    tenant = make_tenant(namespaces=["acme-a", "acme-b"], quota={"pods": 10})
    tenant, result = world.reconcile(tenant)
    assert world.actions()[:2] == ["assign-mcs-level", "provision-kek"]
    assert sorted(k for k, _, _ in world.cluster.applies) == sorted(["Namespace"] * 2 + PER_NAMESPACE * 2)
    assert result.changed == 2 + 10
    assert len({e.idempotency_key for e in world.ledger.events}) == 12
    assert verify_chain(world.ledger.records) is None
    ns = world.cluster.objects[("Namespace", None, "acme-a")]
    assert ns["metadata"]["labels"][labels.TENANT] == "acme"
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert ns["metadata"]["annotations"][labels.MCS_LEVEL] == result.mcs_level == "s0:c0,c1"
    assert world.cluster.objects[("ResourceQuota", "acme-b", "privatevault-quota")]["spec"]["hard"] == {"pods": "10"}
    binding = world.cluster.objects[("RoleBinding", "acme-a", "privatevault-owners")]
    assert binding["roleRef"]["name"] == "admin"
    assert binding["subjects"] == [{"kind": "Group", "name": "acme-admins", "apiGroup": "rbac.authorization.k8s.io"}]
    assert world.keys.keys == {"acme": ["acme-a", "acme-b"]}
    assert tenant.status is not None and tenant.status.kms is not None
    assert (tenant.status.kms.provider, tenant.status.kms.key_name) == ("local", "tenant-acme")


def test_second_reconcile_changes_nothing() -> None:
    world = World()
    tenant, _ = world.reconcile(make_tenant())
    before = len(world.ledger.records)
    _, again = world.reconcile(tenant)
    assert again.changed == 0
    assert len(world.ledger.records) == before


def test_quota_change_is_an_audited_update() -> None:
    world = World()
    tenant, _ = world.reconcile(make_tenant(quota={"pods": 10}))
    body = tenant.model_dump(by_alias=True)
    body["spec"]["quota"] = {"hard": {"pods": 20}}
    _, result = world.reconcile(Tenant.model_validate(body))
    assert result.changed == 1
    assert world.actions()[-1] == "update-resourcequota"
    assert world.cluster.objects[("ResourceQuota", "acme", "privatevault-quota")]["spec"]["hard"] == {"pods": "20"}


def test_deleted_child_is_restored_with_a_new_record_each_time() -> None:
    world = World()
    tenant = make_tenant()
    key = ("NetworkPolicy", "acme", "privatevault-isolation")
    for _ in range(2):
        tenant, _ = world.reconcile(tenant)
        del world.cluster.objects[key]
    before = len(world.ledger.records)
    world.reconcile(tenant)
    assert key in world.cluster.objects
    assert len(world.ledger.records) == before + 1
    restores = [e for e in world.ledger.events if e.action == "create-networkpolicy"]
    assert len(restores) == 3 and len({e.idempotency_key for e in restores}) == 3


def test_crash_after_audit_then_retry_writes_no_duplicate() -> None:
    world = World()
    calls = 0

    class Crash(Exception):
        pass

    def crash_on_fifth() -> None:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise Crash

    with pytest.raises(Crash):
        world.reconcile(make_tenant(), crash_point=crash_on_fifth)
    assert len(world.ledger.records) == 5 and len(world.cluster.applies) == 2
    world.reconcile(make_tenant())
    assert len(world.ledger.records) == 2 + 5  # level, key, namespace and its four policies: one record each
    assert len(world.cluster.objects) == 5


@pytest.mark.parametrize(
    ("existing_labels", "needle"),
    [({}, "not managed by PrivateVault"), ({labels.TENANT: "globex"}, "belongs to tenant globex")],
)
def test_namespace_owned_elsewhere_stalls_before_any_change(existing_labels: dict[str, str], needle: str) -> None:
    world = World()
    world.cluster.put(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shared", "labels": existing_labels}}
    )
    tenant = make_tenant(namespaces=["acme-own", "shared"])
    with pytest.raises(ConflictError, match=needle):
        world.reconcile(tenant)
    assert world.ledger.records == [] and world.cluster.applies == [] and world.keys.keys == {}
    status = decisions.status_after(tenant, result=None, error=ConflictError(needle), now=NOW)
    stalled = {c.type: c for c in status.conditions}["Stalled"]
    assert (stalled.status, stalled.reason) == ("True", "NamespaceConflict")


def test_ledger_down_changes_nothing() -> None:
    world = World()
    world.ledger.down = True
    with pytest.raises(LedgerUnavailable):
        world.reconcile(make_tenant())
    assert world.cluster.applies == [] and world.keys.keys == {}


def test_kms_down_makes_no_namespace_and_stalls_with_kms_unavailable() -> None:
    world = World()
    world.keys.down = True
    tenant = make_tenant()
    with pytest.raises(KmsUnavailable) as caught:
        world.reconcile(tenant)
    assert world.cluster.applies == []
    status = decisions.status_after(tenant, result=None, error=caught.value, now=NOW)
    assert {c.type: c.reason for c in status.conditions if c.status == "True"} == {"Stalled": "KMSUnavailable"}
    world.keys.down = False
    recovered, _ = world.reconcile(tenant)
    assert recovered.status is not None and recovered.status.kms is not None


def test_hand_set_level_taken_by_another_tenant_is_refused() -> None:
    world = World()
    world.reconcile(make_tenant(uid="other", mcs_level="s0:c5,c9"))
    with pytest.raises(SpecError, match="taken") as caught:
        world.reconcile(make_tenant("globex", uid="second", mcs_level="s0:c9,c5"))
    assert caught.value.reason == "MCSConflict"


def test_removed_namespace_is_released_only_when_empty() -> None:
    world = World()
    tenant, _ = world.reconcile(make_tenant(namespaces=["acme-a", "acme-b"]))
    world.cluster.put({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "acme-b"}})
    body = tenant.model_dump(by_alias=True)
    body["spec"]["namespaces"] = ["acme-a"]
    shrunk = Tenant.model_validate(body)
    with pytest.raises(SpecError, match="acme-b \\(Pod web\\)") as caught:
        world.reconcile(shrunk)
    assert caught.value.reason == "NamespaceNotEmpty"
    assert ("Namespace", None, "acme-b") in world.cluster.objects
    del world.cluster.objects[("Pod", "acme-b", "web")]
    world.reconcile(shrunk)
    assert ("Namespace", None, "acme-b") not in world.cluster.objects
    assert world.actions()[-1] == "delete-namespace"


def test_namespace_of_previous_incarnation_is_waited_for() -> None:
    world = World()
    world.cluster.put(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": "acme",
                "labels": {labels.TENANT: "acme"},
                "ownerReferences": [{"kind": "Tenant", "name": "acme", "uid": "old-uid"}],
            },
        }
    )
    with pytest.raises(TransientError, match="still being removed"):
        world.reconcile(make_tenant())


@pytest.mark.parametrize(("policy", "shredded", "retained"), [("CryptoShred", ["acme"], []), ("Retain", [], ["acme"])])
def test_finalize_follows_the_deletion_policy(policy: str, shredded: list[str], retained: list[str]) -> None:
    world = World()
    tenant, _ = world.reconcile(make_tenant(deletion_policy=policy))
    decisions.finalize(tenant, ports=world.ports, actor="test", deletion_policy=policy, gate="NotGated")
    assert (world.keys.shredded, world.keys.retained) == (shredded, retained)
    assert world.levels.released == ["tenant-uid-1"]
    step = "crypto-shred-kek" if policy == "CryptoShred" else "retain-kek"
    assert world.actions()[-3:] == ["delete-tenant", step, "release-mcs-level"]
    recorded = list(world.ledger.records)
    # a retried finalizer writes no new record
    decisions.finalize(tenant, ports=world.ports, actor="test", deletion_policy=policy, gate="NotGated")
    assert len(world.ledger.records) == len(recorded)
    assert world.ledger.records == recorded


def test_status_moves_through_kstatus_conditions() -> None:
    world = World()
    tenant = make_tenant()
    begin = decisions.status_after(tenant, result=None, error=None, now=NOW)
    assert {c.type: c.status for c in begin.conditions} == {
        "Ready": "Unknown",
        "Reconciling": "True",
        "Stalled": "False",
    }
    assert begin.observed_generation is None
    done, _ = world.reconcile(tenant.model_copy(update={"status": begin}))
    assert done.status is not None
    assert {c.type: c.status for c in done.status.conditions} == {
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
    }
    assert done.status.observed_generation == 1
    retry = decisions.status_after(done, result=None, error=LedgerUnavailable("down"), now=NOW)
    conditions = {c.type: c for c in retry.conditions}
    assert conditions["Reconciling"].reason == "LedgerUnavailable"
    assert conditions["Ready"].status == "True"  # kept while retrying


def tls_secret(namespace: str) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web.acme.example")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=10))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": "web-tls", "namespace": namespace},
        "data": {"tls.crt": base64.b64encode(pem).decode(), "tls.key": "bm90IGEga2V5"},
    }


def test_crypto_inventory_in_status_and_ledger() -> None:
    world = World()
    tenant, _ = world.reconcile(make_tenant())
    world.cluster.put(tls_secret("acme"))
    tenant, _ = world.reconcile(tenant)
    assert tenant.status is not None and tenant.status.crypto_inventory is not None
    summary = tenant.status.crypto_inventory
    assert (summary.total, summary.quantum_vulnerable, summary.expiring_within30_days) == (1, 1, 1)
    recorded = [e for e in world.ledger.events if e.action == "crypto-inventory"]
    assert len(recorded) == 1 and recorded[0].details["assets"][0]["algorithm"] == "ECDSA-P256"
    world.reconcile(tenant)  # unchanged inventory: no second record
    assert len([e for e in world.ledger.events if e.action == "crypto-inventory"]) == 1
