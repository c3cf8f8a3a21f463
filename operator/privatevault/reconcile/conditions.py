"""kstatus conditions: Ready, Reconciling and Stalled, with transition times kept unless they flip."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from privatevault.api.v1alpha1 import Condition
from privatevault.api.v1alpha1.common import ConditionStatus

READY, RECONCILING, STALLED = "Ready", "Reconciling", "Stalled"
_ORDER = (READY, RECONCILING, STALLED)


def timestamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Condition],
    *,
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """Conditions with ``type`` set; ``lastTransitionTime`` moves only when ``status`` changes."""
    previous = next((c for c in conditions if c.type == type), None)
    since = previous.last_transition_time if previous and previous.status == status else timestamp(now)
    updated = Condition(
        type=type,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    others = [c for c in conditions if c.type != type]
    return sorted([*others, updated], key=lambda c: (_ORDER.index(c.type) if c.type in _ORDER else 99, c.type))


def progressing(
    conditions: Sequence[Condition], *, reason: str, message: str, generation: int | None, now: datetime
) -> list[Condition]:
    """Work under way (or retried): Reconciling=True; Ready stays as it was unless never set."""
    out = set_condition(
        conditions, type=RECONCILING, status="True", reason=reason, message=message, generation=generation, now=now
    )
    if not any(c.type == READY for c in out):
        out = set_condition(
            out, type=READY, status="Unknown", reason=reason, message=message, generation=generation, now=now
        )
    return set_condition(out, type=STALLED, status="False", reason=reason, message="", generation=generation, now=now)


def ready(conditions: Sequence[Condition], *, message: str, generation: int | None, now: datetime) -> list[Condition]:
    out = set_condition(
        conditions, type=READY, status="True", reason="Reconciled", message=message, generation=generation, now=now
    )
    out = set_condition(
        out, type=RECONCILING, status="False", reason="Reconciled", message="", generation=generation, now=now
    )
    return set_condition(
        out, type=STALLED, status="False", reason="Reconciled", message="", generation=generation, now=now
    )


def stalled(
    conditions: Sequence[Condition], *, reason: str, message: str, generation: int | None, now: datetime
) -> list[Condition]:
    out = set_condition(
        conditions, type=STALLED, status="True", reason=reason, message=message, generation=generation, now=now
    )
    out = set_condition(
        out, type=RECONCILING, status="False", reason=reason, message="", generation=generation, now=now
    )
    return set_condition(
        out, type=READY, status="False", reason=reason, message=message, generation=generation, now=now
    )
