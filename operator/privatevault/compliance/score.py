"""The posture score: a documented, weighted formula (``docs/design/compliance.md``).

Per control ``c``: ``w(c) = weight(c) * S(severity(c))`` with ``S`` below. Over the controls whose
state is ``pass``, ``fail`` or ``unknown`` (``not-applicable`` and ``excepted`` leave the
denominator; ``unknown`` counts as not passed)::

    possible = Σ w(c)      earned = Σ w(c) for state pass
    score    = floor(100 * earned / possible), or None when possible = 0

A framework's score pools its tenants: ``floor(100 * Σ earned / Σ possible)``. So 100 means every
counted control of every tenant passed, and a large failing tenant is not averaged away.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

SEVERITY: Final[Mapping[str, int]] = {"Low": 1, "Medium": 2, "High": 4, "Critical": 8}

#: States that count in the denominator; only ``pass`` counts in the numerator.
COUNTED: Final = frozenset({"pass", "fail", "unknown"})
STATES: Final = ("pass", "fail", "unknown", "not-applicable", "excepted")


@dataclass(frozen=True)
class Score:
    earned: int
    possible: int

    @property
    def value(self) -> int | None:
        """0..100, floored (so 100 only when everything counted passed); None when nothing counts."""
        if self.possible == 0:
            return None
        return (100 * self.earned) // self.possible


def control_weight(severity: str, weight: int) -> int:
    return weight * SEVERITY[severity]


def of_states(controls: Iterable[tuple[str, str, int]]) -> Score:
    """The score of (state, severity, weight) triples."""
    earned = possible = 0
    for state, severity, weight in controls:
        if state not in STATES:
            raise ValueError(f"unknown control state {state!r}")
        if state not in COUNTED:
            continue
        w = control_weight(severity, weight)
        possible += w
        if state == "pass":
            earned += w
    return Score(earned=earned, possible=possible)


def of_record(controls: Mapping[str, Mapping[str, Any]]) -> Score:
    """The score of a ``compliance-state`` record's ``controls`` map (what an auditor recomputes)."""
    return of_states((str(c["state"]), str(c["severity"]), int(c["weight"])) for c in controls.values())


def pooled(scores: Iterable[Score]) -> Score:
    """A framework's score over its tenants: sums, not a mean of percentages."""
    earned = possible = 0
    for s in scores:
        earned += s.earned
        possible += s.possible
    return Score(earned=earned, possible=possible)
