"""Tenant reconcile: one level-based function for create, update, resume and the resync timer.

Gather, then decide, then act. What the cluster holds is read from the watch caches (through
``ClusterPort``); each desired child is compared with it (``ClusterPort.drifted``: the server's
own view of the desired object, asked once and remembered while nothing changes), and for every
difference an audit record is appended first, then the child is applied. A resync with no drift
therefore makes no request and writes nothing.

Order matters for "nothing half-made": everything only the operator can refuse (a namespace
owned by someone else, a KMS provider it does not have, a child the API server would reject) is
checked before the MCS level, the key or any child is made; then the level and the key (a KMS
outage stops the reconcile before any namespace exists); then the children; then namespaces
dropped from the spec are released.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from privatevault.api.v1alpha1 import Tenant, TenantStatus
from privatevault.api.v1alpha1.tenant import ChildRef, InventorySummary, KeyStatus
from privatevault.errors import ConflictError, SpecError, TransientError
from privatevault.inventory import Inventory, inventory
from privatevault.ledger import ResourceRef
from privatevault.ledger.event import canonical
from privatevault.manifests import labels
from privatevault.manifests import tenant as manifests
from privatevault.reconcile import key_requests, status, tenant_gate
from privatevault.reconcile.audit import Audit, digest
from privatevault.reconcile.ports import ClusterPort, KeysPort, LevelPort, TenantPorts
from privatevault.reconcile.quorum import Gate

KIND = "Tenant"
#: Stands in for the tenant's level while the children are only checked, before any level exists.
_PROBE_LEVEL = "s0:c0,c1"


def child_id(obj: dict[str, Any]) -> tuple[str, str | None, str]:
    metadata = obj["metadata"]
    return obj["kind"], metadata.get("namespace"), metadata["name"]


def change_key(desired: dict[str, Any], replaces: str) -> str:
    """Names one change of a child: the same decision retried gives the same key, a new one another."""
    kind, namespace, name = child_id(desired)
    change = hashlib.sha256(f"{digest(desired)}\x00{replaces}".encode()).hexdigest()[:32]
    return f"{kind}/{namespace or '-'}/{name}/{change}"


def namespace_conflict(tenant: Tenant, existing: dict[str, Any] | None) -> str | None:
    """Why an existing namespace cannot be taken by this tenant, or None when it is ours or absent."""
    if existing is None:
        return None
    name = existing["metadata"]["name"]
    owner = (existing["metadata"].get("labels") or {}).get(labels.TENANT)
    if owner is None:
        return (
            f"namespace {name} already exists and is not managed by PrivateVault;"
            " remove it from spec.namespaces or delete the namespace"
        )
    if owner != tenant.metadata["name"]:
        return f"namespace {name} already belongs to tenant {owner}; choose another namespace name"
    return None


def _owned_by_previous_incarnation(tenant: Tenant, existing: dict[str, Any]) -> bool:
    refs = existing["metadata"].get("ownerReferences") or []
    return any(r.get("kind") == "Tenant" and r.get("uid") != tenant.metadata["uid"] for r in refs)


@dataclass(frozen=True)
class Result:
    children: list[ChildRef]
    changed: int
    mcs_level: str
    key: KeyStatus
    inventory: Inventory


def audit_for(tenant: Tenant, ports: TenantPorts, actor: str, crash_point: Callable[[], None]) -> Audit:
    return Audit(
        ports.ledger,
        actor,
        kind=KIND,
        uid=str(tenant.metadata["uid"]),
        tenant=str(tenant.metadata["name"]),
        context={"tenantGeneration": tenant.metadata.get("generation")},
        crash_point=crash_point,
    )


def _tenant_ref(tenant: Tenant) -> ResourceRef:
    return ResourceRef(kind=KIND, name=str(tenant.metadata["name"]), uid=str(tenant.metadata["uid"]))


def _check_namespaces(tenant: Tenant, cluster: ClusterPort) -> dict[tuple[str, str | None, str], Any]:
    """Every namespace the tenant needs is free or ours; raises before anything is changed.

    Returns what was read, by child id, so the reconcile does not read the namespaces twice.
    """
    observed: dict[tuple[str, str | None, str], Any] = {}
    for name in tenant.namespace_names():
        existing = cluster.get("v1", "Namespace", name)
        problem = namespace_conflict(tenant, existing)
        if problem:
            raise ConflictError(problem)
        if existing is not None and (
            existing["metadata"].get("deletionTimestamp") or _owned_by_previous_incarnation(tenant, existing)
        ):
            raise TransientError(
                f"namespace {existing['metadata']['name']} of a previous tenant with this name is still being removed"
            )
        observed[("Namespace", None, name)] = existing
    return observed


def _check_children(tenant: Tenant, cluster: ClusterPort, observed: dict[tuple[str, str | None, str], Any]) -> None:
    """The API server would accept every child not made yet: asked (dry run) before anything is made.

    Only a tenant that still lacks namespaces pays for this; a tenant whose namespaces exist has
    had its children accepted before.
    """
    if all(found is not None for found in observed.values()):
        return
    for obj in manifests.children(tenant, _PROBE_LEVEL):
        if obj["kind"] == "Namespace" and observed.get(child_id(obj)) is None:
            cluster.check(obj)


def _mcs_level(tenant: Tenant, levels: LevelPort, audit: Audit) -> str:
    if tenant.status and tenant.status.mcs_level:
        return tenant.status.mcs_level
    label = tenant.spec.security_label
    allocation = levels.allocate(
        tenant=str(tenant.metadata["name"]),
        tenant_uid=str(tenant.metadata["uid"]),
        confidentiality=label.confidentiality,
        integrity=label.integrity,
        compartments=label.compartments,
        requested=tenant.spec.mcs_level,
    )
    level = str(allocation.level)
    audit.record(
        "assign-mcs-level",
        _tenant_ref(tenant),
        level,
        {
            "mcsLevel": level,
            "handSet": allocation.hand_set,
            "confidentiality": label.confidentiality,
            "compartments": list(label.compartments),
        },
    )
    return level


def _key(tenant: Tenant, provider: KeysPort, audit: Audit) -> KeyStatus:
    namespaces = tenant.namespace_names()
    known = tenant.status.kms if tenant.status else None
    if (
        known is None
        or known.provider != provider.provider
        or tenant.status is None
        or sorted(tenant.status.namespaces) != sorted(namespaces)
    ):
        audit.record(
            "provision-kek",
            _tenant_ref(tenant),
            f"{provider.provider}/{','.join(sorted(namespaces))}",
            {"provider": provider.provider, "namespaces": sorted(namespaces)},
        )
    facts = provider.ensure(str(tenant.metadata["name"]), namespaces)
    return KeyStatus(
        provider=provider.provider,
        key_name=facts.name,
        latest_version=facts.latest_version,
        created=facts.created,
        rotated=facts.rotated,
    )


def _release_removed_namespaces(tenant: Tenant, cluster: ClusterPort, audit: Audit) -> None:
    """Namespaces dropped from the spec go once they are empty; until then the tenant is Stalled."""
    wanted = set(tenant.namespace_names())
    selector = f"{labels.TENANT}={tenant.metadata['name']}"
    busy = []
    for ns in cluster.list("v1", "Namespace", label_selector=selector):
        name = ns["metadata"]["name"]
        if name in wanted or ns["metadata"].get("deletionTimestamp"):
            continue
        contents = [
            f"{kind} {item['metadata']['name']}"
            for api, kind in _WORKLOADS
            for item in cluster.list(api, kind, namespace=name)
        ]
        if contents:
            busy.append(f"{name} ({', '.join(contents[:3])}{' …' if len(contents) > 3 else ''})")
            continue
        audit.record(
            "delete-namespace",
            ResourceRef(kind="Namespace", name=name, uid=ns["metadata"]["uid"]),
            f"release/{ns['metadata']['uid']}",
            {"reason": "removed from spec.namespaces"},
        )
        cluster.delete("v1", "Namespace", name)
    if busy:
        raise SpecError(
            f"namespaces removed from the spec still hold workloads and are kept: {'; '.join(busy)};"
            " empty them (or put them back in spec.namespaces)",
            reason="NamespaceNotEmpty",
        )


#: What makes a namespace "in use" when it is to be released.
_WORKLOADS = (
    ("v1", "Pod"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Service"),
)


def _inventory(tenant: Tenant, cluster: ClusterPort, audit: Audit, now: datetime) -> Inventory:
    """The TLS certificates in the tenant's namespaces; a changed inventory is recorded in the ledger.

    The record's key is the inventory's fingerprint, which the status keeps: an unchanged
    inventory costs no ledger round trip.
    """
    secrets, ingresses, services = [], [], []
    for namespace in tenant.namespace_names():
        secrets += cluster.list("v1", "Secret", namespace=namespace)
        ingresses += cluster.list("networking.k8s.io/v1", "Ingress", namespace=namespace)
        services += cluster.list("v1", "Service", namespace=namespace)
    found = inventory(
        str(tenant.metadata["name"]), tenant.spec.security_label.confidentiality, secrets, ingresses, services, now=now
    )
    details = found.ledger_details()
    if details:
        fingerprint = inventory_fingerprint(found)
        known = tenant.status.crypto_inventory if tenant.status else None
        if known is None or known.fingerprint != fingerprint:
            audit.record(
                "crypto-inventory",
                _tenant_ref(tenant),
                fingerprint,
                {"assets": details, "summary": found.summary()},
            )
    return found


def inventory_fingerprint(found: Inventory) -> str:
    details = found.ledger_details()
    return hashlib.sha256(canonical({"assets": details})).hexdigest()[:32] if details else ""


def reconcile(
    tenant: Tenant,
    *,
    ports: TenantPorts,
    actor: str,
    now: datetime,
    crash_point: Callable[[], None] = lambda: None,
) -> Result:
    """Make the cluster hold exactly the tenant's children, level and key; audit every change first."""
    audit = audit_for(tenant, ports, actor, crash_point)
    cluster = ports.cluster
    observed = _check_namespaces(tenant, cluster)
    provider = ports.keys.for_provider(tenant.spec.kms.provider)
    _check_children(tenant, cluster, observed)
    level = _mcs_level(tenant, ports.levels, audit)
    key = _key(tenant, provider, audit)
    known = {(c.kind, c.namespace, c.name): c.uid for c in (tenant.status.children if tenant.status else [])}
    refs: list[ChildRef] = []
    for obj in manifests.children(tenant, level):
        ident = child_id(obj)
        current = (
            observed[ident]
            if ident in observed
            else cluster.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))
        )
        if current is not None and not cluster.drifted(obj, current):
            refs.append(_ref(current))
            continue
        action = "create" if current is None else "update"
        replaces = known.get(ident, "none") if current is None else current["metadata"]["resourceVersion"]
        kind, namespace, name = ident
        audit.record(
            f"{action}-{kind.lower()}",
            ResourceRef(
                kind=kind, namespace=namespace, name=name, uid=None if current is None else current["metadata"]["uid"]
            ),
            change_key(obj, replaces),
            {"digest": digest(obj)},
        )
        refs.append(_ref(cluster.apply(obj)))
    _release_removed_namespaces(tenant, cluster, audit)
    found = _inventory(tenant, cluster, audit, now)
    return Result(children=refs, changed=audit.changed, mcs_level=level, key=key, inventory=found)


