"""Reads from watch caches, writes through the API server: the operator's view of the cluster.

kopf keeps one index per watched kind (``handlers.indexes``, filled by kopf's own watches and
ready before any handler runs); this view serves ``get`` and ``list`` from them, so a resync of an
idle tenant reads nothing from the API server. Writes go to the server (server-side apply) and
are also kept for a short while (``RECENT_SECONDS``), so a read right after a write sees it even
before the watch event arrives.

Drift is decided without a request when possible: the server's answer to a dry-run apply of a
desired object is remembered as a pair of digests (desired intent, server's object without
volatile fields). While neither changes, the object is known to be in sync; a change by someone
else changes the cached object's digest, and only then is the server asked again. A kind the
view has no index for, or a view not bound to kopf's indexes yet (start-up), reads live.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from privatevault.cluster import Cluster
from privatevault.ledger.event import canonical
from privatevault.manifests.objects import comparable

#: How long a write of ours is preferred to an older cached copy.
RECENT_SECONDS = 60.0

Ident = tuple[str, str, str]  # kind, namespace ("" when cluster-scoped), name


@dataclass(frozen=True)
class Cached:
    """One watched kind: the kopf index that holds it, and what else it keeps (see handlers.indexes)."""

    api_version: str
    kind: str
    plural: str
    index: str
    namespaced: bool = True
    managed_only: bool = False


#: Every kind the operator reads through a cache. Children of tenants are watched by label only.
CACHED: tuple[Cached, ...] = (
    Cached("v1", "Namespace", "namespaces", "pv_namespaces", namespaced=False),
    Cached("v1", "ResourceQuota", "resourcequotas", "pv_resourcequotas", managed_only=True),
    Cached("v1", "LimitRange", "limitranges", "pv_limitranges", managed_only=True),
    Cached("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", "pv_networkpolicies", managed_only=True),
    Cached("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", "pv_rolebindings", managed_only=True),
    Cached("v1", "Secret", "secrets", "pv_secrets"),
    Cached("v1", "Service", "services", "pv_services"),
    Cached("networking.k8s.io/v1", "Ingress", "ingresses", "pv_ingresses"),
    Cached("apps/v1", "Deployment", "deployments", "pv_deployments"),
    Cached("apps/v1", "StatefulSet", "statefulsets", "pv_statefulsets"),
    Cached("privatevault.io/v1alpha1", "Tenant", "tenants", "pv_tenants", namespaced=False),
)
_BY_KIND = {(c.api_version, c.kind): c for c in CACHED}

_TLS_SECRET = "kubernetes.io/tls"  # noqa: S105 - a Secret type, not a secret
_PRIVATE_KEY = "tls.key"


def slim(body: Mapping[str, Any], *, kind: str | None = None) -> dict[str, Any]:
    """What the caches keep of an object: all but managedFields, and never a TLS private key."""
    out: dict[str, Any] = _plain(body)
    out["metadata"].pop("managedFields", None)
    if kind is not None:
        out.setdefault("kind", kind)
    if out.get("type") == _TLS_SECRET and isinstance(out.get("data"), dict):
        out["data"].pop(_PRIVATE_KEY, None)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def index_keys(body: Mapping[str, Any], kind: str) -> dict[tuple[str, ...], dict[str, Any]]:
    """The keys one object is indexed under: by name, and by namespace for listing."""
    kept = slim(body, kind=kind)
    meta = kept["metadata"]
    namespace = meta.get("namespace") or ""
    return {("obj", namespace, meta["name"]): kept, ("ns", namespace): kept}


def fingerprint(obj: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(comparable(dict(obj)))).hexdigest()


def _resource_version(obj: Mapping[str, Any] | None) -> int:
    value = (obj or {}).get("metadata", {}).get("resourceVersion") or ""
    return int(value) if str(value).isdigit() else -1


def _matches(obj: Mapping[str, Any], selector: str | None) -> bool:
    if not selector:
        return True
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in (part.split("=", 1) for part in selector.split(",")))


def _snapshot(store: Iterable[Any] | None) -> list[Any]:
    """A copy of a kopf store, which kopf's event loop may change while a handler thread reads it."""
    if store is None:
        return []
    for _ in range(5):
        try:
            return list(store)
        except RuntimeError:  # changed size during iteration: read again
            continue
    return list(store)


