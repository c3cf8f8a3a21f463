"""Exceptions and attestations: gated changes of a framework's results.

Each ``spec.exceptions[]`` entry is the gated action ``AddComplianceException``, each
``spec.attestations[]`` entry ``AttestComplianceControl``; both target the ComplianceFramework,
and their change digest is the sha256 of the canonical entry (:func:`change`), so approvals find
them as every other gated change. The controller asks ``privatevault.reconcile.quorum`` to decide each entry's
:meth:`Entry.gated` change and hands :func:`decide` a :class:`Verdict` per entry digest;
:func:`decide` turns verdicts and the clock into states:

- ``Refused``: the quorum refused it;
- ``Expired``: ``expires`` has passed (at ``expires`` exactly, it has);
- ``Active``: approved and not expired — the only state that changes a result;
- ``AwaitingQuorum``: anything else (no verdict yet, or pending).

An active exception waives its control for the tenants it lists (all selected tenants when the
list is empty) of this framework only: :class:`ActiveWaivers` is built from one framework's spec
and handed to that framework's evaluation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from privatevault.api.v1alpha1.complianceframework import ComplianceFrameworkSpec
from privatevault.errors import SpecError
from privatevault.ledger.event import canonical
from privatevault.quorum.changes import Change as GatedChange
from privatevault.quorum.gate import Held
from privatevault.quorum.statement import Target

EXCEPTION_ACTION: Final = "AddComplianceException"
ATTESTATION_ACTION: Final = "AttestComplianceControl"

State = Literal["AwaitingQuorum", "Active", "Expired", "Refused"]


@dataclass(frozen=True)
class Verdict:
    """The quorum's word on one entry, as ``privatevault.reconcile.quorum`` gives it."""

    state: Literal["Approved", "Pending", "Refused"]
    #: Counted approvals over those needed, as ``n/m``.
    approvals: str = ""
    #: What is missing and how to sign (the ``pvctl approvals create`` hint).
    message: str = ""


@dataclass(frozen=True)
class Entry:
    """One exception or attestation of the spec, with its change digest."""

    action: str
    control: str
    #: The tenants an exception lists (empty: every selected tenant); always empty for attestations.
    tenants: frozenset[str]
    text: str
    expires: datetime
    expires_text: str
    digest: str

    @property
    def is_exception(self) -> bool:
        return self.action == EXCEPTION_ACTION

    def change(self) -> dict[str, Any]:
        return change(self.action, self.control, self.tenants, self.text, self.expires_text)

    def gated(self, framework: Target) -> GatedChange:
        """The gated change a quorum decides (``privatevault.reconcile.quorum.decide``).

        What an Approval signs is its digest: the entry bound to the framework's kind, name and uid
        (``quorum.statement.change``), so an approval of one framework's exception approves no
        other framework's. ``self.digest`` is the entry alone: what records and results cite.
        """
        return GatedChange(self.action, framework, self.change())


@dataclass(frozen=True)
class EntryState:
    entry: Entry
    state: State
    message: str

    def wire(self) -> dict[str, str]:
        """The status entry (``status.exceptions[]`` / ``status.attestations[]``)."""
        return {
            "control": self.entry.control,
            "state": self.state,
            "message": self.message,
            "expires": self.entry.expires_text,
        }


@dataclass(frozen=True)
class ActiveWaivers:
    """The active exceptions and attestations of one framework."""

    #: control id → (tenants or empty for every tenant, digest)
    exceptions: Mapping[str, tuple[frozenset[str], str]]
    #: control id → digest
    attestations: Mapping[str, str]

    def exception(self, control: str, tenant: str) -> str | None:
        """The digest of the active exception waiving ``control`` for ``tenant``, if any."""
        hit = self.exceptions.get(control)
        if hit is None:
            return None
        tenants, digest = hit
        return digest if not tenants or tenant in tenants else None

    def attestation(self, control: str) -> str | None:
        return self.attestations.get(control)


NONE: Final = ActiveWaivers(exceptions={}, attestations={})


