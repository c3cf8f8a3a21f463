"""The history of control states: ``compliance-state`` ledger records folded per (framework, tenant).

A ``compliance-state`` record (``docs/design/compliance.md``, "Ledger history") holds a framework's
full control map for one tenant, its score, the seq of the previous record of the same framework
and tenant (``previous``) and the controls that changed since it (``changed``). So each record can
be checked against the one before it, offline, by anyone holding the two:

- ``previous`` names the seq of the record before it of its (framework uid, tenant), or null for
  the first one (or the first after the tenant was deselected and selected again: a new start,
  whose ``changed`` lists every control from null, as a first record's does);
- ``controls`` is the previous record's ``controls`` with ``changed`` applied: every entry's
  ``from`` is the control's state in the previous record (null: the control is new), its ``to``
  the state in this one (null: the control was removed), and no other control changed;
- a control may appear or disappear only with a new ``generation`` (a spec change of the
  ComplianceFramework: controls added or removed); a control's severity or weight may change only
  then too. The first record of a (framework, tenant) lists every control, from null;
- ``score``, ``earned`` and ``possible`` recompute from ``controls`` (:func:`score.of_record`).

:func:`fold` reads records in seq order (as the ledger and an evidence bundle hold them) and gives
the states and every :class:`Problem` found, each naming the seq and what is wrong; it never
raises on bad input. :func:`state_at` is the state at a time: the last record at or before it.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from privatevault.compliance.score import SEVERITY, STATES, of_record

ACTION: Final = "compliance-state"

#: ``(framework uid, tenant)``: the key a history is kept under.
Key = tuple[str, str]


@dataclass(frozen=True)
class State:
    """A (framework, tenant)'s controls and score as one record left them."""

    seq: int
    time: str
    tenant: str
    framework: str
    framework_uid: str
    standard: str
    version: str
    generation: int
    controls: Mapping[str, Mapping[str, Any]]
    score: int | None
    earned: int
    possible: int
    #: The record's ``changed`` entries (each control's findings when it changed in this record).
    changed: tuple[Mapping[str, Any], ...] = ()

    @property
    def key(self) -> Key:
        return (self.framework_uid, self.tenant)

    def count(self, state: str) -> int:
        return sum(1 for c in self.controls.values() if c.get("state") == state)

    def failing(self) -> list[str]:
        """The ids of the controls in state ``fail``, sorted."""
        return sorted(cid for cid, c in self.controls.items() if c.get("state") == "fail")


@dataclass(frozen=True)
class Problem:
    """What is wrong with record ``seq`` (of ``framework`` and ``tenant``, when they could be read)."""

    seq: int
    message: str
    framework: str = ""
    tenant: str = ""

    def __str__(self) -> str:
        return f"compliance-state record {self.seq}: {self.message}"


@dataclass
class History:
    """Every (framework uid, tenant)'s states in seq order, and what did not verify."""

    timelines: dict[Key, list[State]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def latest(self) -> dict[Key, State]:
        return {key: states[-1] for key, states in self.timelines.items() if states}

    def at(self, moment: datetime) -> dict[Key, State]:
        """Each key's state at ``moment`` (keys with no record by then are left out)."""
        found = {key: state_at(states, moment) for key, states in self.timelines.items()}
        return {key: state for key, state in found.items() if state is not None}


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def state_at(states: Sequence[State], moment: datetime) -> State | None:
    """The state at ``moment``: the last of ``states`` (in seq order) recorded at or before it."""
    found = None
    for state in states:
        if parse_time(state.time) > moment:
            break
        found = state
    return found


class _Bad(Exception):
    """One problem of one record, raised inside the checks and turned into a :class:`Problem`."""


def _int(value: Any, name: str) -> int:
    if type(value) is not int:
        raise _Bad(f"{name} is {value!r}, not an integer")
    return value


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise _Bad(f"{name} is {value!r}, not a non-empty string")
    return value


def _controls(value: Any) -> dict[str, Mapping[str, Any]]:
    if not isinstance(value, Mapping):
        raise _Bad("controls is not an object")
    for cid, control in value.items():
        if not isinstance(control, Mapping):
            raise _Bad(f"control {cid} is not an object")
        if control.get("state") not in STATES:
            raise _Bad(f"control {cid} has state {control.get('state')!r}, not one of {', '.join(STATES)}")
        if control.get("severity") not in SEVERITY:
            raise _Bad(f"control {cid} has severity {control.get('severity')!r}, not one of {', '.join(SEVERITY)}")
        if type(control.get("weight")) is not int or control["weight"] < 0:
            raise _Bad(f"control {cid} has weight {control.get('weight')!r}, not a non-negative integer")
    return dict(value)


def _state(record: Mapping[str, Any]) -> State:
    """The record read as a :class:`State`, its own fields checked (not yet against its predecessor)."""
    if record.get("action") != ACTION:
        raise _Bad(f"is a {record.get('action')!r} record, not {ACTION}")
    details = record.get("details")
    if not isinstance(details, Mapping):
        raise _Bad("has no details object")
    controls = _controls(details.get("controls"))
    score = details.get("score")
    if score is not None:
        _int(score, "score")
    state = State(
        seq=_int(record.get("seq"), "seq"),
        time=_str(record.get("time"), "time"),
        tenant=_str(record.get("tenant"), "tenant"),
        framework=_str(details.get("framework"), "framework"),
        framework_uid=_str(details.get("frameworkUid"), "frameworkUid"),
        standard=str(details.get("standard") or ""),
        version=str(details.get("version") or ""),
        generation=_int(details.get("generation"), "generation"),
        controls=controls,
        score=score,
        earned=_int(details.get("earned"), "earned"),
        possible=_int(details.get("possible"), "possible"),
        changed=tuple(c for c in details.get("changed") or () if isinstance(c, Mapping)),
    )
    try:
        parse_time(state.time)
    except ValueError as exc:
        raise _Bad(f"time {state.time!r} is not an RFC 3339 time") from exc
    recomputed = of_record(controls)
    if (recomputed.value, recomputed.earned, recomputed.possible) != (state.score, state.earned, state.possible):
        raise _Bad(
            f"score {state.score} ({state.earned}/{state.possible}) does not recompute from its controls:"
            f" they give {recomputed.value} ({recomputed.earned}/{recomputed.possible})"
        )
    return state


def _changes(details: Mapping[str, Any]) -> dict[str, tuple[str | None, str | None]]:
    """``changed`` as {control: (from, to)}, each control once."""
    changed = details.get("changed")
    if not isinstance(changed, list):
        raise _Bad("changed is not a list")
    out: dict[str, tuple[str | None, str | None]] = {}
    for entry in changed:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("control"), str):
            raise _Bad(f"changed holds {entry!r}, not a {{control, from, to}} entry")
        cid = entry["control"]
        if cid in out:
            raise _Bad(f"changed lists control {cid} twice")
        before, after = entry.get("from"), entry.get("to")
        for name, value in (("from", before), ("to", after)):
            if value is not None and value not in STATES:
                raise _Bad(f"changed: control {cid}'s {name} is {value!r}, not a control state or null")
        if before is None and after is None:
            raise _Bad(f"changed: control {cid} goes from null to null")
        out[cid] = (before, after)
    return out


