"""Who asked for a gated action: what the admission webhook records, and how the gates read it back.

Kubernetes objects do not say who deleted or changed them, but an admission request does. For
every request that asks for a gated change, the webhook appends one ledger record naming the
user, keyed ::

    <kind>/<uid>/request-gated-action/<change digest>/<admission request uid>

so the same request retried by the API server writes nothing new, and every user who asked for
one exact change is found by the prefix up to the digest (:func:`prefix`). The digest is the one
an approval signs (``quorum.changes``), computed here from the object the API server admits.

Pure: :func:`held` says which changes a request holds, :func:`events` what to record, and
:func:`requester_from` turns the records back into the ``Requester`` a decision takes. A request
the webhook never saw (it was down, or absent) leaves no record: the requester is then unknown,
and a rule forbidding self-approval needs one approval more (``quorum.decision``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from privatevault.api.v1alpha1.complianceframework import ComplianceFrameworkSpec
from privatevault.compliance import waivers
from privatevault.errors import SpecError
from privatevault.ledger import Event, Record
from privatevault.quorum import changes
from privatevault.quorum.changes import Change
from privatevault.quorum.decision import Requester
from privatevault.reconcile.audit import event, ref
from privatevault.reconcile.ports import LedgerPort

ACTION: Final = "request-gated-action"
ACTOR: Final = "admission-webhook"

Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]

#: The kinds and operations whose requests can hold a gated change (the webhook's rules).
GATED: Final[Mapping[str, tuple[Operation, ...]]] = {
    "Tenant": ("UPDATE", "DELETE"),
    "ProtectionPolicy": ("UPDATE", "DELETE"),
    "QuorumPolicy": ("UPDATE", "DELETE"),
    "EvidenceExport": ("CREATE",),
    "ComplianceFramework": ("CREATE", "UPDATE"),
}


@dataclass(frozen=True)
class Admission:
    """One admission request as the webhook sees it (``old``/``new`` as the API server sends them)."""

    uid: str
    operation: str
    kind: str
    user: str
    groups: Sequence[str] = ()
    old: Mapping[str, Any] | None = None
    new: Mapping[str, Any] | None = None
    dry_run: bool = False


def _spec(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict((obj or {}).get("spec") or {})


def held(kind: str, operation: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[Change]:
    """The gated changes a request for ``operation`` on ``kind`` asks for (none for most requests).

    The operator decides whether a spec change is in fact a weakening; the webhook records the
    requester of every spec change that might be one, so the record is there when it is. On a
    Tenant, a new token in a key-request annotation asks for a key action out of schedule.
    """
    deleted = old if operation == "DELETE" else None
    updated = new if operation == "UPDATE" and old is not None else None
    if kind == "Tenant":
        if deleted is not None:
            return [changes.deletion(deleted)]
        if updated is not None:
            moved = changes.gate_fields(_spec(old)) != changes.gate_fields(_spec(updated))
            gate = [changes.new_spec("ChangeQuorumGate", updated)] if moved else []
            return gate + _key_requests(old, updated)
    elif kind == "ProtectionPolicy":
        if deleted is not None:
            return [changes.protection_policy_deletion(deleted)]
        if updated is not None and _spec(old) != _spec(updated):
            weaken = changes.new_spec("WeakenProtectionPolicy", updated)
            if _spec(old).get("quorumPolicyRef") == _spec(updated).get("quorumPolicyRef"):
                return [weaken]
            return [weaken, changes.new_spec("ChangeQuorumGate", updated)]
    elif kind == "QuorumPolicy":
        if deleted is not None:
            return [changes.quorum_policy_deletion(deleted)]
        if updated is not None and _spec(old) != _spec(updated):
            return [changes.new_spec("WeakenQuorumPolicy", updated)]
    elif kind == "EvidenceExport" and operation == "CREATE" and new is not None:
        return [changes.new_spec("CreateEvidenceExport", new)]
    elif kind == "ComplianceFramework" and operation in ("CREATE", "UPDATE") and new is not None:
        # A framework made with an approving policy may be one made again under its name with
        # another (``reconcile.complianceframework.approving_policy``): who asked is recorded.
        made = [changes.framework_gate(new)] if operation == "CREATE" and _spec(new).get("quorumPolicyRef") else []
        return made + _waivers(old if operation == "UPDATE" else None, new)
    return []


def _entries(obj: Mapping[str, Any] | None) -> tuple[waivers.Entry, ...]:
    if obj is None:
        return ()
    try:
        return waivers.entries(ComplianceFrameworkSpec.model_validate(_spec(obj)))
    except (ValueError, SpecError):
        return ()  # the API server refuses it, or the operator stalls it: nothing to approve


def _waivers(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[Change]:
    """Each exception and attestation the request adds (or changes): a gated change of the framework."""
    before = {e.digest for e in _entries(old)}
    return [e.gated(changes.target(new)) for e in _entries(new) if e.digest not in before]


def _annotations(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return ((obj or {}).get("metadata") or {}).get("annotations") or {}


def _key_requests(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[Change]:
    """Key actions out of schedule asked for by setting a new token (``reconcile.key_requests``)."""
    return [
        changes.key_request(request.action, new, request.annotation, str(token))
        for request in changes.KEY_REQUESTS
        if (token := _annotations(new).get(request.annotation)) and token != _annotations(old).get(request.annotation)
    ]


def prefix(change: Change) -> str:
    """The idempotency-key prefix of every requester record of ``change``, for ``Ledger.find``."""
    return f"{change.target.kind.lower()}/{change.target.uid}/{ACTION}/{change.digest}/"


def events(request: Admission) -> list[Event]:
    """The ledger records for the requester of each change ``request`` holds; none for a dry run."""
    if request.dry_run:
        return []
    subject = request.old if request.operation == "DELETE" else request.new
    if subject is None:
        return []
    found = []
    for change in held(request.kind, request.operation, request.old, request.new):
        found.append(
            event(
                kind=change.target.kind,
                uid=change.target.uid,
                tenant=change.target.name if change.target.kind == "Tenant" else "",
                actor=ACTOR,
                action=ACTION,
                resource=ref(subject),
                change=f"{change.digest}/{request.uid}",
                details={
                    "user": request.user,
                    "groups": sorted(request.groups),
                    "operation": request.operation,
                    "action": change.action,
                    "changeDigest": change.digest,
                },
            )
        )
    return found


def requester_from(records: Iterable[Record]) -> Requester:
    """Everyone the webhook recorded asking for the change: ``ledger.find(prefix(change))`` in,
    ``Requester.of(users…)`` out, or ``Requester.unknown()`` when no request was recorded."""
    users = set()
    for record in records:
        body = json.loads(record.canonical)
        if body.get("action") == ACTION and (user := body.get("details", {}).get("user")):
            users.add(str(user))
    return Requester.of(*users) if users else Requester.unknown()


def requester(ledger: LedgerPort, change: Change) -> Requester:
    """Who asked for ``change``, as the ledger knows it (see :func:`requester_from`)."""
    return requester_from(ledger.find(prefix(change)))


__all__ = ["ACTION", "ACTOR", "GATED", "Admission", "events", "held", "prefix", "requester", "requester_from"]
