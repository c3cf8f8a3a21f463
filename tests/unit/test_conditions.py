"""Conditions keep lastTransitionTime unless their status flips, and come in a stable order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from privatevault.reconcile import conditions

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_transition_time_kept_when_status_unchanged() -> None:
    first = conditions.ready([], message="a", generation=1, now=T0)
    second = conditions.ready(first, message="b", generation=2, now=T1)
    ready = {c.type: c for c in second}["Ready"]
    assert ready.last_transition_time == "2026-01-01T00:00:00Z"
    assert (ready.message, ready.observed_generation) == ("b", 2)


def test_transition_time_moves_when_status_flips() -> None:
    first = conditions.ready([], message="a", generation=1, now=T0)
    second = conditions.stalled(first, reason="NamespaceConflict", message="x", generation=2, now=T1)
    ready = {c.type: c for c in second}["Ready"]
    assert (ready.status, ready.reason, ready.last_transition_time) == (
        "False",
        "NamespaceConflict",
        "2026-01-01T00:05:00Z",
    )
    assert [c.type for c in second] == ["Ready", "Reconciling", "Stalled"]
