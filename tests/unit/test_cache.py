"""The cached view of the cluster: reads served from the watch indexes with no request, drift
decided by the server once and then remembered while nothing changes, a change by someone else
asked about again, our own writes seen before their watch events, a TLS private key never kept,
and live reads only before kopf's indexes are bound."""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

from privatevault.cache import CACHED, RECENT_SECONDS, ClusterView, index_keys, slim
from tests import builders

from .fakes import FakeCluster


class CountingCluster(FakeCluster):
    """The live side: counts every request the view makes."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        self.requests.append(f"GET {kind}/{name}")
        return super().get(api_version, kind, name, namespace)

    def list(self, api_version: str, kind: str, **kwargs: Any) -> list[dict[str, Any]]:
        self.requests.append(f"LIST {kind}")
        return super().list(api_version, kind, **kwargs)

    def apply(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        self.requests.append(f"{'DRYRUN' if dry_run else 'APPLY'} {obj['kind']}/{obj['metadata']['name']}")
        return super().apply(obj, dry_run=dry_run)

    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        self.requests.append(f"CREATE {obj['kind']}/{obj['metadata']['name']}")
        self.put(obj)
        return self.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        self.requests.append(f"DELETE {kind}/{name}")
        return super().delete(api_version, kind, name, namespace)


class Indexes:
    """kopf's indexes as the view sees them: a mapping of keys to stores, filled from watch events."""

    def __init__(self) -> None:
        self.indexes: dict[str, defaultdict[tuple[str, ...], dict[str, dict[str, Any]]]] = {
            c.index: defaultdict(dict) for c in CACHED
        }

    def event(self, obj: dict[str, Any], *, deleted: bool = False) -> None:
        spec = next(c for c in CACHED if c.kind == obj["kind"])
        index, uid = self.indexes[spec.index], obj["metadata"]["uid"]
        for key, value in index_keys(obj, obj["kind"]).items():
            if deleted:
                index[key].pop(uid, None)
            else:
                index[key][uid] = value

    def kwargs(self) -> dict[str, Any]:
        return {name: _Index(index) for name, index in self.indexes.items()} | {"logger": None}


class _Index:
    def __init__(self, data: defaultdict[tuple[str, ...], dict[str, dict[str, Any]]]) -> None:
        self._data = data

    def get(self, key: tuple[str, ...]) -> list[dict[str, Any]] | None:
        found = self._data.get(key)
        return list(found.values()) if found else None


def quota(name: str = "compute", pods: str = "10") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name, "namespace": "acme", "labels": {"app.kubernetes.io/managed-by": "privatevault"}},
        "spec": {"hard": {"pods": pods}},
    }


def world() -> tuple[CountingCluster, Indexes, ClusterView]:
    live, indexes = CountingCluster(), Indexes()
    view = ClusterView(live, clock=lambda: 0.0)
    view.bind(indexes.kwargs())
    return live, indexes, view


def test_reads_come_from_the_indexes_and_cost_no_request() -> None:
    live, indexes, view = world()
    live.put(quota())
    indexes.event(live.objects[("ResourceQuota", "acme", "compute")])
    assert view.get("v1", "ResourceQuota", "compute", "acme") is not None
    assert [o["metadata"]["name"] for o in view.list("v1", "ResourceQuota", namespace="acme")] == ["compute"]
    assert view.get("v1", "ResourceQuota", "other", "acme") is None
    assert live.requests == []


