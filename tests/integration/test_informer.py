"""The operator's informer against the real API server: a listing page by page with the children's
label selector, then the watch: an object labelled as ours appears, a change by someone else is
reported, a deletion too, and an object without the label is never kept."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from privatevault.cache import CACHED
from privatevault.cluster import Cluster
from privatevault.informer import Informer
from tests.support import Kubectl, eventually

pytestmark = pytest.mark.integration

QUOTAS = next(c for c in CACHED if c.kind == "ResourceQuota")
OURS = {"app.kubernetes.io/managed-by": "privatevault", "privatevault.io/tenant": "informer-test"}


def quota(namespace: str, name: str, pods: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"hard": {"pods": pods}},
    }


@pytest.fixture
def live(kubectl: Kubectl) -> Iterator[tuple[Cluster, str]]:
    namespace = f"informer-{uuid.uuid4().hex[:8]}"
    cluster = Cluster.connect(kubectl.kubeconfig)
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    yield cluster, namespace
    cluster.delete("v1", "Namespace", namespace)
    cluster.close()


def test_list_in_pages_then_watch_the_labelled_objects(
    live: tuple[Cluster, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, namespace = live
    for i in range(3):
        cluster.create(quota(namespace, f"before-{i}", "5", OURS))
    cluster.create(quota(namespace, "someone-elses", "5", {}))
    monkeypatch.setattr("privatevault.informer.PAGE", 1)  # one object a page: the continue tokens are used
    changes: list[tuple[str, str]] = []
    informer = Informer(cluster, QUOTAS, changed=lambda _, kind, obj: changes.append((kind, obj["metadata"]["name"])))
    stop = threading.Event()
    thread = threading.Thread(target=informer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert informer.synced.wait(30)
        names = lambda: sorted(e.name for e in informer.store.get(("ns", namespace)) or [])  # noqa: E731
        assert names() == ["before-0", "before-1", "before-2"]
        cluster.create(quota(namespace, "after", "5", OURS))
        eventually(lambda: "after" in names(), timeout=30, what="a new labelled quota in the cache")
        cluster.apply(quota(namespace, "before-1", "7", OURS))
        eventually(lambda: ("MODIFIED", "before-1") in changes, timeout=30, what="the change reported")
        [kept] = informer.store.get(("obj", namespace, "before-1")) or []
        assert kept.object()["spec"]["hard"]["pods"] == "7"
        cluster.delete("v1", "ResourceQuota", "before-2", namespace)
        eventually(lambda: ("DELETED", "before-2") in changes, timeout=30, what="the deletion reported")
        assert names() == ["after", "before-0", "before-1"]
        assert informer.store.get(("obj", namespace, "someone-elses")) is None
        assert all(name != "someone-elses" for _, name in changes)
    finally:
        stop.set()