def finalize(tenant: Tenant, *, ports: TenantPorts, actor: str, deletion_policy: str, gate: str) -> None:
    """Tear down what the children's owner references do not: the key (per deletion policy) and the level.

    The namespaces and everything in them go by garbage collection once the finalizer is removed.
    ``deletion_policy`` is the one in force (see ``tenant_gate``), ``gate`` how the deletion was let
    through (``Approved`` after a recorded decision, or why it was not gated).
    """
    audit = audit_for(tenant, ports, actor, lambda: None)
    ref = _tenant_ref(tenant)
    policy = deletion_policy
    audit.record("delete-tenant", ref, "delete", {"deletionPolicy": policy, "gate": gate})
    provider = _key_provider(tenant, ports)
    name = str(tenant.metadata["name"])
    if provider is not None and policy == "CryptoShred":
        audit.record("crypto-shred-kek", ref, "shred", {"provider": provider.provider})
        provider.shred(name)
    elif provider is not None:
        audit.record("retain-kek", ref, "retain", {"provider": provider.provider})
        provider.retain(name)
    if tenant.status and tenant.status.mcs_level:
        audit.record("release-mcs-level", ref, "release", {"mcsLevel": tenant.status.mcs_level})
    ports.levels.release(str(tenant.metadata["uid"]))


