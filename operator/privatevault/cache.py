"""Reads from watch caches, writes through the API server: the operator's view of the cluster.

Two kinds of watch cache fill it, both ready before any handler runs. The Kubernetes kinds the
operator reads (namespaces, the tenants' children, Secrets, Services, Ingresses, Deployments,
StatefulSets) are kept by informers of its own (``privatevault.informer``: a paginated listing,
then a watch from its resourceVersion, each object kept only as a compact :class:`Entry` in a
:class:`Store`); the operator's own kinds, which kopf watches anyway for their handlers, are kept
in kopf indexes (``handlers.indexes``). This view serves ``get`` and ``list`` from them, so a
resync of an idle tenant reads nothing from the API server. Writes go to the server (server-side
apply) and are also kept for a short while (``RECENT_SECONDS``), so a read right after a write
sees it even before the watch event arrives.

Drift is decided without a request when possible: the server's answer to a dry-run apply of a
desired object is remembered as a pair of digests (desired intent, server's object without
volatile fields). While neither changes, the object is known to be in sync; a change by someone
else changes the cached object's digest, and only then is the server asked again. A kind the
view has no cache for, or a view whose caches are not all bound yet (start-up), reads live.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from privatevault.cluster import Cluster
from privatevault.manifests import labels
from privatevault.manifests.objects import comparable

#: How long a write of ours is preferred to an older cached copy.
RECENT_SECONDS = 60.0

Ident = tuple[str, str, str]  # kind, namespace ("" when cluster-scoped), name


@dataclass(frozen=True)
class Cached:
    """One watched kind: the cache that holds it (an informer's :class:`Store`, or a kopf index
    for the operator's own kinds: ``by_kopf``), and what else it keeps."""

    api_version: str
    kind: str
    plural: str
    index: str
    namespaced: bool = True
    #: Only objects labelled as the operator's (a server-side label selector).
    managed_only: bool = False
    by_kopf: bool = False

    @property
    def label_selector(self) -> str | None:
        return f"{labels.MANAGED_BY}={labels.MANAGER}" if self.managed_only else None

    def keeps(self, body: Mapping[str, Any]) -> bool:
        """Whether an object of this kind is cached: Secrets only when ours or TLS Secrets (the
        crypto inventory's input); every other object the watch sends."""
        if self.kind != "Secret":
            return True
        ours = ((body.get("metadata") or {}).get("labels") or {}).get(labels.MANAGED_BY) == labels.MANAGER
        return ours or body.get("type") == _TLS_SECRET


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
    # The operator's own kinds: kopf watches them for their handlers, and indexes them.
    Cached("privatevault.io/v1alpha1", "Tenant", "tenants", "pv_tenants", namespaced=False, by_kopf=True),
    Cached(
        "privatevault.io/v1alpha1",
        "QuorumPolicy",
        "quorumpolicies",
        "pv_quorumpolicies",
        namespaced=False,
        by_kopf=True,
    ),
    Cached("privatevault.io/v1alpha1", "Approval", "approvals", "pv_approvals", namespaced=False, by_kopf=True),
    # What the compliance checks read (``compliance_facts``), and the frameworks a tenant change
    # re-evaluates it under.
    Cached(
        "privatevault.io/v1alpha1",
        "ProtectionPolicy",
        "protectionpolicies",
        "pv_protectionpolicies",
        namespaced=False,
        by_kopf=True,
    ),
    Cached(
        "privatevault.io/v1alpha1",
        "EvidenceExport",
        "evidenceexports",
        "pv_evidenceexports",
        namespaced=False,
        by_kopf=True,
    ),
    Cached(
        "privatevault.io/v1alpha1",
        "ComplianceFramework",
        "complianceframeworks",
        "pv_complianceframeworks",
        namespaced=False,
        by_kopf=True,
    ),
)
#: The kinds kept by the operator's informers, and those kept by kopf's indexes.
INFORMED = tuple(c for c in CACHED if not c.by_kopf)
INDEXED = tuple(c for c in CACHED if c.by_kopf)
_BY_KIND = {(c.api_version, c.kind): c for c in CACHED}

_TLS_SECRET = "kubernetes.io/tls"  # noqa: S105 - a Secret type, not a secret
_PRIVATE_KEY = "tls.key"
#: Kinds whose status the operator reads from the cache; every other kind is kept without it.
_WITH_STATUS = frozenset({"Tenant", "ProtectionPolicy", "EvidenceExport", "ComplianceFramework"})
#: The label that names a child's tenant: objects carrying it are also indexed under it.
TENANT_LABEL = labels.TENANT