def _follows(previous: State | None, state: State, details: Mapping[str, Any], *, start: bool) -> None:
    """``state`` (with its raw ``details``) is ``previous`` with ``changed`` applied; a ``start``
    without a previous record is taken as it is (its predecessor is not among the records)."""
    link = details.get("previous")
    changes = _changes(details)
    if previous is None and start:
        return
    if previous is None or link is None:
        # The first record, or a new start: the controller forgets a tenant no longer selected,
        # and records it from scratch when it is selected again. Either way every control is new.
        if link is not None:
            raise _Bad(f"follows record {link}, which is not among the records given")
        before: Mapping[str, Mapping[str, Any]] = {}
        regenerated = True
    else:
        if link != previous.seq:
            raise _Bad(
                f"names {link!r} as its previous record, but the previous record of framework"
                f" {state.framework} and tenant {state.tenant} is {previous.seq}"
            )
        if state.seq <= previous.seq or parse_time(state.time) < parse_time(previous.time):
            raise _Bad(f"is not after its previous record {previous.seq}")
        if state.generation < previous.generation:
            raise _Bad(f"has generation {state.generation}, older than its previous record's {previous.generation}")
        before, regenerated = previous.controls, state.generation != previous.generation
    for cid, (was, now) in changes.items():
        had = before[cid]["state"] if cid in before else None
        if was != had:
            raise _Bad(f"changed says control {cid} was {was!r}, but the previous record has it {had!r}")
        has = state.controls[cid]["state"] if cid in state.controls else None
        if now != has:
            raise _Bad(f"changed says control {cid} became {now!r}, but the record has it {has!r}")
        if (was is None or now is None) and not regenerated:
            verb = "added" if was is None else "removed"
            raise _Bad(f"control {cid} is {verb} without a new generation ({state.generation})")
    for cid in sorted(set(before) | set(state.controls)):
        if cid in changes:
            continue
        if cid not in state.controls or cid not in before:
            verb = "removed" if cid in before else "added"
            raise _Bad(f"control {cid} is {verb}, but changed does not list it")
        old, new = before[cid], state.controls[cid]
        if old["state"] != new["state"]:
            raise _Bad(f"control {cid} went from {old['state']} to {new['state']}, but changed does not list it")
        if not regenerated and (old["severity"], old["weight"]) != (new["severity"], new["weight"]):
            raise _Bad(f"control {cid}'s severity or weight changed without a new generation")


def fold(records: Iterable[Mapping[str, Any]], *, starts: Collection[int] = ()) -> History:
    """Fold ``compliance-state`` records (ledger record dicts, in seq order) and verify each against
    the previous record of its (framework uid, tenant).

    ``starts`` are the seqs of records taken as the start of their key's history although they
    follow a record not given (an evidence bundle's last record before its window): their own
    fields and score are checked, their link and ``changed`` are not.

    A record that does not verify is reported and left out of the states; the next record of its
    key is checked against the last one that did (so one bad record is one problem, not a cascade
    of them, and the states show what the verified records say).
    """
    history = History()
    for record in records:
        seq = record.get("seq") if type(record.get("seq")) is int else 0
        details = record.get("details")
        framework = str(details.get("framework") or "") if isinstance(details, Mapping) else ""
        tenant = str(record.get("tenant") or "")
        try:
            state = _state(record)
            assert isinstance(details, Mapping)  # _state checked it
            timeline = history.timelines.setdefault(state.key, [])
            _follows(timeline[-1] if timeline else None, state, details, start=state.seq in starts)
        except _Bad as bad:
            history.problems.append(Problem(int(seq or 0), str(bad), framework, tenant))
            continue
        timeline.append(state)
    return history


def select(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The ``compliance-state`` records among ``records``."""
    return [r for r in records if r.get("action") == ACTION]
