"""The operator's informers: a paginated listing with the children's label selector, then a watch
from its version; events kept as compact entries, changes (never the first listing, never an
object just added) reported, a bookmark moving the version, and a listing again on 410 Gone that
reports what changed or went meanwhile. The view reads the informers' stores as it reads kopf's
indexes, without a request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from privatevault.cache import CACHED, INFORMED, ClusterView, Entry, Store
from privatevault.cluster import Expired, _path
from privatevault.informer import Informer, Informers

from .fakes import FakeCluster

QUOTAS = next(c for c in CACHED if c.kind == "ResourceQuota")
SECRETS = next(c for c in CACHED if c.kind == "Secret")
MANAGED = {"app.kubernetes.io/managed-by": "privatevault", "privatevault.io/tenant": "acme"}


def obj(kind: str, name: str, version: int, namespace: str = "acme", **extra: Any) -> dict[str, Any]:
    labels = extra.pop("labels", MANAGED)
    # As a listing's items come: without kind (the informer sets it).
    return {
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(version), "labels": labels},
        **extra,
    }


class Source:
    """The API server as the informer sees it: pages of a listing, then scripted watches."""

    def __init__(self, pages: list[list[dict[str, Any]]], version: str = "100") -> None:
        self.pages = pages
        self.version = version
        self.watches: list[list[tuple[str, dict[str, Any]] | Exception]] = []
        self.calls: list[tuple[str, Any]] = []
        #: Set when a watch is asked for beyond the scripted ones (what a test's run stops on).
        self.exhausted = threading.Event()

    def list_chunk(
        self,
        api_version: str,
        plural: str,
        *,
        label_selector: str | None = None,
        limit: int = 500,
        after: str | None = None,
    ) -> tuple[list[dict[str, Any]], str, str | None]:
        page = int(after or 0)
        self.calls.append(("list", (plural, label_selector, after)))
        following = str(page + 1) if page + 1 < len(self.pages) else None
        return [dict(item) for item in self.pages[page]], self.version, following

    def watch(
        self,
        api_version: str,
        plural: str,
        *,
        resource_version: str,
        label_selector: str | None = None,
        timeout: int = 300,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        self.calls.append(("watch", (plural, label_selector, resource_version)))
        if not self.watches:
            self.exhausted.set()
        for event in self.watches.pop(0) if self.watches else []:
            if isinstance(event, Exception):
                raise event
            yield event


def informer(source: Source, spec: Any = QUOTAS) -> tuple[Informer, list[tuple[str, str]]]:
    changes: list[tuple[str, str]] = []
    return Informer(source, spec, changed=lambda _, kind, o: changes.append((kind, o["metadata"]["name"]))), changes


def test_the_first_listing_fills_the_store_page_by_page_with_the_label_selector_and_reports_nothing() -> None:
    source = Source([[obj("ResourceQuota", "a", 10)], [obj("ResourceQuota", "b", 11)]])
    inf, changes = informer(source)
    inf.relist()
    assert inf.synced.is_set()
    assert [call for call in source.calls if call[0] == "list"] == [
        ("list", ("resourcequotas", "app.kubernetes.io/managed-by=privatevault", None)),
        ("list", ("resourcequotas", "app.kubernetes.io/managed-by=privatevault", "1")),
    ]
    assert sorted(e.name for e in inf.store.get(("ns", "acme")) or []) == ["a", "b"]
    assert [e.name for e in inf.store.get(("tenant", "acme")) or []] == ["a", "b"]
    [kept] = inf.store.get(("obj", "acme", "a")) or []
    assert kept.object()["kind"] == "ResourceQuota" and kept.resource_version == 10
    assert changes == []


def test_secrets_are_kept_only_when_ours_or_tls() -> None:
    source = Source(
        [
            [
                obj("Secret", "kek", 1, type="Opaque"),
                obj(
                    "Secret",
                    "cert",
                    2,
                    labels={},
                    type="kubernetes.io/tls",
                    data={"tls.key": "a2V5", "tls.crt": "Yw=="},
                ),
                obj("Secret", "someone-elses", 3, labels={}, type="Opaque"),
            ]
        ]
    )
    inf, changes = informer(source, SECRETS)
    inf.relist()
    assert source.calls[0] == ("list", ("secrets", None, None))  # two conditions: filtered here
    assert sorted(e.name for e in inf.store.get(("ns", "acme")) or []) == ["cert", "kek"]
    [cert] = inf.store.get(("obj", "acme", "cert")) or []
    assert cert.object()["data"] == {"tls.crt": "Yw=="}  # never a private key
    # A Secret that stops being ours is dropped, and that is a change.
    inf.apply("MODIFIED", obj("Secret", "kek", 4, labels={}, type="Opaque"))
    assert inf.store.get(("obj", "acme", "kek")) is None
    assert changes == [("DELETED", "kek")]


def test_watch_events_update_the_store_and_report_changes_not_additions() -> None:
    source = Source([[obj("ResourceQuota", "a", 10)]])
    source.watches = [
        [
            ("ADDED", obj("ResourceQuota", "b", 101)),
            ("MODIFIED", obj("ResourceQuota", "a", 102, spec={"hard": {"pods": "1"}})),
            ("BOOKMARK", {"metadata": {"resourceVersion": "150"}}),
            ("DELETED", obj("ResourceQuota", "b", 151)),
        ],
        [],
    ]
    inf, changes = informer(source)
    inf.relist()
    inf.follow(threading.Event())
    assert changes == [("MODIFIED", "a"), ("DELETED", "b")]
    [a] = inf.store.get(("obj", "acme", "a")) or []
    assert a.object()["spec"] == {"hard": {"pods": "1"}}
    assert inf.store.get(("obj", "acme", "b")) is None
    inf.follow(threading.Event())
    assert source.calls[-1] == ("watch", ("resourcequotas", "app.kubernetes.io/managed-by=privatevault", "151"))


def test_a_watch_too_old_lists_again_and_reports_what_changed_or_went_meanwhile() -> None:
    source = Source([[obj("ResourceQuota", "a", 10), obj("ResourceQuota", "b", 11)]])
    source.watches = [[Expired("410 Gone")]]
    inf, changes = informer(source)
    inf.relist()
    source.pages = [[obj("ResourceQuota", "a", 20), obj("ResourceQuota", "c", 21)]]
    source.version = "300"
    inf.run(source.exhausted)
    assert sorted(changes) == [("DELETED", "b"), ("MODIFIED", "a")]  # c was added: not reported
    assert sorted(e.name for e in inf.store.get(("ns", "acme")) or []) == ["a", "c"]
    assert inf._version == "300"


def test_the_view_reads_the_stores_without_a_request_once_every_cache_is_bound() -> None:
    class Counting(FakeCluster):
        requests = 0

        def get(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
            self.requests += 1
            return super().get(*args, **kwargs)

    live = Counting()
    informers = Informers(Source([[]]), INFORMED)
    view = ClusterView(live)
    view.bind(informers.stores)
    assert not view.bound  # kopf's indexes of the operator's own kinds are still missing
    view.bind({c.index: Store(c.kind) for c in CACHED if c.by_kopf})
    assert view.bound
    store = informers.stores[QUOTAS.index]
    store.put("acme", Entry.of(obj("ResourceQuota", "compute", 5), "ResourceQuota"))
    found = view.get("v1", "ResourceQuota", "compute", "acme")
    assert found is not None and found["metadata"]["resourceVersion"] == "5"
    assert [q["metadata"]["name"] for q in view.list("v1", "ResourceQuota", namespace="acme")] == ["compute"]
    assert live.requests == 0


def test_changes_run_on_the_pool_and_a_failing_handler_does_not_stop_the_others() -> None:
    seen: list[str] = []
    done = threading.Event()

    def on_change(_: Any, kind: str, o: dict[str, Any]) -> None:
        if o["metadata"]["name"] == "bad":
            raise RuntimeError("boom")
        seen.append(f"{kind} {o['metadata']['name']}")
        done.set()

    informers = Informers(Source([[]]), [QUOTAS])
    informers._on_change = on_change
    informers._pool = ThreadPoolExecutor(max_workers=1)
    informers._dispatch(QUOTAS, "MODIFIED", obj("ResourceQuota", "bad", 1))
    informers._dispatch(QUOTAS, "MODIFIED", obj("ResourceQuota", "good", 2))
    assert done.wait(5)
    informers.stop()
    assert seen == ["MODIFIED good"]


@pytest.mark.parametrize("api_version, path", [("v1", "/api/v1/secrets"), ("apps/v1", "/apis/apps/v1/secrets")])
def test_collection_paths(api_version: str, path: str) -> None:
    assert _path(api_version, "secrets") == path