def slim(body: Mapping[str, Any], *, kind: str | None = None) -> dict[str, Any]:
    """What the caches keep of an object: no managedFields, no status (but in ``_WITH_STATUS``), never a TLS key.

    A shallow copy: nested values are shared with ``body``, which is not changed.
    """
    out = dict(body)
    metadata = dict(out.get("metadata") or {})
    metadata.pop("managedFields", None)
    out["metadata"] = metadata
    if kind is not None:
        out.setdefault("kind", kind)
    if out.get("kind") not in _WITH_STATUS:
        out.pop("status", None)
    if out.get("type") == _TLS_SECRET and isinstance(out.get("data"), Mapping):
        out["data"] = {k: v for k, v in out["data"].items() if k != _PRIVATE_KEY}
    return out


def _json(obj: Any) -> bytes:
    """Sorted, compact JSON: one spelling per object, computed in C (these digests never leave memory)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def fingerprint(obj: Mapping[str, Any]) -> bytes:
    """The digest of an object as the operator compares it (no status, no server-maintained metadata)."""
    return hashlib.sha256(_json(comparable(dict(obj)))).digest()


def intent(desired: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(_json(desired)).digest()


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached object: compact JSON (parsed on read), and what is asked of it without parsing."""

    name: str
    data: bytes
    fingerprint: bytes
    resource_version: int
    labels: Mapping[str, str]
    deleting: bool

    @classmethod
    def of(cls, body: Mapping[str, Any], kind: str | None = None) -> Entry:
        kept = slim(body, kind=kind)
        meta = kept["metadata"]
        version = str(meta.get("resourceVersion") or "")
        return cls(
            name=str(meta.get("name")),
            data=_json(kept),
            fingerprint=fingerprint(kept),
            resource_version=int(version) if version.isdigit() else -1,
            labels=dict(meta.get("labels") or {}),
            deleting=bool(meta.get("deletionTimestamp")),
        )

    def object(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.data)
        return loaded


