"""Tenant reconcile decisions: children made once, every change audited first, conflicts stall,
drift restored with a record of its own, a retried reconcile writes no duplicate record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from privatevault.api.v1alpha1 import Tenant
from privatevault.errors import ConflictError, LedgerUnavailable, TransientError
from privatevault.ledger import verify_chain
from privatevault.manifests import labels
from privatevault.reconcile import tenant as decisions

from .fakes import FakeCluster, FakeLedger

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def make_tenant(**spec: Any) -> Tenant:
    body = {
        "apiVersion": "privatevault.io/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": "acme", "uid": "tenant-uid-1", "generation": 1},
        "spec": {"owners": [{"kind": "Group", "name": "acme-admins"}], "region": "eu-west-1", **spec},
    }
    return Tenant.model_validate(body)


def with_status(tenant: Tenant, result: decisions.Result) -> Tenant:
    status = decisions.status_after(tenant, children=result.children, error=None, now=NOW)
    return tenant.model_copy(update={"status": status})


def test_first_reconcile_creates_each_child_once_and_audits_it_first() -> None:
    cluster, ledger = FakeCluster(), FakeLedger()
    tenant = make_tenant(namespaces=["acme-a", "acme-b"], quota={"hard": {"pods": 10}})
    result = decisions.reconcile(tenant, cluster=cluster, ledger=ledger, actor="test")
    kinds = sorted(k for k, _, _ in cluster.applies)
    assert kinds == sorted(["Namespace"] * 2 + ["ResourceQuota", "LimitRange", "NetworkPolicy"] * 2)
    assert result.changed == 8
    assert [e.action for e in ledger.events][:2] == ["create-namespace", "create-namespace"]
    assert len({e.idempotency_key for e in ledger.events}) == 8
    assert verify_chain(ledger.records) is None
    ns = cluster.objects[("Namespace", None, "acme-a")]
    assert ns["metadata"]["labels"][labels.TENANT] == "acme"
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert cluster.objects[("ResourceQuota", "acme-b", "privatevault-quota")]["spec"]["hard"] == {"pods": "10"}


def test_second_reconcile_changes_nothing() -> None:
    cluster, ledger = FakeCluster(), FakeLedger()
    tenant = make_tenant()
    tenant = with_status(tenant, decisions.reconcile(tenant, cluster=cluster, ledger=ledger, actor="t"))
    before = len(ledger.records)
    again = decisions.reconcile(tenant, cluster=cluster, ledger=ledger, actor="t")
    assert again.changed == 0
    assert len(ledger.records) == before


def test_quota_change_is_an_audited_update() -> None:
    cluster, ledger = FakeCluster(), FakeLedger()
    tenant = make_tenant(quota={"hard": {"pods": 10}})
    tenant = with_status(tenant, decisions.reconcile(tenant, cluster=cluster, ledger=ledger, actor="t"))
    body = tenant.model_dump(by_alias=True)
    body["spec"]["quota"] = {"hard": {"pods": 20}}
    changed = Tenant.model_validate(body)
    result = decisions.reconcile(changed, cluster=cluster, ledger=ledger, actor="t")
    assert result.changed == 1
    assert ledger.events[-1].action == "update-resourcequota"
    assert cluster.objects[("ResourceQuota", "acme", "privatevault-quota")]["spec"]["hard"] == {"pods": "20"}


def test_deleted_child_is_restored_with_a_new_record_each_time() -> None:
    cluster, ledger = FakeCluster(), FakeLedger()
    tenant = make_tenant()
    key = ("NetworkPolicy", "acme", "privatevault-isolation")
    for _ in range(2):
        tenant = with_status(tenant, decisions.reconcile(tenant, cluster=cluster, ledger=ledger, actor="t"))
        del cluster.objects[key]
    before = len(ledger.records)
    decisions.reconcile(tenant, cluster=cluster, ledger=ledger, actor="t")
    assert key in cluster.objects
    assert len(ledger.records) == before + 1
    restores = [e for e in ledger.events if e.action == "create-networkpolicy"]
    assert len(restores) == 3 and len({e.idempotency_key for e in restores}) == 3


def test_crash_after_audit_then_retry_writes_no_duplicate() -> None:
    cluster, ledger = FakeCluster(), FakeLedger()
    tenant = make_tenant()

    class Crash(Exception):
        pass

    calls = 0

    def crash_on_third() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise Crash

    with pytest.raises(Crash):
        decisions.reconcile(tenant, cluster=cluster, ledger=ledger, actor="t", crash_point=crash_on_third)
    assert len(ledger.records) == 3 and len(cluster.applies) == 2
    decisions.reconcile(tenant, cluster=cluster, ledger=ledger, actor="t")
    assert len(ledger.records) == 4  # namespace, quota, limits, policy: one record each
    assert len(cluster.objects) == 4


@pytest.mark.parametrize(
    ("existing_labels", "needle"),
    [({}, "not managed by PrivateVault"), ({labels.TENANT: "globex"}, "belongs to tenant globex")],
)
def test_namespace_owned_elsewhere_stalls_before_any_change(existing_labels: dict[str, str], needle: str) -> None:
    cluster, ledger = FakeCluster(), FakeLedger()
    cluster.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shared", "labels": existing_labels}})
    tenant = make_tenant(namespaces=["acme-own", "shared"])
    with pytest.raises(ConflictError, match=needle):
        decisions.reconcile(tenant, cluster=cluster, ledger=ledger, actor="t")
    assert ledger.records == [] and cluster.applies == []
    status = decisions.status_after(tenant, children=None, error=ConflictError(needle), now=NOW)
    stalled = {c.type: c for c in status.conditions}["Stalled"]
    assert (stalled.status, stalled.reason) == ("True", "NamespaceConflict")


def test_ledger_down_changes_nothing() -> None:
    cluster, ledger = FakeCluster(), FakeLedger()
    ledger.down = True
    with pytest.raises(LedgerUnavailable):
        decisions.reconcile(make_tenant(), cluster=cluster, ledger=ledger, actor="t")
    assert cluster.applies == []


def test_namespace_of_previous_incarnation_is_waited_for() -> None:
    cluster, ledger = FakeCluster(), FakeLedger()
    cluster.put(
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
        decisions.reconcile(make_tenant(), cluster=cluster, ledger=ledger, actor="t")


def test_status_moves_through_kstatus_conditions() -> None:
    tenant = make_tenant()
    begin = decisions.status_after(tenant, children=None, error=None, now=NOW)
    states = {c.type: c.status for c in begin.conditions}
    assert states == {"Ready": "Unknown", "Reconciling": "True", "Stalled": "False"}
    assert begin.observed_generation is None
    tenant = tenant.model_copy(update={"status": begin})
    result = decisions.Result(children=[], changed=0)
    done = decisions.status_after(tenant, children=result.children, error=None, now=NOW)
    assert {c.type: c.status for c in done.conditions} == {"Ready": "True", "Reconciling": "False", "Stalled": "False"}
    assert done.observed_generation == 1
    retry = decisions.status_after(
        tenant.model_copy(update={"status": done}), children=None, error=LedgerUnavailable("down"), now=NOW
    )
    conditions = {c.type: c for c in retry.conditions}
    assert conditions["Reconciling"].reason == "LedgerUnavailable"
    assert conditions["Ready"].status == "True"  # kept while retrying
