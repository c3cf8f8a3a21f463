"""What goes into the ledger (an Event) and what comes out (a Record)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import rfc8785


@dataclass(frozen=True, kw_only=True)
class ResourceRef:
    kind: str
    name: str
    namespace: str | None = None
    uid: str | None = None


@dataclass(frozen=True, kw_only=True)
class Event:
    """One change about to be made. ``details`` holds digests and facts, never secrets."""

    tenant: str
    actor: str
    action: str
    resource: ResourceRef
    outcome: str
    idempotency_key: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def body(self, *, seq: int, time: datetime, link: dict[str, Any] | None = None) -> dict[str, Any]:
        """The record's content as hashed: the event plus its position and time, and its place in
        its tenant's chain (``link``, from ``ledger.tenantchain``)."""
        resource = {"kind": self.resource.kind, "name": self.resource.name}
        if self.resource.namespace is not None:
            resource["namespace"] = self.resource.namespace
        if self.resource.uid is not None:
            resource["uid"] = self.resource.uid
        return {
            "v": 1,
            "seq": seq,
            "time": time.isoformat().replace("+00:00", "Z"),
            "tenant": self.tenant,
            "actor": self.actor,
            "action": self.action,
            "resource": resource,
            "outcome": self.outcome,
            "details": self.details,
            "idempotencyKey": self.idempotency_key,
            **(link or {}),
        }


def canonical(body: dict[str, Any]) -> bytes:
    """RFC 8785 (JCS) bytes: the only form that is hashed and stored."""
    return bytes(rfc8785.dumps(body))


class Record(NamedTuple):
    """A stored ledger record, as read back from the table (a tuple: the verifier reads millions)."""

    seq: int
    canonical: bytes
    prev_hash: bytes
    record_hash: bytes
    idempotency_key: str = ""
