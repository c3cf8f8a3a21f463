"""What GitOps tools read from PrivateVault's status, computed on live objects by the library Flux
uses (cli-utils kstatus, through tools/kstatus): a Ready Tenant is Current; an action held for
quorum (Reconciling=True, AwaitingQuorum) is InProgress, so Flux waits; a refused one
(Stalled=True) is Failed; a generation not yet observed, a new object's first among them, is InProgress."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import builders
from tests.kstatus import kstatus, results
from tests.support import Kubectl, Operator, wait_for_condition

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]

NOW = "2026-11-30T12:00:00Z"


@pytest.fixture
def operator(kubectl: Kubectl, operator_dsn_file: Path, tmp_path: Path) -> Iterator[Operator]:
    running = Operator(tmp_path, kubectl.kubeconfig, operator_dsn_file).start()
    yield running
    running.stop()


def test_a_ready_tenant_is_current(kubectl: Kubectl, operator: Operator) -> None:
    kubectl.apply(builders.tenant("e2e-kstatus-ready"))
    ready = wait_for_condition(kubectl, "tenant", "e2e-kstatus-ready", "Ready", current=True)
    assert kstatus(ready) == ("Current", "Resource is Ready")
    listed = json.loads(kubectl.run("get", "tenants", "-o", "json").stdout)
    assert results(listed)["Tenant/e2e-kstatus-ready"] == ("Current", "Resource is Ready")
    kubectl.run("delete", "tenant", "e2e-kstatus-ready")


def condition(type_: str, status: str, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": NOW,
        "observedGeneration": generation,
    }


def with_status(kubectl: Kubectl, name: str, *conditions: dict[str, Any], observed: int = 1) -> dict[str, Any]:
    """The live Tenant after its status was written as a controller would (no operator runs here)."""
    status = {"observedGeneration": observed, "conditions": list(conditions)}
    kubectl.run("patch", "tenant", name, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}))
    obj = kubectl.get("tenant", name)
    assert obj is not None
    return obj


HELD = (
    condition("Ready", "False", "AwaitingQuorum", "deletion held", 1),
    condition("Reconciling", "True", "AwaitingQuorum", "1/2 approvals; missing role platform", 1),
)
REFUSED = (
    condition("Ready", "False", "QuorumRefused", "refused", 1),
    condition("Stalled", "True", "QuorumRefused", "no approver holds role platform", 1),
)


def test_a_new_tenant_is_in_progress_before_any_controller_wrote_its_status(kubectl: Kubectl) -> None:
    # No operator runs here: the API server itself defaults the status of a new object
    # (observedGeneration 0), so Flux waits for a Tenant the operator has not seen yet.
    kubectl.apply(builders.tenant("e2e-kstatus-new"))
    fresh = kubectl.get("tenant", "e2e-kstatus-new")
    assert fresh is not None
    assert fresh["status"] == {"observedGeneration": 0}
    assert kstatus(fresh)[0] == "InProgress"
    kubectl.run("delete", "tenant", "e2e-kstatus-new")


def test_held_for_quorum_is_in_progress_and_refused_is_failed(kubectl: Kubectl) -> None:
    kubectl.apply(builders.tenant("e2e-kstatus-held"))
    for conditions, expected in (
        (HELD, ("InProgress", "1/2 approvals; missing role platform")),
        (REFUSED, ("Failed", "no approver holds role platform")),
    ):
        assert kstatus(with_status(kubectl, "e2e-kstatus-held", *conditions)) == expected

    kubectl.run("patch", "tenant", "e2e-kstatus-held", "--type=merge", "-p", '{"spec":{"locale":"de-DE"}}')
    ready_but_old = with_status(kubectl, "e2e-kstatus-held", condition("Ready", "True", "Reconciled", "done", 1))
    assert ready_but_old["metadata"]["generation"] == 2
    assert kstatus(ready_but_old)[0] == "InProgress"
    kubectl.run("delete", "tenant", "e2e-kstatus-held")