class ClusterView:
    """``ClusterPort`` over the live ``Cluster`` and kopf's indexes; one per process."""

    def __init__(self, live: Cluster, *, clock: Any = time.monotonic) -> None:
        self.live = live
        self._indexes: dict[str, Any] = {}
        self._in_sync: dict[tuple[str, str, str], tuple[str, str]] = {}
        self._recent: dict[tuple[str, str, str], tuple[float, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def bind(self, indexes: Mapping[str, Any]) -> None:
        """Take kopf's index objects from a handler's kwargs (the same objects for the process's life)."""
        if len(self._indexes) == len(CACHED):
            return
        found = {c.index: indexes[c.index] for c in CACHED if c.index in indexes}
        if len(found) == len(CACHED):
            self._indexes = found

    @property
    def bound(self) -> bool:
        return bool(self._indexes)

    def _cached(self, api_version: str, kind: str) -> tuple[Cached, Any] | None:
        spec = _BY_KIND.get((api_version, kind))
        if spec is None or not self._indexes:
            return None
        return spec, self._indexes[spec.index]

    def _remember(self, obj: dict[str, Any] | None, ident: tuple[str, str, str]) -> None:
        with self._lock:
            self._recent[ident] = (self._clock(), None if obj is None else slim(obj))

    def _recent_copy(self, ident: tuple[str, str, str]) -> tuple[bool, dict[str, Any] | None]:
        with self._lock:
            found = self._recent.get(ident)
            if found is None:
                return False, None
            if self._clock() - found[0] > RECENT_SECONDS:
                del self._recent[ident]
                return False, None
            return True, found[1]

    def _newest(self, ident: tuple[str, str, str], cached: dict[str, Any] | None) -> dict[str, Any] | None:
        known, written = self._recent_copy(ident)
        if not known:
            return cached
        if written is None:  # we deleted it: gone, or still terminating
            return cached if cached is not None and cached["metadata"].get("deletionTimestamp") else None
        return written if _resource_version(written) >= _resource_version(cached) else cached

    # -- reads ---------------------------------------------------------------------------------

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        found = self._cached(api_version, kind)
        if found is None:
            return self.live.get(api_version, kind, name, namespace)
        _, index = found
        ident = (kind, namespace or "", name)
        items = _snapshot(index.get(("obj", namespace or "", name)))
        cached = dict(items[0]) if items else None
        newest = self._newest(ident, cached)
        return None if newest is None else _plain(newest)

    def list(
        self, api_version: str, kind: str, *, label_selector: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        found = self._cached(api_version, kind)
        if found is None or (namespace is None and found[0].namespaced):
            return self.live.list(api_version, kind, label_selector=label_selector, namespace=namespace)
        _, index = found
        by_name: dict[str, dict[str, Any] | None] = {
            item["metadata"]["name"]: item for item in _snapshot(index.get(("ns", namespace or "")))
        }
        with self._lock:
            recent = [(ident, entry) for ident, entry in self._recent.items() if ident[:2] == (kind, namespace or "")]
        for ident, _ in recent:
            by_name[ident[2]] = self._newest(ident, by_name.get(ident[2]))
        return [_plain(obj) for obj in by_name.values() if obj is not None and _matches(obj, label_selector)]

    # -- drift ---------------------------------------------------------------------------------

    def drifted(self, desired: dict[str, Any], current: dict[str, Any] | None) -> bool:
        if current is None:
            return True
        ident = (desired["kind"], desired["metadata"].get("namespace") or "", desired["metadata"]["name"])
        want, have = hashlib.sha256(canonical(desired)).hexdigest(), fingerprint(current)
        with self._lock:
            if self._in_sync.get(ident) == (want, have):
                return False
        server = self.live.apply(desired, dry_run=True)
        same = fingerprint(server) == have
        if same:
            with self._lock:
                self._in_sync[ident] = (want, have)
        return not same

    def in_sync(self, obj: Mapping[str, Any]) -> bool:
        """Whether ``obj`` (from a watch event) is what the operator last applied or checked for it."""
        meta = obj.get("metadata", {})
        ident = (str(obj.get("kind")), meta.get("namespace") or "", meta.get("name", ""))
        with self._lock:
            known = self._in_sync.get(ident)
        return known is not None and known[1] == fingerprint(obj)

    # -- writes --------------------------------------------------------------------------------

    def check(self, obj: dict[str, Any]) -> None:
        self.live.apply(obj, dry_run=True)

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        applied = self.live.apply(obj)
        applied.setdefault("kind", obj["kind"])
        ident = (obj["kind"], obj["metadata"].get("namespace") or "", obj["metadata"]["name"])
        with self._lock:
            self._in_sync[ident] = (hashlib.sha256(canonical(obj)).hexdigest(), fingerprint(applied))
        self._remember(applied, ident)
        return applied

    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        created = self.live.create(obj)
        if created is not None:
            created.setdefault("kind", obj["kind"])
            self._remember(created, (obj["kind"], obj["metadata"].get("namespace") or "", obj["metadata"]["name"]))
        return created

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        gone = self.live.delete(api_version, kind, name, namespace)
        ident = (kind, namespace or "", name)
        with self._lock:
            self._in_sync.pop(ident, None)
        self._remember(None, ident)
        return gone

    def forget(self, kind: str, namespace: str | None, name: str) -> None:
        """Drop what is remembered of an object (its watch said it was deleted)."""
        with self._lock:
            self._in_sync.pop((kind, namespace or "", name), None)
