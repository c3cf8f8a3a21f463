"""Every ledger event of every kind is built here, with one idempotency-key scheme.

kopf runs handlers at least once, so a retried decision must find the record it wrote the first
time instead of writing a second one. The key names the change, not the attempt::

    <kind>/<uid>/<action>/<change>

- ``kind``: the lower-case kind whose reconcile decides the change (``tenant``,
  ``protectionpolicy``, …), or ``operator`` for the operator's own objects;
- ``uid``: that object's uid (for ``operator``, the operator's namespace), so a tenant deleted
  and made again under the same name never collides with its former self;
- ``action``: the ledger action (``create-namespace``, ``rotate-workload-key``, …; the list is in
  ``docs/audit.md``);
- ``change``: what makes this change this one: a version number, or the digest of the desired
  object with the resourceVersion it replaces. The same decision retried gives the same key; a
  new decision (a new version, a drift repaired again) gives a new one.

Records are written before the change is made (outcome ``intended``): if the ledger is down the
change is not made (audit fails closed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from privatevault.ledger import Event, Record, ResourceRef
from privatevault.ledger.event import canonical
from privatevault.reconcile.ports import LedgerPort

INTENDED = "intended"


def idempotency_key(kind: str, uid: str, action: str, change: str) -> str:
    return f"{kind.lower()}/{uid}/{action}/{change}"


def digest(obj: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of an object's canonical (RFC 8785) bytes."""
    return "sha256:" + hashlib.sha256(canonical(dict(obj))).hexdigest()


def ref(obj: Mapping[str, Any]) -> ResourceRef:
    """The ledger's reference to a Kubernetes object (its uid when it has one)."""
    meta = obj["metadata"]
    return ResourceRef(kind=obj["kind"], namespace=meta.get("namespace"), name=meta["name"], uid=meta.get("uid"))


def event(
    *,
    kind: str,
    uid: str,
    tenant: str,
    actor: str,
    action: str,
    resource: ResourceRef,
    change: str,
    details: Mapping[str, Any] | None = None,
) -> Event:
    """The one way an Event is made: an intended change, keyed by :func:`idempotency_key`."""
    return Event(
        tenant=tenant,
        actor=actor,
        action=action,
        resource=resource,
        outcome=INTENDED,
        idempotency_key=idempotency_key(kind, uid, action, change),
        details=dict(details or {}),
    )


@dataclass
class Audit:
    """Audits the changes one reconcile of one object makes, then lets them happen.

    ``context`` is added to every record's details (the owner's generation, the policy's name);
    ``crash_point`` runs after each record is written (failpoints prove crash safety end to end).
    """

    ledger: LedgerPort
    actor: str
    kind: str
    uid: str
    tenant: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)
    crash_point: Callable[[], None] = lambda: None
    changed: int = 0

    def record(
        self,
        action: str,
        resource: ResourceRef,
        change: str,
        details: Mapping[str, Any] | None = None,
        *,
        tenant: str | None = None,
    ) -> Record:
        written = self.ledger.append(
            event(
                kind=self.kind,
                uid=self.uid,
                tenant=self.tenant if tenant is None else tenant,
                actor=self.actor,
                action=action,
                resource=resource,
                change=change,
                details={**(details or {}), **self.context},
            )
        )
        self.crash_point()
        self.changed += 1
        return written
