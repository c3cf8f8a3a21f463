"""The operator's own watch caches of the Kubernetes kinds it reads (``cache.INFORMED``).

One informer per kind, each on a thread of its own: a paginated listing (with the server-side
label selector where the kind is the operator's children), then a watch from the listing's
resourceVersion with bookmarks, again from the last version seen when the server ends it, and a
new listing when that version is too old (410 Gone) or the connection fails. Each object is kept
only as the cache's compact :class:`~privatevault.cache.Entry` in a
:class:`~privatevault.cache.Store`: nothing else per object (kopf's indexes kept a memory, a
worker and three index stores per object, and held every object's worker until all were listed).

``synced`` is set once every kind is listed; the operator's start-up waits for it, so no handler
reads a half-filled cache. A change seen after that (an event, or an object found changed or
gone by a new listing; not an object added: whoever made it sees to it) is handed to
``on_change`` on a small pool of threads, never on the watch's own thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from privatevault.cache import Cached, Entry, Store
from privatevault.cluster import Expired
from privatevault.errors import PrivateVaultError

log = logging.getLogger("privatevault.informer")

#: A change after the first listing: the kind, the event type (MODIFIED or DELETED), the object.
OnChange = Callable[[Cached, str, dict[str, Any]], None]

#: Objects per page of a listing.
PAGE = 500
#: How long the server keeps a watch open before the informer resumes it (seconds).
WATCH_SECONDS = 300
#: Seconds between attempts after a failed listing or watch, doubled up to ``MAX_BACKOFF``.
BACKOFF = 1.0
MAX_BACKOFF = 30.0
#: Threads running ``on_change`` (each a tenant's reconcile at most).
CHANGE_WORKERS = 4


class Source(Protocol):
    """The API server's listings and watches, as the Kubernetes adapter serves them (JSON)."""

    def list_chunk(
        self,
        api_version: str,
        plural: str,
        *,
        label_selector: str | None = None,
        limit: int = 500,
        after: str | None = None,
    ) -> tuple[list[dict[str, Any]], str, str | None]: ...

    def watch(
        self,
        api_version: str,
        plural: str,
        *,
        resource_version: str,
        label_selector: str | None = None,
        timeout: int = 300,
    ) -> Iterator[tuple[str, dict[str, Any]]]: ...