def gates(tenant: Tenant, body: Mapping[str, Any], *, ports: TenantPorts, actor: str, now: datetime) -> list[Gate]:
    """The tenant's gated changes, after its reconcile: its gate itself, then key requests (held ones returned)."""
    held = tenant_gate.change(tenant, body, ports=ports, actor=actor, now=now)
    audit = audit_for(tenant, ports, actor, lambda: None)
    return held + key_requests.answer(tenant, body, audit, ports=ports, actor=actor, now=now)


def _key_provider(tenant: Tenant, ports: TenantPorts) -> KeysPort | None:
    """The provider holding the tenant's key; None when it stalled before any key was made because
    its provider is not configured (nothing to keep or shred)."""
    try:
        return ports.keys.for_provider(tenant.spec.kms.provider)
    except SpecError:
        if tenant.status is not None and tenant.status.kms is not None:
            raise  # a key was made with that provider: it must be kept or shredded, not forgotten
        return None


def _ref(obj: dict[str, Any]) -> ChildRef:
    kind, namespace, name = child_id(obj)
    return ChildRef(kind=kind, namespace=namespace, name=name, uid=obj["metadata"]["uid"])


BEGIN_MESSAGE = "reconciling the tenant's namespaces, key and policies"


def done(tenant: Tenant, result: Result) -> status.Done:
    """What a finished reconcile puts in the status."""
    namespaces = tenant.namespace_names()
    summary = InventorySummary.model_validate(
        result.inventory.summary() | {"fingerprint": inventory_fingerprint(result.inventory) or None}
    )
    return status.Done(
        message=f"{len(namespaces)} namespace(s) with their policies, MCS level {result.mcs_level},"
        f" {result.key.provider} key {result.key.key_name} v{result.key.latest_version}",
        facts={
            "namespaces": namespaces,
            "mcs_level": result.mcs_level,
            "kms": result.key,
            "crypto_inventory": summary,
            "children": result.children,
        },
    )


def status_after(tenant: Tenant, *, result: Result | None, error: Exception | None, now: datetime) -> TenantStatus:
    """The status to write after a reconcile that ended with ``result`` or with ``error``."""
    if error is None and result is not None:
        return status.done(tenant, TenantStatus, done(tenant, result), now=now)
    if error is not None:
        return status.failed(tenant, TenantStatus, error, now=now)
    return status.begin(tenant, TenantStatus, now=now, message=BEGIN_MESSAGE)
