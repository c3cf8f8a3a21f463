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
from privatevault.api.v1alpha1.tenant import ChildRef, InventorySummary, KeyStatus
from privatevault.errors import ConflictError, GateClosed, KmsUnavailable, SpecError, TransientError
from privatevault.inventory import Inventory, inventory
from privatevault.ledger import Event, ResourceRef
from privatevault.ledger.event import canonical
from privatevault.manifests import labels
from privatevault.manifests import tenant as manifests
from privatevault.reconcile import conditions, gates
from privatevault.reconcile.objects import comparable
from privatevault.reconcile.ports import ClusterPort, LedgerPort, LevelPort, ProvidersPort, TenantPorts


def child_id(obj: dict[str, Any]) -> tuple[str, str | None, str]:
    metadata = obj["metadata"]
    return obj["kind"], metadata.get("namespace"), metadata["name"]


def digest(obj: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical(obj)).hexdigest()


def idempotency_key(action: str, desired: dict[str, Any], replaces: str) -> str:
    """Names one change of a child: the same decision retried gives the same key, a new one another."""
    kind, namespace, name = child_id(desired)
    change = hashlib.sha256(f"{digest(desired)}\x00{replaces}".encode()).hexdigest()[:32]
    return f"{action}/{kind}/{namespace or '-'}/{name}/{change}"


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


class Step:
    """Audits one change of one tenant, then lets it happen: the record always comes first."""

    def __init__(self, tenant: Tenant, ledger: LedgerPort, actor: str, crash_point: Callable[[], None]) -> None:
        self.tenant, self._ledger, self._actor, self._crash_point = tenant, ledger, actor, crash_point
        self.changed = 0

    def record(self, action: str, resource: ResourceRef, key: str, details: dict[str, Any]) -> None:
        self._ledger.append(
            Event(
                tenant=str(self.tenant.metadata["name"]),
                actor=self._actor,
                action=action,
                resource=resource,
                outcome="intended",
                idempotency_key=f"tenant/{self.tenant.metadata['uid']}/{key}",
                details=details | {"tenantGeneration": self.tenant.metadata.get("generation")},
            )
        )
        self._crash_point()
        self.changed += 1


def _tenant_ref(tenant: Tenant) -> ResourceRef:
    return ResourceRef(kind="Tenant", name=str(tenant.metadata["name"]), uid=str(tenant.metadata["uid"]))


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


def _mcs_level(tenant: Tenant, levels: LevelPort, step: Step) -> str:
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
    step.record(
        "assign-mcs-level",
        _tenant_ref(tenant),
        f"mcs/{level}",
        {
            "mcsLevel": level,
            "handSet": allocation.hand_set,
            "confidentiality": label.confidentiality,
            "compartments": list(label.compartments),
        },
    )
    return level


def _key(tenant: Tenant, keys: ProvidersPort, step: Step) -> KeyStatus:
    provider = keys.for_provider(tenant.spec.kms.provider)
    namespaces = tenant.namespace_names()
    known = tenant.status.kms if tenant.status else None
    if (
        known is None
        or known.provider != provider.provider
        or tenant.status is None
        or sorted(tenant.status.namespaces) != sorted(namespaces)
    ):
        step.record(
            "provision-kek",
            _tenant_ref(tenant),
            f"kek/{provider.provider}/{','.join(sorted(namespaces))}",
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


def _release_removed_namespaces(tenant: Tenant, cluster: ClusterPort, step: Step) -> None:
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
        step.record(
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


def _inventory(tenant: Tenant, cluster: ClusterPort, step: Step, now: datetime) -> Inventory:
    """The TLS certificates in the tenant's namespaces; a changed inventory is recorded in the ledger."""
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
        fingerprint = hashlib.sha256(canonical({"assets": details})).hexdigest()[:32]
        step.record(
            "crypto-inventory",
            _tenant_ref(tenant),
            f"inventory/{fingerprint}",
            {"assets": details, "summary": found.summary()},
        )
    return found


def reconcile(
    tenant: Tenant,
    *,
    ports: TenantPorts,
    actor: str,
    now: datetime,
    crash_point: Callable[[], None] = lambda: None,
) -> Result:
    """Make the cluster hold exactly the tenant's children, level and key; audit every change first.

    Order matters for "nothing half-made": namespace conflicts are checked first, then the MCS
    level and the key (a KMS outage stops the reconcile before any namespace exists), then the
    children, then namespaces dropped from the spec are released.
    """
    step = Step(tenant, ports.ledger, actor, crash_point)
    observed = _check_namespaces(tenant, ports.cluster)
    level = _mcs_level(tenant, ports.levels, step)
    key = _key(tenant, ports.keys, step)
    cluster = ports.cluster
    known = {(c.kind, c.namespace, c.name): c.uid for c in (tenant.status.children if tenant.status else [])}
    refs: list[ChildRef] = []
    for obj in manifests.children(tenant, level):
        ident = child_id(obj)
        current = (
            observed[ident]
            if ident in observed
            else cluster.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))
        )
        if current is not None and comparable(cluster.apply(obj, dry_run=True)) == comparable(current):
            refs.append(_ref(current))
            continue
        action = "create" if current is None else "update"
        replaces = known.get(ident, "none") if current is None else current["metadata"]["resourceVersion"]
        kind, namespace, name = ident
        step.record(
            f"{action}-{kind.lower()}",
            ResourceRef(
                kind=kind, namespace=namespace, name=name, uid=None if current is None else current["metadata"]["uid"]
            ),
            idempotency_key(action, obj, replaces),
            {"digest": digest(obj)},
        )
        refs.append(_ref(cluster.apply(obj)))
    _release_removed_namespaces(tenant, cluster, step)
    found = _inventory(tenant, cluster, step, now)
    return Result(children=refs, changed=step.changed, mcs_level=level, key=key, inventory=found)