def verdict(held: Held) -> Verdict:
    """The quorum's decision of an entry's gated change as a verdict.

    The quorum's ``Expired`` (every approval given has lapsed) still awaits new approvals, so it
    is ``Pending`` here: only ``Refused`` ends an entry before its own expiry.
    """
    decision = held.decision
    state: Literal["Approved", "Pending", "Refused"] = (
        "Approved" if decision.approved else "Refused" if decision.state == "Refused" else "Pending"
    )
    message = decision.message if decision.approved else f"{decision.message}; sign with: {held.pending.sign_with}"
    return Verdict(state, decision.approvals, message)


@dataclass(frozen=True)
class Waivers:
    entries: tuple[EntryState, ...]
    active: ActiveWaivers

    @property
    def exceptions(self) -> tuple[EntryState, ...]:
        return tuple(e for e in self.entries if e.entry.is_exception)

    @property
    def attestations(self) -> tuple[EntryState, ...]:
        return tuple(e for e in self.entries if not e.entry.is_exception)


def change(action: str, control: str, tenants: frozenset[str] | None, text: str, expires: str) -> dict[str, Any]:
    """The canonical change an approval signs (tenants sorted, so reordering them needs no new approval)."""
    key = "reason" if action == EXCEPTION_ACTION else "statement"
    out: dict[str, Any] = {"action": action, "control": control, key: text, "expires": expires}
    if action == EXCEPTION_ACTION:
        out["tenants"] = sorted(tenants or ())
    return out


def change_digest(obj: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical(dict(obj))).hexdigest()


def parse_time(text: str) -> datetime:
    """An RFC 3339 date-time; SpecError when it is not one or has no offset."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise SpecError(f"{text!r} is not an RFC 3339 date-time", reason="InvalidSpec") from exc
    if when.tzinfo is None:
        raise SpecError(f"{text!r} has no time zone offset", reason="InvalidSpec")
    return when


def _entry(action: str, control: str, tenants: frozenset[str], text: str, expires: str) -> Entry:
    return Entry(
        action=action,
        control=control,
        tenants=tenants,
        text=text,
        expires=parse_time(expires),
        expires_text=expires,
        digest=change_digest(change(action, control, tenants, text, expires)),
    )


def entries(spec: ComplianceFrameworkSpec) -> tuple[Entry, ...]:
    """The spec's exceptions then attestations, each with its change digest."""
    out = [_entry(EXCEPTION_ACTION, e.control, frozenset(e.tenants), e.reason, e.expires) for e in spec.exceptions]
    out += [_entry(ATTESTATION_ACTION, a.control, frozenset(), a.statement, a.expires) for a in spec.attestations]
    return tuple(out)


def state_of(entry: Entry, verdict: Verdict | None, now: datetime) -> EntryState:
    if verdict is not None and verdict.state == "Refused":
        return EntryState(entry, "Refused", _message("refused", verdict))
    if now >= entry.expires:
        return EntryState(entry, "Expired", f"expired at {entry.expires_text}")
    if verdict is not None and verdict.state == "Approved":
        return EntryState(entry, "Active", _message(f"active until {entry.expires_text}", verdict))
    if verdict is None:
        return EntryState(entry, "AwaitingQuorum", "awaiting quorum approval")
    return EntryState(entry, "AwaitingQuorum", _message("awaiting quorum", verdict))


def _message(head: str, verdict: Verdict) -> str:
    parts = [head]
    if verdict.approvals:
        parts.append(f"{verdict.approvals} approvals")
    if verdict.message:
        parts.append(verdict.message)
    return "; ".join(parts)[:1024]


def decide(items: Sequence[Entry], verdicts: Mapping[str, Verdict], now: datetime) -> Waivers:
    """Each entry's state from its verdict (by ``Entry.digest``) and the clock, and what is active."""
    states = tuple(state_of(e, verdicts.get(e.digest), now) for e in items)
    exceptions: dict[str, tuple[frozenset[str], str]] = {}
    attestations: dict[str, str] = {}
    for s in states:
        if s.state != "Active":
            continue
        if s.entry.is_exception:
            exceptions[s.entry.control] = (s.entry.tenants, s.entry.digest)
        else:
            attestations[s.entry.control] = s.entry.digest
    return Waivers(entries=states, active=ActiveWaivers(exceptions=exceptions, attestations=attestations))