def test_drift_is_asked_once_then_remembered_until_someone_changes_the_object() -> None:
    live, indexes, view = world()
    current = view.apply(quota())
    indexes.event(live.objects[("ResourceQuota", "acme", "compute")])
    live.requests.clear()
    cached = view.get("v1", "ResourceQuota", "compute", "acme")
    for _ in range(3):  # idle resyncs
        assert view.drifted(quota(), cached) is False
    assert live.requests == []
    edited = copy.deepcopy(live.objects[("ResourceQuota", "acme", "compute")])
    edited["spec"]["hard"]["pods"] = "1000"
    edited["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 10)
    live.objects[("ResourceQuota", "acme", "compute")] = edited
    indexes.event(edited)
    assert view.in_sync(edited) is False  # a watch event of someone else's change reconciles the tenant
    assert view.drifted(quota(), view.get("v1", "ResourceQuota", "compute", "acme")) is True
    assert live.requests == ["DRYRUN ResourceQuota/compute"]


def test_our_own_write_is_recognised_in_its_watch_event() -> None:
    _, _, view = world()
    applied = view.apply(quota())
    assert view.in_sync(applied) is True


def test_a_write_is_read_back_before_its_watch_event_arrives_and_a_delete_hides_the_object() -> None:
    live, indexes, view = world()
    view.apply(quota(pods="5"))
    assert view.get("v1", "ResourceQuota", "compute", "acme")["spec"]["hard"]["pods"] == "5"  # type: ignore[index]
    indexes.event(live.objects[("ResourceQuota", "acme", "compute")])
    view.delete("v1", "ResourceQuota", "compute", "acme")  # the index still holds it for a moment
    assert view.get("v1", "ResourceQuota", "compute", "acme") is None
    assert view.list("v1", "ResourceQuota", namespace="acme") == []


def test_an_object_deleted_by_someone_else_right_after_our_write_reads_as_gone() -> None:
    """A drift repaired (our write), then the object deleted by someone else within RECENT_SECONDS:
    the watch's DELETED event makes the view forget our write, so the next reconcile makes it again."""
    live, indexes, view = world()
    view.apply(quota())
    obj = live.objects.pop(("ResourceQuota", "acme", "compute"))
    indexes.event(obj, deleted=True)
    view.forget("ResourceQuota", "acme", "compute")
    assert view.get("v1", "ResourceQuota", "compute", "acme") is None
    assert view.list("v1", "ResourceQuota", namespace="acme") == []
    assert view.drifted(quota(), view.get("v1", "ResourceQuota", "compute", "acme")) is True


def test_a_tls_private_key_is_never_kept() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": "web", "namespace": "acme", "managedFields": [{"manager": "x"}]},
        "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"},
    }
    kept = slim(secret)
    assert kept["data"] == {"tls.crt": "Y2VydA=="}
    assert "managedFields" not in kept["metadata"]
    assert secret["data"]["tls.key"] == "a2V5"  # the watch's own object is left alone


def test_an_unbound_view_reads_live() -> None:
    live = CountingCluster()
    view = ClusterView(live)
    view.bind({"pv_namespaces": object()})  # not every index yet: stays unbound
    assert view.bound is False
    assert view.get("v1", "ResourceQuota", "compute", "acme") is None
    assert live.requests == ["GET ResourceQuota/compute"]


def test_versions_name_each_cached_object_of_a_kind_and_move_when_one_changes() -> None:
    live, indexes, view = world()
    for name in ("acme", "globex"):
        live.put(builders.tenant(name, uid=f"uid-{name}"))
        indexes.event(live.objects[("Tenant", None, name)])
    first = view.versions("privatevault.io/v1alpha1", "Tenant")
    assert first is not None and [name for name, _ in first] == ["acme", "globex"]
    changed = dict(live.objects[("Tenant", None, "acme")])
    changed["metadata"] = {**changed["metadata"], "resourceVersion": "999"}
    indexes.event(changed)
    assert view.versions("privatevault.io/v1alpha1", "Tenant") == (("acme", 999), first[1])
    assert view.versions("v1", "ResourceQuota") is None  # namespaced: not this question
    assert live.requests == []


def namespace(name: str, tenant: str | None) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "privatevault"} | ({"privatevault.io/tenant": tenant} if tenant else {})
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def test_a_tenants_namespaces_list_with_our_recent_writes_and_none_of_another_tenants() -> None:
    live, indexes, view = world()
    now = [0.0]
    view = ClusterView(live, clock=lambda: now[0])
    view.bind(indexes.kwargs())
    view.apply(namespace("acme-a", "acme"))  # not in the cache yet: our write stands for it
    view.apply(namespace("globex-a", "globex"))
    indexes.event(live.objects[("Namespace", None, "globex-a")])
    view.apply(namespace("acme-b", "acme"))
    indexes.event(live.objects[("Namespace", None, "acme-b")])
    view.apply(namespace("acme-b", None))  # relabelled by our last write, the cache still says acme's

    def names(tenant: str) -> list[str]:
        found = view.list("v1", "Namespace", label_selector=f"privatevault.io/tenant={tenant}")
        return sorted(o["metadata"]["name"] for o in found)

    assert names("acme") == ["acme-a"]
    assert names("globex") == ["globex-a"]
    view.delete("v1", "Namespace", "globex-a")  # deleted by us, the cache still holds it
    assert names("globex") == []
    now[0] = RECENT_SECONDS + 1  # every write aged out: the caches alone answer
    view.apply(namespace("initech-a", "initech"))  # a write expires the old ones
    assert names("acme") == ["acme-b"]  # the cache's (stale) label, as for any cached object
    assert view._recent_tenants == {("Namespace", ""): {"initech": {"initech-a"}}}  # nothing kept for ever