class Store:
    """One informed kind's objects as :class:`Entry`, found the way the view asks a kopf index:
    ``("obj", namespace, name)``, ``("ns", namespace)`` and ``("tenant", name)`` (children labelled
    with their tenant). Written by its informer's thread, read by any; every read is a copy."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._by_ns: dict[str, dict[str, Entry]] = {}
        self._by_tenant: dict[str, dict[tuple[str, str], Entry]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return sum(len(names) for names in self._by_ns.values())

    def get(self, key: tuple[str, ...]) -> list[Entry] | None:
        with self._lock:
            if key[0] == "obj":
                found = self._by_ns.get(key[1], {}).get(key[2])
                return None if found is None else [found]
            group: Mapping[Any, Entry] | None = (
                self._by_ns.get(key[1]) if key[0] == "ns" else self._by_tenant.get(key[1])
            )
            return list(group.values()) if group else None

    def entries(self) -> list[tuple[str, Entry]]:
        """Every object with its namespace."""
        with self._lock:
            return [(namespace, entry) for namespace, names in self._by_ns.items() for entry in names.values()]

    def put(self, namespace: str, entry: Entry) -> Entry | None:
        """Keep ``entry``; the entry it replaces, if any."""
        with self._lock:
            old = self._drop(namespace, entry.name)
            self._by_ns.setdefault(namespace, {})[entry.name] = entry
            tenant = entry.labels.get(TENANT_LABEL)
            if tenant:
                self._by_tenant.setdefault(tenant, {})[(namespace, entry.name)] = entry
            return old

    def remove(self, namespace: str, name: str) -> Entry | None:
        with self._lock:
            return self._drop(namespace, name)

    def _drop(self, namespace: str, name: str) -> Entry | None:
        names = self._by_ns.get(namespace)
        old = None if names is None else names.pop(name, None)
        if old is None:
            return None
        if not names:
            del self._by_ns[namespace]
        tenant = old.labels.get(TENANT_LABEL)
        if tenant:
            children = self._by_tenant.get(tenant, {})
            children.pop((namespace, name), None)
            if not children:
                self._by_tenant.pop(tenant, None)
        return old


def index_keys(body: Mapping[str, Any], kind: str) -> dict[tuple[str, ...], Entry]:
    """The keys one object is indexed under: by name, by namespace for listing, and by its tenant."""
    entry = Entry.of(body, kind)
    meta = body.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    keys = {("obj", namespace, meta["name"]): entry, ("ns", namespace): entry}
    tenant = (meta.get("labels") or {}).get(TENANT_LABEL)
    if tenant:
        keys[("tenant", tenant)] = entry
    return keys


def _selector(selector: str | None) -> dict[str, str]:
    return dict(part.split("=", 1) for part in selector.split(",")) if selector else {}


def _matches(labels: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in wanted.items())


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

    def __init__(self, live: Cluster, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.live = live
        self._indexes: dict[str, Any] = {}
        self._pending: dict[str, Any] = {}
        self._bound = False
        self._in_sync: dict[tuple[str, str, str], tuple[bytes, bytes]] = {}
        # Our recent writes, by (kind, namespace) then name; None for a delete. Expired in write order.
        self._recent: dict[tuple[str, str], dict[str, tuple[float, Entry | None]]] = {}
        self._expiry: deque[tuple[float, tuple[str, str], str, str]] = deque()
        # The names of those recent writes by the tenant label they carried, per (kind, namespace):
        # a tenant's namespaces are listed without going over every tenant's new namespaces.
        self._recent_tenants: dict[tuple[str, str], dict[str, set[str]]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def bind(self, indexes: Mapping[str, Any]) -> None:
        """Take the caches: the informers' stores (at start-up), kopf's index objects from a
        handler's kwargs (the same objects for the process's life). Reads stay live until every
        cached kind has its cache."""
        if self._bound:
            return
        with self._lock:
            self._pending.update({c.index: indexes[c.index] for c in CACHED if c.index in indexes})
            if len(self._pending) == len(CACHED):
                self._indexes, self._bound = dict(self._pending), True

    @property
    def bound(self) -> bool:
        return self._bound

    def _cached(self, api_version: str, kind: str) -> tuple[Cached, Any] | None:
        spec = _BY_KIND.get((api_version, kind))
        if spec is None or not self._bound:
            return None
        return spec, self._indexes[spec.index]

    def _remember(self, kind: str, namespace: str | None, name: str, obj: Mapping[str, Any] | None) -> None:
        now, group = self._clock(), (kind, namespace or "")
        entry = None if obj is None else Entry.of(obj, kind)
        tenant = entry.labels.get(TENANT_LABEL, "") if entry is not None else ""
        with self._lock:
            self._recent.setdefault(group, {})[name] = (now, entry)
            if tenant:
                self._recent_tenants.setdefault(group, {}).setdefault(tenant, set()).add(name)
            self._expiry.append((now, group, name, tenant))
            while self._expiry and now - self._expiry[0][0] > RECENT_SECONDS:
                self._expire(*self._expiry.popleft())

    def _expire(self, written: float, group: tuple[str, str], name: str, tenant: str) -> None:
        """Drop one recent write once it is old (unless written again since); the caller holds the lock."""
        names = self._recent.get(group, {})
        if name in names and names[name][0] == written:
            del names[name]
            if not names:
                del self._recent[group]
        current = names.get(name)
        if tenant and (current is None or current[1] is None or current[1].labels.get(TENANT_LABEL) != tenant):
            by_tenant = self._recent_tenants.get(group, {})
            by_tenant.get(tenant, set()).discard(name)
            if not by_tenant.get(tenant, True):
                del by_tenant[tenant]

    def _recent_one(self, kind: str, namespace: str | None, name: str) -> tuple[bool, Entry | None]:
        """Whether we wrote this one object recently, and what (None: deleted); without copying
        the others (a namespace of ours is read a thousand times while a thousand are new)."""
        now = self._clock()
        with self._lock:
            found = self._recent.get((kind, namespace or ""), {}).get(name)
        if found is None or now - found[0] > RECENT_SECONDS:
            return False, None
        return True, found[1]

    def _recent_of(
        self, kind: str, namespace: str | None, tenant: str, cached: Iterable[str]
    ) -> dict[str, Entry | None]:
        """Our recent writes to (kind, namespace) of the tenant's objects: those labelled for it
        when written, and those of ``cached`` (the cache's objects of the tenant) written since."""
        now, group = self._clock(), (kind, namespace or "")
        with self._lock:
            names = self._recent.get(group, {})
            candidates = set(self._recent_tenants.get(group, {}).get(tenant, ())) | set(cached)
            found = {name: names[name] for name in candidates if name in names}
        return {name: entry for name, (written, entry) in found.items() if now - written <= RECENT_SECONDS}

    def _recent_in(self, kind: str, namespace: str | None) -> dict[str, Entry | None]:
        """Our writes to (kind, namespace) still fresher than the caches may be."""
        now = self._clock()
        with self._lock:
            names = self._recent.get((kind, namespace or ""), {})
            return {name: entry for name, (written, entry) in names.items() if now - written <= RECENT_SECONDS}

    @staticmethod
    def _newest(cached: Entry | None, written: Entry | None, known: bool) -> Entry | None:
        if not known:
            return cached
        if written is None:  # we deleted it: gone, or still terminating
            return cached if cached is not None and cached.deleting else None
        if cached is None or written.resource_version >= cached.resource_version:
            return written
        return cached

    # -- reads ---------------------------------------------------------------------------------

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        found = self._cached(api_version, kind)
        if found is None:
            return self.live.get(api_version, kind, name, namespace)
        items = _snapshot(found[1].get(("obj", namespace or "", name)))
        known, written = self._recent_one(kind, namespace, name)
        newest = self._newest(items[0] if items else None, written, known)
        return None if newest is None else newest.object()

    def list(
        self, api_version: str, kind: str, *, label_selector: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        found = self._cached(api_version, kind)
        wanted = _selector(label_selector)
        by_tenant = namespace is None and TENANT_LABEL in wanted
        if found is None or (namespace is None and found[0].namespaced and not by_tenant):
            return self.live.list(api_version, kind, label_selector=label_selector, namespace=namespace)
        key = ("tenant", wanted[TENANT_LABEL]) if by_tenant else ("ns", namespace or "")
        by_name: dict[str, Entry | None] = {
            entry.name: entry for entry in _snapshot(found[1].get(key)) if _matches(entry.labels, wanted)
        }
        if namespace is not None or not found[0].namespaced:
            recent = (
                self._recent_of(kind, namespace, wanted[TENANT_LABEL], list(by_name))
                if by_tenant
                else self._recent_in(kind, namespace)
            )
            for name, written in recent.items():
                by_name[name] = self._newest(by_name.get(name), written, True)
        return [entry.object() for entry in by_name.values() if entry is not None and _matches(entry.labels, wanted)]

    def versions(self, api_version: str, kind: str) -> tuple[tuple[str, int], ...] | None:
        """(name, resourceVersion) of every cached object of a cluster-scoped kind, without parsing
        any: what a caller keys a value derived from all of them by. None when the kind is not cached."""
        found = self._cached(api_version, kind)
        if found is None or found[0].namespaced:
            return None
        by_name: dict[str, Entry | None] = {entry.name: entry for entry in _snapshot(found[1].get(("ns", "")))}
        for name, written in self._recent_in(kind, None).items():
            by_name[name] = self._newest(by_name.get(name), written, True)
        return tuple(sorted((name, e.resource_version) for name, e in by_name.items() if e is not None))

    # -- drift ---------------------------------------------------------------------------------

    def drifted(self, desired: dict[str, Any], current: dict[str, Any] | None) -> bool:
        if current is None:
            return True
        ident = (desired["kind"], desired["metadata"].get("namespace") or "", desired["metadata"]["name"])
        want, have = intent(desired), fingerprint(current)
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
        meta = obj["metadata"]
        with self._lock:
            self._in_sync[(obj["kind"], meta.get("namespace") or "", meta["name"])] = (
                intent(obj),
                fingerprint(applied),
            )
        self._remember(obj["kind"], meta.get("namespace"), meta["name"], applied)
        return applied

    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Create ``obj``; None when it exists already (then read live: the caches had not seen it)."""
        meta = obj["metadata"]
        created = self.live.create(obj)
        found = created or self.live.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        if found is not None:
            found.setdefault("kind", obj["kind"])
            self._remember(obj["kind"], meta.get("namespace"), meta["name"], found)
        return created

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        gone = self.live.delete(api_version, kind, name, namespace)
        with self._lock:
            self._in_sync.pop((kind, namespace or "", name), None)
        self._remember(kind, namespace, name, None)
        return gone

    def forget(self, kind: str, namespace: str | None, name: str) -> None:
        """Drop what is remembered of an object (its watch said it was deleted): the in-sync memo and
        our own recent write of it, which would otherwise stand for the deleted object until it aged
        out (RECENT_SECONDS), and a drift repaired just before the deletion would not be repaired again."""
        with self._lock:
            self._in_sync.pop((kind, namespace or "", name), None)
            names = self._recent.get((kind, namespace or ""))
            if names is not None:
                names.pop(name, None)
