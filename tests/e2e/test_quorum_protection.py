"""The routes around a ProtectionPolicy's weakening gate, end to end on the real control plane with
the operator as a real process: a selector narrowed on a gated policy waits and the workload keeps
its protection; a Tenant moved to a weaker policy waits (``ChangeQuorumGate``, n/m approvals,
under the QuorumPolicy gating the policy it leaves) while the strong policy keeps protecting its
workloads, and the approvals put the move in force; a gated policy deleted and made again looser
under its name waits the same way."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests import builders
from tests.e2e.test_quorum import Keys, pending_of, people, policy, sign, waiting
from tests.support import Kubectl, Operator, condition, eventually, wait_for_condition

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]

__all__ = ["people"]  # the approvers' keys, a fixture shared with test_quorum

POLICY_ANNOTATION = "privatevault.io/protection-policy"


@pytest.fixture
def operator(kubectl: Kubectl, operator_dsn_file: Path, tmp_path: Path) -> Iterator[Operator]:
    running = Operator(tmp_path, kubectl.kubeconfig, operator_dsn_file, PRIVATEVAULT_PROTECTION_INTERVAL="2").start()
    yield running
    running.stop()


def protected_by(kubectl: Kubectl, namespace: str, name: str) -> str | None:
    obj = kubectl.get("deployment", name, namespace) or {}
    annotations = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
    return annotations.get(POLICY_ANNOTATION)


def still_protected_by(kubectl: Kubectl, namespace: str, name: str, policy_name: str, seconds: float = 8) -> None:
    """Several resyncs of every policy (2 s) go by and the workload stays protected by ``policy_name``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert protected_by(kubectl, namespace, name) == policy_name
        time.sleep(1)


def gated_strong_policy(
    kubectl: Kubectl, qp: str, strong: str, selector: dict[str, str], people: dict[str, Keys]
) -> None:
    """The QuorumPolicy ``qp`` (2 approvals for a weakening) and the CNSA 2.0 policy ``strong`` it gates."""
    gate = policy(qp, people)
    gate["spec"]["rules"].append(builders.rule("WeakenProtectionPolicy", min_approvals=2, allow_self_approval=True))
    kubectl.apply(gate)
    wait_for_condition(kubectl, "quorumpolicy", qp, "Ready", current=True)
    kubectl.apply(
        builders.protection_policy(strong, profile="cnsa-2.0", workload_selector=selector, spec={"quorumPolicyRef": qp})
    )


def test_a_narrowed_selector_and_a_move_to_a_weaker_policy_wait_for_quorum(
    kubectl: Kubectl, operator: Operator, people: dict[str, Keys]
) -> None:
    suffix = uuid.uuid4().hex[:6]
    qp, strong, weak, tenant = f"pp-route-{suffix}", f"strong-{suffix}", f"weak-{suffix}", f"route-{suffix}"
    selector = {"protect": "yes"}
    gated_strong_policy(kubectl, qp, strong, selector, people)
    # The classical policy sits under the same gate: the move weakens the protection, it does not
    # also take the workloads out from under the gate (which every rule of the policy would decide).
    kubectl.apply(
        builders.protection_policy(
            weak, profile="classical-legacy", workload_selector=selector, spec={"quorumPolicyRef": qp}
        )
    )
    wait_for_condition(kubectl, "protectionpolicy", strong, "Ready", current=True)
    kubectl.apply(builders.tenant(tenant, protection_policy_ref=strong))
    wait_for_condition(kubectl, "tenant", tenant, "Ready", current=True, timeout=90)
    kubectl.apply(builders.deployment("payments", tenant, labels={"app": "payments", "protect": "yes"}))
    eventually(lambda: protected_by(kubectl, tenant, "payments") == strong, timeout=60, what="payments protected")

    # (b) A selector the workload no longer matches is a weakening: held, the workload stays protected.
    kubectl.run(
        "patch", "protectionpolicy", strong, "--type=merge", "-p", '{"spec":{"workloadSelector":{"tier":"gold"}}}'
    )
    narrowed = pending_of(kubectl, "protectionpolicy", strong, "WeakenProtectionPolicy")
    assert narrowed["approvals"] == "0/2"
    held = waiting(kubectl, "protectionpolicy", strong, "0/2 approvals")
    assert held["reason"] == "AwaitingQuorum"
    assert (kubectl.get("protectionpolicy", strong) or {})["status"]["inForceGeneration"] == 1
    still_protected_by(kubectl, tenant, "payments", strong)

    # (a) Moving the tenant to the classical policy routes around that gate: held the same way,
    # under the strong policy's QuorumPolicy, and the strong policy keeps protecting the workload.
    kubectl.run("patch", "tenant", tenant, "--type=merge", "-p", f'{{"spec":{{"protectionPolicyRef":"{weak}"}}}}')
    moved = pending_of(kubectl, "tenant", tenant, "ChangeQuorumGate")
    assert (moved["policy"], moved["approvals"]) == (qp, "0/2")
    waiting(kubectl, "tenant", tenant, "0/2 approvals")
    still_protected_by(kubectl, tenant, "payments", strong)

    later = datetime.now(UTC) + timedelta(hours=1)
    kubectl.apply(sign(people["alice"], moved, not_after=later))
    waiting(kubectl, "tenant", tenant, "1/2 approvals")
    still_protected_by(kubectl, tenant, "payments", strong, seconds=4)
    kubectl.apply(sign(people["bob"], moved, not_after=later))

    def released() -> dict[str, Any] | None:
        status = (kubectl.get("tenant", tenant) or {}).get("status") or {}
        return status if not status.get("pending") else None

    eventually(released, timeout=60, what=f"the move of {tenant} in force once approved")
    eventually(lambda: protected_by(kubectl, tenant, "payments") == weak, timeout=60, what="payments moved to weak")
    kubectl.run("delete", "tenant", tenant, "--wait=false")


