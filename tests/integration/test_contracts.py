"""Contract tests: one table of behaviours per port, run against the unit tests' fake and against
the real adapter (the API server through the cluster view, PostgreSQL, the local KMS with its
Secrets), so a fake cannot drift from the adapter it stands for."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from privatevault.cache import ClusterView
from privatevault.cluster import Cluster, SecretStore
from privatevault.database import open_pool
from privatevault.errors import PrivateVaultError, SpecError
from privatevault.kms import LocalKms
from privatevault.kms.tenants import LocalTenantKeys
from privatevault.ledger import GENESIS, Event, ResourceRef, record_hash
from privatevault.ledger.schema import Database
from privatevault.ledger.store import Ledger
from privatevault.mcs.store import LevelStore
from privatevault.reconcile.ports import ClusterPort, KeysPort, LedgerPort, LevelPort
from tests.support import Kubectl
from tests.unit.fakes import FakeCluster, FakeKeys, FakeLedger, FakeLevels

pytestmark = pytest.mark.integration

SIDES = ["fake", "real"]


@pytest.fixture(params=SIDES)
def cluster(request: pytest.FixtureRequest) -> Iterator[tuple[ClusterPort, str]]:
    namespace = f"contract-{uuid.uuid4().hex[:8]}"
    if request.param == "fake":
        yield FakeCluster(), namespace
        return
    kubectl: Kubectl = request.getfixturevalue("kubectl")
    live = Cluster.connect(kubectl.kubeconfig)
    live.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    yield ClusterView(live), namespace
    live.delete("v1", "Namespace", namespace)
    live.close()


def config_map(namespace: str, name: str = "settings", **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"contract": "yes"}},
        "data": data or {"colour": "blue"},
    }


def test_cluster_get_apply_drift_list_delete(cluster: tuple[ClusterPort, str]) -> None:
    port, namespace = cluster
    assert port.get("v1", "ConfigMap", "settings", namespace) is None
    desired = config_map(namespace)
    applied = port.apply(desired)
    assert applied["metadata"]["uid"] and applied["metadata"]["resourceVersion"]
    current = port.get("v1", "ConfigMap", "settings", namespace)
    assert current is not None and current["data"] == {"colour": "blue"}
    assert port.drifted(desired, current) is False
    assert port.drifted(config_map(namespace, colour="red"), current) is True
    assert port.drifted(desired, None) is True
    assert [
        o["metadata"]["name"] for o in port.list("v1", "ConfigMap", namespace=namespace, label_selector="contract=yes")
    ] == ["settings"]
    assert port.list("v1", "ConfigMap", namespace=namespace, label_selector="contract=no") == []
    assert port.delete("v1", "ConfigMap", "settings", namespace) is True
    assert port.get("v1", "ConfigMap", "settings", namespace) is None
    assert port.delete("v1", "ConfigMap", "settings", namespace) is False


def test_cluster_check_refuses_what_the_server_refuses_and_stores_nothing(cluster: tuple[ClusterPort, str]) -> None:
    port, namespace = cluster
    port.check(config_map(namespace, name="fine"))
    assert port.get("v1", "ConfigMap", "fine", namespace) is None  # a dry run stores nothing
    with pytest.raises(SpecError) as refused:
        port.check(config_map(namespace, name="Not_A_Name"))
    assert refused.value.reason == "ChildRejected"


@pytest.fixture(params=SIDES)
def ledger(request: pytest.FixtureRequest) -> Iterator[LedgerPort]:
    if request.param == "fake":
        yield FakeLedger()
        return
    database: Database = request.getfixturevalue("database")
    real = Ledger(database.operator_dsn)
    yield real
    real.close()


def event(key: str) -> Event:
    return Event(
        tenant="acme",
        actor="contract",
        action="create-namespace",
        resource=ResourceRef(kind="Namespace", name="acme"),
        outcome="intended",
        idempotency_key=key,
    )


def test_ledger_appends_a_chain_and_a_retried_key_finds_its_record(ledger: LedgerPort) -> None:
    first = ledger.append(event("tenant/u/create-namespace/1"))
    assert (first.seq, first.prev_hash) == (1, GENESIS)
    assert first.record_hash == record_hash(GENESIS, first.canonical)
    again = ledger.append(event("tenant/u/create-namespace/1"))
    assert again == first
    second = ledger.append(event("tenant/u/create-namespace/2"))
    assert (second.seq, second.prev_hash) == (2, first.record_hash)


def test_ledger_finds_records_by_key_prefix_oldest_first_newest_kept(ledger: LedgerPort) -> None:
    for key in ("quorumpolicy/a_b/in-force/1", "quorumpolicy/a_b/in-force/2", "quorumpolicy/aXb/in-force/1"):
        ledger.append(event(key))
    ledger.append(event("quorumpolicy/a%/in-force/1"))
    found = [r.idempotency_key for r in ledger.find("quorumpolicy/a_b/")]
    assert found == ["quorumpolicy/a_b/in-force/1", "quorumpolicy/a_b/in-force/2"]  # "_" is no wildcard
    assert [r.idempotency_key for r in ledger.find("quorumpolicy/a_b/", limit=1)] == ["quorumpolicy/a_b/in-force/2"]
    assert [r.idempotency_key for r in ledger.find("quorumpolicy/a%")] == ["quorumpolicy/a%/in-force/1"]
    assert ledger.find("quorumpolicy/nothing/") == []


@pytest.fixture(params=SIDES)
def levels(request: pytest.FixtureRequest) -> Iterator[LevelPort]:
    if request.param == "fake":
        yield FakeLevels()
        return
    database: Database = request.getfixturevalue("database")
    pool = open_pool(database.operator_dsn, max_size=2)
    yield LevelStore(pool)
    pool.close()


def allocate(port: LevelPort, uid: str, requested: str | None = None) -> tuple[str, bool]:
    found = port.allocate(
        tenant=f"t-{uid}",
        tenant_uid=uid,
        confidentiality="Internal",
        integrity="High",
        compartments=[],
        requested=requested,
    )
    return str(found.level), found.hand_set


def test_levels_are_stable_per_tenant_and_never_reused(levels: LevelPort) -> None:
    level, hand_set = allocate(levels, "uid-a")
    assert hand_set is False
    assert allocate(levels, "uid-a") == (level, False)
    with pytest.raises(SpecError) as taken:
        allocate(levels, "uid-b", requested=level)
    assert taken.value.reason == "MCSConflict"
    levels.release("uid-a")
    with pytest.raises(SpecError):
        allocate(levels, "uid-c", requested=level)  # a released level stays taken for ever
    assert allocate(levels, "uid-d", requested="s0:c1000,c1001") == ("s0:c1000,c1001", True)


@pytest.fixture(params=SIDES)
def keys(request: pytest.FixtureRequest) -> Iterator[KeysPort]:
    if request.param == "fake":
        yield FakeKeys()
        return
    kubectl: Kubectl = request.getfixturevalue("kubectl")
    live = Cluster.connect(kubectl.kubeconfig)
    namespace = f"contract-kms-{uuid.uuid4().hex[:8]}"
    live.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    store = SecretStore(live, namespace)
    yield LocalTenantKeys(LocalKms.from_secret(store), store)
    live.delete("v1", "Namespace", namespace)
    live.close()


def test_keys_wrap_for_their_tenant_and_a_shredded_key_opens_nothing(keys: KeysPort) -> None:
    facts = keys.ensure("acme", ["acme"])
    assert facts.latest_version >= 1 and facts.name
    wrapped = keys.wrapper("acme").wrap(b"data key", context=b"ctx")
    assert keys.wrapper("acme").unwrap(wrapped, context=b"ctx") == b"data key"
    with pytest.raises(PrivateVaultError):
        keys.wrapper("other").unwrap(wrapped, context=b"ctx")
    keys.shred("acme")
    keys.ensure("acme", ["acme"])  # a new key under the same name
    with pytest.raises(PrivateVaultError):
        keys.wrapper("acme").unwrap(wrapped, context=b"ctx")
