"""The gated changes of each kind, named the same way by the operator, the webhook and ``pvctl``.

Each function takes an object as the API server stores it (a plain dict) and returns the held
action: its verb, its target and what the change makes of the target, whose digest
(``statement.change_digest``) an approval must sign. The admission webhook computes the same
digest from the request it sees, so the requester it records can be matched to the change the
operator holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .statement import Target, change_digest


@dataclass(frozen=True)
class Change:
    action: str
    target: Target
    what: Mapping[str, Any]

    @property
    def digest(self) -> str:
        return change_digest(self.action, self.target, self.what)


def target(obj: Mapping[str, Any]) -> Target:
    meta = obj.get("metadata") or {}
    return Target(
        kind=str(obj.get("kind", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 0),
    )


def deletion(obj: Mapping[str, Any]) -> Change:
    """Deleting a Tenant (and, under CryptoShred, destroying its key): bound to the spec deleted."""
    return Change("DeleteTenant", target(obj), {"delete": dict(obj.get("spec") or {})})


def quorum_policy_deletion(obj: Mapping[str, Any]) -> Change:
    """Deleting a QuorumPolicy: the last weakening of all (nothing left to gate), bound to the spec deleted."""
    return Change("WeakenQuorumPolicy", target(obj), {"delete": dict(obj.get("spec") or {})})


def protection_policy_deletion(obj: Mapping[str, Any]) -> Change:
    """Deleting a gated ProtectionPolicy: the weakest edit (no protection, no gate), bound to the spec deleted."""
    return Change("WeakenProtectionPolicy", target(obj), {"delete": dict(obj.get("spec") or {})})


def framework_gate(obj: Mapping[str, Any]) -> Change:
    """A ComplianceFramework made again under its name with another approving QuorumPolicy: bound to that ref."""
    return Change("ChangeQuorumGate", target(obj), {"quorumPolicyRef": (obj.get("spec") or {}).get("quorumPolicyRef")})


@dataclass(frozen=True)
class KeyRequest:
    """A key action out of schedule, asked for with an annotation on a Tenant (a new token asks again)."""

    annotation: str
    action: str
    #: The ledger action that answers it (keyed by the token).
    record: str


KEY_REQUESTS = (
    KeyRequest("privatevault.io/rotate-kek", "RotateKeyOutOfSchedule", "rotate-kek-on-request"),
    KeyRequest("privatevault.io/destroy-kek", "DestroyKey", "destroy-kek-on-request"),
)


def key_request(action: str, obj: Mapping[str, Any], annotation: str, token: str) -> Change:
    """A key action out of schedule asked for by an annotation: bound to the annotation and its token."""
    return Change(action, target(obj), {"annotation": annotation, "token": token})


def new_spec(action: str, obj: Mapping[str, Any]) -> Change:
    """A spec change held until approved (a weakening, a gate moved): bound to the new spec."""
    return Change(action, target(obj), {"spec": dict(obj.get("spec") or {})})


def gate_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    """What of a Tenant's spec decides its gates: the policy that gates it, what deletion does, and
    the ProtectionPolicy that protects its workloads (moving to a weaker one routes around that
    policy's own weakening gate)."""
    return {
        "quorumPolicyRef": spec.get("quorumPolicyRef"),
        "deletionPolicy": spec.get("deletionPolicy") or "Retain",
        "protectionPolicyRef": spec.get("protectionPolicyRef"),
    }