def selinux_type(kubectl: Kubectl, namespace: str, name: str) -> str | None:
    obj = kubectl.get("deployment", name, namespace) or {}
    context = obj.get("spec", {}).get("template", {}).get("spec", {}).get("securityContext") or {}
    found: str | None = (context.get("seLinuxOptions") or {}).get("type")
    return found


def test_a_gated_policy_is_deleted_only_with_quorum_and_made_again_looser_it_waits_too(
    kubectl: Kubectl, operator: Operator, people: dict[str, Keys]
) -> None:
    """Deleting a gated policy waits for its quorum (the finalizer holds it, the workload stays
    protected); with the finalizer stripped by hand, a looser, ungated policy applied under the
    same name (a new uid) is judged against the spec in force of the one deleted: held under its
    QuorumPolicy, the workload keeping the old SELinux type until approved. An ungated policy goes
    at once."""
    suffix = uuid.uuid4().hex[:6]
    qp, strong, tenant = f"pp-again-{suffix}", f"strong-{suffix}", f"again-{suffix}"
    selector = {"protect": "yes"}
    gated_strong_policy(kubectl, qp, strong, selector, people)
    wait_for_condition(kubectl, "protectionpolicy", strong, "Ready", current=True)
    kubectl.apply(builders.tenant(tenant, protection_policy_ref=strong))
    wait_for_condition(kubectl, "tenant", tenant, "Ready", current=True, timeout=90)
    kubectl.apply(builders.deployment("payments", tenant, labels={"app": "payments", "protect": "yes"}))
    eventually(lambda: selinux_type(kubectl, tenant, "payments") == "container_t", timeout=60, what="protected")

    def still_container_t() -> None:
        deadline = time.monotonic() + 8  # several resyncs (2 s): the type in force stays the gated policy's
        while time.monotonic() < deadline:
            assert selinux_type(kubectl, tenant, "payments") == "container_t"
            time.sleep(1)

    first_uid = (kubectl.get("protectionpolicy", strong) or {})["metadata"]["uid"]
    kubectl.run("delete", "protectionpolicy", strong, "--wait=false")
    deleting = pending_of(kubectl, "protectionpolicy", strong, "WeakenProtectionPolicy")
    assert (deleting["policy"], deleting["target"]["uid"]) == (qp, first_uid)
    waiting(kubectl, "protectionpolicy", strong, "approvals")
    assert (kubectl.get("protectionpolicy", strong) or {})["metadata"].get("deletionTimestamp")
    still_container_t()

    # A cluster admin strips the finalizer: gone undecided, and a looser policy under its name waits.
    kubectl.run("patch", "protectionpolicy", strong, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    eventually(lambda: kubectl.get("protectionpolicy", strong) is None, timeout=30, what="the policy gone")
    bypass = condition(wait_for_condition(kubectl, "quorumpolicy", qp, "QuorumBypassed"), "QuorumBypassed")
    assert bypass is not None and bypass["reason"] == "BypassedQuorum"
    looser = builders.protection_policy(
        strong, profile="cnsa-2.0", workload_selector=selector, selinux_type="container_init_t"
    )
    kubectl.apply(looser)
    again = pending_of(kubectl, "protectionpolicy", strong, "WeakenProtectionPolicy")
    assert again["policy"] == qp and again["target"]["uid"] != first_uid
    waiting(kubectl, "protectionpolicy", strong, "approvals")
    still_container_t()

    later = datetime.now(UTC) + timedelta(hours=1)
    for name in ("alice", "bob", "carol"):  # every rule of the gate left (it has no ChangeQuorumGate rule)
        kubectl.apply(sign(people[name], again, not_after=later))
    eventually(
        lambda: selinux_type(kubectl, tenant, "payments") == "container_init_t",
        timeout=60,
        what="the looser policy in force once approved",
    )
    # In force now without a gate: its deletion is not held.
    kubectl.run("delete", "protectionpolicy", strong, "--wait=false")
    eventually(lambda: kubectl.get("protectionpolicy", strong) is None, timeout=30, what="the ungated policy gone")
    kubectl.run("delete", "tenant", tenant, "--wait=false")
