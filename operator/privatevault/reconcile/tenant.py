"""Tenant reconcile: one level-based function for create, update, resume and the drift timer.

It compares each desired child with what the server holds (a dry-run apply gives the server's
own view of the desired object), and for every difference first appends an audit record, then
applies. The record's idempotency key names the change — the child, the desired bytes and the
state it replaces — so a handler retried after a crash finds its record and writes no second
one, while a genuinely new change (a child deleted again later) gets a record of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from privatevault.api.v1alpha1 import Tenant, TenantStatus
from privatevault.api.v1alpha1.tenant import ChildRef
from privatevault.errors import ConflictError, TransientError
from privatevault.ledger import Event, ResourceRef
from privatevault.ledger.event import canonical
from privatevault.manifests import labels
from privatevault.manifests import tenant as manifests

from . import conditions
from .ports import ClusterPort, LedgerPort

#: Fields the server owns; two objects that differ only here carry the same intent.
_VOLATILE = ("resourceVersion", "managedFields", "generation", "creationTimestamp", "uid", "selfLink")


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without server-maintained metadata or status."""
    metadata = {k: v for k, v in obj.get("metadata", {}).items() if k not in _VOLATILE}
    return {k: v for k, v in obj.items() if k != "status"} | {"metadata": metadata}


def child_id(obj: dict[str, Any]) -> tuple[str, str | None, str]:
    metadata = obj["metadata"]
    return obj["kind"], metadata.get("namespace"), metadata["name"]


def digest(obj: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical(obj)).hexdigest()


def idempotency_key(tenant_uid: str, action: str, desired: dict[str, Any], replaces: str) -> str:
    """Names one change: the same decision retried gives the same key, a new one another."""
    kind, namespace, name = child_id(desired)
    change = hashlib.sha256(f"{digest(desired)}\x00{replaces}".encode()).hexdigest()[:32]
    return f"tenant/{tenant_uid}/{action}/{kind}/{namespace or '-'}/{name}/{change}"


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


def reconcile(
    tenant: Tenant,
    *,
    cluster: ClusterPort,
    ledger: LedgerPort,
    actor: str,
    crash_point: Callable[[], None] = lambda: None,
) -> Result:
    """Make the cluster hold exactly the tenant's children; audit every change before making it.

    Raises ``ConflictError`` (nothing changed) when a namespace belongs to someone else, and
    ``TransientError`` subclasses when the ledger or the API server is unavailable.
    """
    desired = manifests.children(tenant)
    observed = {}
    # Check every namespace before changing anything, so that a conflict leaves nothing half-made.
    for obj in desired:
        if obj["kind"] != "Namespace":
            continue
        existing = cluster.get("v1", "Namespace", obj["metadata"]["name"])
        problem = namespace_conflict(tenant, existing)
        if problem:
            raise ConflictError(problem)
        if existing is not None and (
            existing["metadata"].get("deletionTimestamp") or _owned_by_previous_incarnation(tenant, existing)
        ):
            raise TransientError(
                f"namespace {existing['metadata']['name']} of a previous tenant with this name is still being removed"
            )
        observed[child_id(obj)] = existing

    known = {(c.kind, c.namespace, c.name): c.uid for c in (tenant.status.children if tenant.status else [])}
    refs: list[ChildRef] = []
    changed = 0
    for obj in desired:
        key = child_id(obj)
        current = (
            observed[key]
            if key in observed
            else cluster.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))
        )
        if current is not None and comparable(cluster.apply(obj, dry_run=True)) == comparable(current):
            refs.append(_ref(current))
            continue
        action = "create" if current is None else "update"
        replaces = known.get(key, "none") if current is None else current["metadata"]["resourceVersion"]
        kind, namespace, name = key
        ledger.append(
            Event(
                tenant=str(tenant.metadata["name"]),
                actor=actor,
                action=f"{action}-{kind.lower()}",
                resource=ResourceRef(
                    kind=kind,
                    namespace=namespace,
                    name=name,
                    uid=None if current is None else current["metadata"]["uid"],
                ),
                outcome="intended",
                idempotency_key=idempotency_key(str(tenant.metadata["uid"]), action, obj, replaces),
                details={"digest": digest(obj), "tenantGeneration": tenant.metadata.get("generation")},
            )
        )
        crash_point()
        refs.append(_ref(cluster.apply(obj)))
        changed += 1
    return Result(children=refs, changed=changed)


def _ref(obj: dict[str, Any]) -> ChildRef:
    kind, namespace, name = child_id(obj)
    return ChildRef(kind=kind, namespace=namespace, name=name, uid=obj["metadata"]["uid"])


def status_after(
    tenant: Tenant, *, children: list[ChildRef] | None, error: Exception | None, now: datetime
) -> TenantStatus:
    """The status to write after a reconcile that ended with ``children`` or with ``error``."""
    previous = tenant.status or TenantStatus()
    generation = tenant.metadata.get("generation")
    if error is None and children is not None:
        namespaces = tenant.namespace_names()
        return TenantStatus(
            observed_generation=generation,
            conditions=conditions.ready(
                previous.conditions,
                message=f"{len(namespaces)} namespace(s) and {len(children) - len(namespaces)} policies in place",
                generation=generation,
                now=now,
            ),
            namespaces=namespaces,
            mcs_level=previous.mcs_level,
            children=children,
        )
    if isinstance(error, ConflictError) or (error is not None and not isinstance(error, TransientError)):
        reason = getattr(error, "reason", "ReconcileFailed")
        return previous.model_copy(
            update={
                "observed_generation": generation,
                "conditions": conditions.stalled(
                    previous.conditions, reason=reason, message=str(error), generation=generation, now=now
                ),
            }
        )
    reason = type(error).__name__ if error is not None else "Progressing"
    message = str(error) if error is not None else "reconciling the tenant's namespaces and policies"
    return previous.model_copy(
        update={
            "conditions": conditions.progressing(
                previous.conditions, reason=reason, message=message, generation=generation, now=now
            ),
        }
    )