def finalize(tenant: Tenant, *, ports: TenantPorts, actor: str) -> None:
    """Tear down what the children's owner references do not: the key (per deletion policy) and the level.

    The namespaces and everything in them go by garbage collection once the finalizer is removed.
    Raises ``GateClosed`` while a gate (quorum) holds the deletion.
    """
    decision = gates.tenant_deletion(tenant)
    if not decision.allowed:
        raise GateClosed(decision.message, reason=decision.reason)
    step = Step(tenant, ports.ledger, actor, lambda: None)
    ref = _tenant_ref(tenant)
    policy = tenant.spec.deletion_policy
    step.record("delete-tenant", ref, "delete", {"deletionPolicy": policy, "gate": decision.reason})
    provider = ports.keys.for_provider(tenant.spec.kms.provider)
    name = str(tenant.metadata["name"])
    if policy == "CryptoShred":
        step.record("crypto-shred-kek", ref, "kek/shred", {"provider": provider.provider})
        provider.shred(name)
    else:
        step.record("retain-kek", ref, "kek/retain", {"provider": provider.provider})
        provider.retain(name)
    if tenant.status and tenant.status.mcs_level:
        step.record("release-mcs-level", ref, "mcs/release", {"mcsLevel": tenant.status.mcs_level})
    ports.levels.release(str(tenant.metadata["uid"]))


def _ref(obj: dict[str, Any]) -> ChildRef:
    kind, namespace, name = child_id(obj)
    return ChildRef(kind=kind, namespace=namespace, name=name, uid=obj["metadata"]["uid"])


def status_after(tenant: Tenant, *, result: Result | None, error: Exception | None, now: datetime) -> TenantStatus:
    """The status to write after a reconcile that ended with ``result`` or with ``error``."""
    previous = tenant.status or TenantStatus()
    generation = tenant.metadata.get("generation")
    if error is None and result is not None:
        namespaces = tenant.namespace_names()
        return TenantStatus(
            observed_generation=generation,
            conditions=conditions.ready(
                previous.conditions,
                message=f"{len(namespaces)} namespace(s) with their policies, MCS level {result.mcs_level},"
                f" {result.key.provider} key {result.key.key_name} v{result.key.latest_version}",
                generation=generation,
                now=now,
            ),
            namespaces=namespaces,
            mcs_level=result.mcs_level,
            kms=result.key,
            crypto_inventory=InventorySummary.model_validate(result.inventory.summary()),
            children=result.children,
        )
    if error is not None and (isinstance(error, KmsUnavailable) or not isinstance(error, TransientError)):
        # Stalled even while retried: a KMS outage needs a person to look, and clears on its own.
        reason = "KMSUnavailable" if isinstance(error, KmsUnavailable) else getattr(error, "reason", "ReconcileFailed")
        return previous.model_copy(
            update={
                "observed_generation": generation,
                "conditions": conditions.stalled(
                    previous.conditions, reason=reason, message=str(error), generation=generation, now=now
                ),
            }
        )
    reason = type(error).__name__ if error is not None else "Progressing"
    message = str(error) if error is not None else "reconciling the tenant's namespaces, key and policies"
    return previous.model_copy(
        update={
            "conditions": conditions.progressing(
                previous.conditions, reason=reason, message=message, generation=generation, now=now
            ),
        }
    )