def _where(body: Mapping[str, Any]) -> tuple[str, str]:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class Informer:
    """One kind's cache, kept up to date by :meth:`run` (see the module docstring)."""

    def __init__(self, source: Source, spec: Cached, *, changed: OnChange) -> None:
        self.source = source
        self.spec = spec
        self.store = Store(spec.kind)
        self.synced = threading.Event()
        self._changed = changed
        self._version = ""

    def run(self, stop: threading.Event) -> None:
        delay = BACKOFF
        while not stop.is_set():
            try:
                if not self._version:
                    self.relist()
                began = time.monotonic()
                self.follow(stop)
                if time.monotonic() - began < BACKOFF:  # ended at once: do not spin on a server doing that
                    stop.wait(BACKOFF)
                delay = BACKOFF
            except Expired as exc:
                log.info("%s: %s; listing again", self.spec.kind, exc)
                self._version = ""
            except PrivateVaultError as exc:
                # The watch resumes from the last version seen (a listing again only if it is too old).
                log.warning("%s: %s; again in %.0f s", self.spec.kind, exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF)
            except Exception:
                log.exception("%s: the informer failed; listing again in %.0f s", self.spec.kind, delay)
                self._version = ""
                stop.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF)

    def relist(self) -> None:
        """List every object (page by page), replace the store's content, and report what changed
        since the last listing (after the first one: events missed while not watching)."""
        seen: dict[tuple[str, str], Entry] = {}
        after: str | None = None
        version = ""
        while True:
            items, version, after = self.source.list_chunk(
                self.spec.api_version,
                self.spec.plural,
                label_selector=self.spec.label_selector,
                limit=PAGE,
                after=after,
            )
            for item in items:
                item.setdefault("kind", self.spec.kind)
                item.setdefault("apiVersion", self.spec.api_version)
                if self.spec.keeps(item):
                    seen[_where(item)] = Entry.of(item, self.spec.kind)
            if not after:
                break
        before = {(namespace, entry.name): entry for namespace, entry in self.store.entries()}
        for (namespace, name), entry in seen.items():
            old = before.pop((namespace, name), None)
            if old is None or old.resource_version != entry.resource_version:
                self.store.put(namespace, entry)
                if old is not None and self.synced.is_set():
                    self._changed(self.spec, "MODIFIED", entry.object())
        for (namespace, name), old in before.items():
            self.store.remove(namespace, name)
            if self.synced.is_set():
                self._changed(self.spec, "DELETED", old.object())
        self._version = version
        if not self.synced.is_set():
            log.info("%s: %d object(s) listed", self.spec.kind, len(seen))
        self.synced.set()

    def follow(self, stop: threading.Event) -> None:
        """Apply the watch's events to the store until the server ends the watch."""
        events = self.source.watch(
            self.spec.api_version,
            self.spec.plural,
            resource_version=self._version,
            label_selector=self.spec.label_selector,
            timeout=WATCH_SECONDS,
        )
        for kind, obj in events:
            if stop.is_set():
                return
            version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
            if kind != "BOOKMARK":
                obj.setdefault("kind", self.spec.kind)
                obj.setdefault("apiVersion", self.spec.api_version)
                self.apply(kind, obj)
            if version:
                self._version = version

    def apply(self, kind: str, obj: dict[str, Any]) -> None:
        namespace, name = _where(obj)
        if kind != "DELETED" and self.spec.keeps(obj):
            old = self.store.put(namespace, Entry.of(obj, self.spec.kind))
            if old is not None:
                self._changed(self.spec, "MODIFIED", obj)
        elif self.store.remove(namespace, name) is not None:
            self._changed(self.spec, "DELETED", obj)  # gone, or no longer kept


class Informers:
    """Every informed kind's :class:`Informer`, their threads, and the pool ``on_change`` runs on."""

    def __init__(self, source: Source, specs: Iterable[Cached]) -> None:
        self._informers = [Informer(source, spec, changed=self._dispatch) for spec in specs]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pool: ThreadPoolExecutor | None = None
        self._on_change: OnChange | None = None

    @property
    def stores(self) -> dict[str, Store]:
        """The stores by the cache's index names (what ``ClusterView.bind`` takes)."""
        return {informer.spec.index: informer.store for informer in self._informers}

    def start(self, on_change: OnChange | None = None) -> None:
        self._on_change = on_change
        self._pool = ThreadPoolExecutor(max_workers=CHANGE_WORKERS, thread_name_prefix="privatevault-change")
        for informer in self._informers:
            thread = threading.Thread(
                target=informer.run, args=(self._stop,), name=f"privatevault-watch-{informer.spec.plural}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def wait(self, timeout: float | None = None) -> bool:
        """Whether every kind was listed within ``timeout`` (None: however long it takes)."""
        return all(informer.synced.wait(timeout) for informer in self._informers)

    @property
    def synced(self) -> bool:
        return all(informer.synced.is_set() for informer in self._informers)

    def unsynced(self) -> list[str]:
        return [informer.spec.kind for informer in self._informers if not informer.synced.is_set()]

    def stop(self) -> None:
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _dispatch(self, spec: Cached, kind: str, obj: dict[str, Any]) -> None:
        if self._on_change is None or self._pool is None or self._stop.is_set():
            return
        self._pool.submit(self._call, self._on_change, spec, kind, obj)

    @staticmethod
    def _call(on_change: OnChange, spec: Cached, kind: str, obj: dict[str, Any]) -> None:
        try:
            on_change(spec, kind, obj)
        except Exception:
            log.exception("handling a change of %s %s failed", spec.kind, _where(obj)[1])
