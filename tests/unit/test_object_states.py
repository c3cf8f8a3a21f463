"""The one-word state of a status (what privatevault_objects counts and the Argo CD health checks
read), and the metric itself: every kind and state exported, deleted objects forgotten."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from privatevault import metrics
from privatevault.api.v1alpha1 import Condition, Status
from privatevault.reconcile import status


def conditions(**given: tuple[str, str]) -> Status:
    return Status(
        observed_generation=1,
        conditions=[
            Condition(type=kind, status=value, reason=reason, last_transition_time="2026-11-30T12:00:00Z")  # type: ignore[arg-type]
            for kind, (value, reason) in given.items()
        ],
    )


@pytest.mark.parametrize(
    ("given", "state"),
    [
        ({}, "Reconciling"),
        ({"Ready": ("True", "Reconciled")}, "Ready"),
        ({"Ready": ("False", "Reconciling"), "Reconciling": ("True", "Reconciling")}, "Reconciling"),
        ({"Ready": ("True", "Reconciled"), "Reconciling": ("True", "AwaitingQuorum")}, "AwaitingQuorum"),
        ({"Reconciling": ("True", "LedgerUnavailable")}, "Reconciling"),
        ({"Stalled": ("True", "MCSConflict"), "Reconciling": ("True", "AwaitingQuorum")}, "Stalled"),
        ({"Stalled": ("False", "Reconciled"), "Ready": ("True", "Reconciled")}, "Ready"),
    ],
)
def test_state_of_a_status(given: dict[str, Any], state: str) -> None:
    assert status.state(conditions(**given)) == state


def test_the_stalled_reason() -> None:
    assert status.stalled_reason(conditions(Stalled=("True", "KMSUnavailable"))) == "KMSUnavailable"
    assert status.stalled_reason(conditions(Stalled=("False", "Reconciled"), Ready=("True", "Reconciled"))) == ""


def test_the_metric_names_the_same_states() -> None:
    assert metrics.STATES == status.STATES


def test_objects_by_kind_and_state_and_deleted_ones_forgotten() -> None:
    now = [100.0]
    collector = metrics.OperatorMetrics(forget_after=60, clock=lambda: now[0])
    registry = CollectorRegistry()
    registry.register(collector)
    collector.observe("Tenant", "a", "Ready")
    collector.observe("Tenant", "b", "Stalled")
    collector.observe("Tenant", "b", "Ready")
    collector.observe("QuorumPolicy", "q", "AwaitingQuorum")
    collector.observe("Tenant", "k", "Stalled", "KMSUnavailable")

    def value(kind: str, state: str) -> float | None:
        return registry.get_sample_value("privatevault_objects", {"kind": kind, "state": state})

    assert value("Tenant", "Ready") == 2 and value("Tenant", "Stalled") == 1
    assert value("QuorumPolicy", "AwaitingQuorum") == 1 and value("Approval", "Stalled") == 0
    stalled = {"kind": "Tenant", "reason": "KMSUnavailable"}
    assert registry.get_sample_value("privatevault_objects_stalled", stalled) == 1
    collector.forget("Tenant", "a")
    collector.forget("Tenant", "k")
    now[0] += 30
    collector.observe("Tenant", "c", "Stalled")
    now[0] += 40  # b and q unseen for 70 s: gone
    assert value("Tenant", "Ready") == 0 and value("Tenant", "Stalled") == 1
    assert value("QuorumPolicy", "AwaitingQuorum") == 0
    assert b"# TYPE privatevault_objects gauge" in generate_latest(registry)


def test_held_actions_with_counted_approvals_show_when_the_first_lapses() -> None:
    now = [100.0]
    collector = metrics.OperatorMetrics(forget_after=60, clock=lambda: now[0])
    registry = CollectorRegistry()
    registry.register(collector)
    lapses = datetime(2026, 6, 1, 13, 0, tzinfo=UTC)
    collector.held("Tenant", "acme", [("DeleteTenant", "Pending", lapses), ("RotateKeyOutOfSchedule", "Pending", None)])
    collector.held("ProtectionPolicy", "strict", [("WeakenProtectionPolicy", "Pending", lapses)])

    def expiry(kind: str, target: str, action: str) -> float | None:
        labels = {"kind": kind, "target": target, "action": action}
        return registry.get_sample_value("privatevault_approval_expiry_timestamp_seconds", labels)

    assert expiry("Tenant", "acme", "DeleteTenant") == lapses.timestamp()
    assert expiry("Tenant", "acme", "RotateKeyOutOfSchedule") is None  # no approval counted yet
    assert (
        registry.get_sample_value("privatevault_quorum_decisions_total", {"action": "DeleteTenant", "state": "Pending"})
        == 1
    )
    collector.held("Tenant", "acme", [("DeleteTenant", "Approved", None)])  # approved: nothing to lapse
    assert expiry("Tenant", "acme", "DeleteTenant") is None
    collector.held("Tenant", "acme", [("DeleteTenant", "Pending", lapses)])
    collector.forget("Tenant", "acme")  # deleted
    assert expiry("Tenant", "acme", "DeleteTenant") is None
    now[0] += 61  # unseen for longer than forget_after: gone
    assert expiry("ProtectionPolicy", "strict", "WeakenProtectionPolicy") is None
    assert b"# TYPE privatevault_approval_expiry_timestamp_seconds gauge" in generate_latest(registry)


def test_compliance_series_per_framework_and_tenant_and_none_for_a_deleted_framework() -> None:
    collected = metrics.OperatorMetrics()
    registry = CollectorRegistry()
    registry.register(collected)
    collected.compliance["soc2"] = (60, {"acme": (100, 0), "globex": (42, 1), "empty": (None, 0)})
    text = generate_latest(registry).decode()
    assert 'privatevault_compliance_score{framework="soc2",tenant="globex"} 42.0' in text
    assert 'privatevault_compliance_failing_controls{framework="soc2",tenant="globex"} 1.0' in text
    assert 'privatevault_compliance_framework_score{framework="soc2"} 60.0' in text
    assert (
        'tenant="empty"} 0.0' in text and 'privatevault_compliance_score{framework="soc2",tenant="empty"}' not in text
    )
    collected.compliance.pop("soc2")
    assert 'framework="soc2"' not in generate_latest(registry).decode()
