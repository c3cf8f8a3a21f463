"""Quorum end to end on the real control plane, with the operator as a real process and the
ledger in the real PostgreSQL: a Tenant deletion (CryptoShred) held until two approvals from two
roles in two regions exist, approvals that must not count (expired, replayed for another uid, a
key removed from the policy, one role twice) not counting, every route around the gate held
(the Tenant's quorumPolicyRef removed, a weaker QuorumPolicy, a weaker ProtectionPolicy), and the
ledger holding the decision with the envelopes verbatim before the key is shredded."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from privatevault.ledger.schema import Database
from privatevault.ledger.store import Ledger
from privatevault.quorum import dsse
from tests import builders
from tests.kstatus import kstatus
from tests.quorum_keys import ApproverKeys, approver, signed_approval
from tests.support import Kubectl, Operator, condition, eventually, wait_for_condition

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]


@dataclass(frozen=True)
class Keys:
    name: str
    keys: ApproverKeys

    def approver(self, roles: list[str], region: str) -> dict[str, Any]:
        return approver(self.name, self.keys, roles=roles, region=region)

    def public(self) -> dict[dsse.Algorithm, bytes]:
        return {alg: pair[1] for alg, pair in self.keys.signing().items()}


def sign(keys: Keys, pending: dict[str, Any], *, not_after: datetime, uid: str | None = None) -> dict[str, Any]:
    """An Approval of ``pending`` (one status.pending entry) signed with both of ``keys``; ``uid``
    replays it for another object."""
    entry = {**pending, "target": {**pending["target"], "uid": uid}} if uid else pending
    name = f"{pending['target']['name']}-{keys.name}-{uuid.uuid4().hex[:6]}"
    return signed_approval(name, entry, keys.name, keys.keys, not_after=not_after)


@pytest.fixture
def operator(kubectl: Kubectl, operator_dsn_file: Path, tmp_path: Path) -> Iterator[Operator]:
    running = Operator(tmp_path, kubectl.kubeconfig, operator_dsn_file).start()
    yield running
    running.stop()


@pytest.fixture
def people() -> dict[str, Keys]:
    return {name: Keys(name, ApproverKeys.generate()) for name in ("alice", "bob", "carol")}


def policy(name: str, people: dict[str, Keys], **rule: Any) -> dict[str, Any]:
    """2-of-3, roles security AND platform, 2 distinct regions, for deletion and crypto-shred."""
    options: dict[str, Any] = {
        "min_approvals": 2,
        "required_roles": ["security", "platform"],
        "min_distinct_regions": 2,
    }
    options |= rule
    return builders.quorum_policy(
        name,
        approvers=[
            people["alice"].approver(["security"], "eu-west-1"),
            people["bob"].approver(["platform"], "us-east-1"),
            people["carol"].approver(["security"], "eu-west-1"),
        ],
        rules=[builders.rule("DeleteTenant", **options), builders.rule("CryptoShred", **options)],
    )


def pending_of(kubectl: Kubectl, kind: str, name: str, action: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        obj = kubectl.get(kind, name)
        for entry in ((obj or {}).get("status") or {}).get("pending") or []:
            if entry["action"] == action:
                return dict(entry)
        return None

    result: dict[str, Any] = eventually(found, timeout=60, what=f"{kind} {name} pending {action}")
    return result


def waiting(kubectl: Kubectl, kind: str, name: str, text: str) -> dict[str, Any]:
    """The object is Reconciling=True, reason AwaitingQuorum, with ``text`` in the message."""

    def check() -> dict[str, Any] | None:
        found = condition(kubectl.get(kind, name), "Reconciling")
        if found and found["status"] == "True" and found["reason"] == "AwaitingQuorum" and text in found["message"]:
            return found
        return None

    result: dict[str, Any] = eventually(
        check, timeout=60, what=lambda: f"{kind} {name} awaiting quorum with {text!r}: {kubectl.get(kind, name)}"
    )
    return result


def ledger_records(database: Database, prefix: str) -> list[dict[str, Any]]:
    ledger = Ledger(database.operator_dsn)
    try:
        return [json.loads(r.canonical) for r in ledger.find(prefix)]
    finally:
        ledger.close()


def test_deletion_waits_for_two_roles_in_two_regions(
    kubectl: Kubectl, operator: Operator, database: Database, people: dict[str, Keys]
) -> None:
    suffix = uuid.uuid4().hex[:6]
    qp, name, other = f"two-person-{suffix}", f"acme-{suffix}", f"globex-{suffix}"
    # Self-approval allowed here: with no admission webhook the requester is unknown, which would
    # otherwise ask for one approval more (shown in its own test).
    kubectl.apply(policy(qp, people, allow_self_approval=True))
    status = wait_for_condition(kubectl, "quorumpolicy", qp, "Ready", current=True)["status"]
    assert status["rules"][0]["needs"].startswith("2 of 3; roles security AND platform; 2 distinct regions")
    for tenant in (name, other):
        kubectl.apply(builders.tenant(tenant, quorum_policy_ref=qp, deletion_policy="CryptoShred"))
    for tenant in (name, other):
        wait_for_condition(kubectl, "tenant", tenant, "Ready", current=True)
    uid = kubectl.get("tenant", name)["metadata"]["uid"]  # type: ignore[index]

    kubectl.run("delete", "tenant", name, "--wait=false")
    pending = pending_of(kubectl, "tenant", name, "DeleteTenant")
    assert pending["approvals"] == "0/2" and pending["policy"] == qp
    assert pending["signWith"] == f"pvctl approvals create Tenant/{name} --action DeleteTenant"
    waiting(kubectl, "tenant", name, "0/2 approvals")

    later = datetime.now(UTC) + timedelta(hours=1)
    # One approval holds; a second from the same role (and region) still misses platform.
    kubectl.apply(sign(people["alice"], pending, not_after=later))
    waiting(kubectl, "tenant", name, "1/2 approvals; missing role platform")
    kubectl.apply(sign(people["carol"], pending, not_after=later))
    waiting(kubectl, "tenant", name, "missing role platform")
    # bob's approval for another tenant's uid, and an expired one: neither counts.
    other_uid = kubectl.get("tenant", other)["metadata"]["uid"]  # type: ignore[index]
    replayed = sign(people["bob"], pending, not_after=later, uid=other_uid)
    kubectl.apply(replayed)
    expired = sign(people["bob"], pending, not_after=datetime.now(UTC) - timedelta(minutes=1))
    kubectl.apply(expired)
    verdict = wait_for_condition(kubectl, "approval", expired["metadata"]["name"], "Stalled")
    assert verdict["status"]["verdict"] == "Expired"
    assert kstatus(verdict)[0] == "Failed"  # what Flux reads: an expired approval will never count
    waiting(kubectl, "tenant", name, "missing role platform")
    assert kubectl.get("tenant", name) is not None

    # The right second approver: the deletion goes through, the key is shredded after the decision.
    kubectl.apply(sign(people["bob"], pending, not_after=later))
    eventually(lambda: kubectl.get("tenant", name) is None, timeout=90, what=f"tenant {name} deleted")
    decision = ledger_records(database, f"tenant/{uid}/quorum-decision/")
    assert len(decision) == 1
    details = decision[0]["details"]
    assert details["decision"] == "Approved" and details["action"] == "DeleteTenant"
    # Every approval that counted, verbatim; bob's expired and replayed ones are not among them.
    counted = [(a["approver"], a["envelope"]) for a in details["approvals"]]
    assert sorted(who for who, _ in counted) == ["alice", "bob", "carol"]
    for who, envelope in counted:
        assert dsse.verify(dsse.parse(envelope), people[who].public()) == {
            "Ed25519",
            "ML-DSA-65",
        }
    trail = [r["action"] for r in ledger_records(database, f"tenant/{uid}/")]
    assert trail.index("quorum-decision") < trail.index("crypto-shred-kek")
    kubectl.run("delete", "tenant", other, "--wait=false")


def test_unknown_requester_needs_one_more_and_routes_around_are_held(
    kubectl: Kubectl, operator: Operator, people: dict[str, Keys]
) -> None:
    suffix = uuid.uuid4().hex[:6]
    qp, name = f"strict-{suffix}", f"initech-{suffix}"
    kubectl.apply(policy(qp, people))
    wait_for_condition(kubectl, "quorumpolicy", qp, "Ready", current=True)
    kubectl.apply(builders.tenant(name, quorum_policy_ref=qp))
    wait_for_condition(kubectl, "tenant", name, "Ready", current=True)

    # Removing the tenant's quorumPolicyRef is itself gated, under the policy in force before.
    kubectl.run("patch", "tenant", name, "--type=json", "-p", '[{"op":"remove","path":"/spec/quorumPolicyRef"}]')
    moved = pending_of(kubectl, "tenant", name, "ChangeQuorumGate")
    assert moved["policy"] == qp
    held = waiting(kubectl, "tenant", name, "requester unknown")
    assert held["reason"] == "AwaitingQuorum"
    assert kstatus(kubectl.get("tenant", name) or {})[0] == "InProgress"  # waiting is not failing: Flux waits

    # A weaker QuorumPolicy (one approval) waits too; the old rules keep deciding.
    weaker = policy(qp, people, min_approvals=1, required_roles=["security"], min_distinct_regions=1)
    kubectl.apply(weaker)
    weakening = pending_of(kubectl, "quorumpolicy", qp, "WeakenQuorumPolicy")
    assert weakening["approvals"].endswith("/3")  # 2 + 1: the requester is unknown
    qp_status = kubectl.get("quorumpolicy", qp)["status"]  # type: ignore[index]
    assert qp_status["inForceGeneration"] == 1
    assert kstatus(kubectl.get("quorumpolicy", qp) or {})[0] == "InProgress"

    # So the deletion is still held under the old policy with the old ref, needing 2 + 1.
    kubectl.run("delete", "tenant", name, "--wait=false")
    pending = pending_of(kubectl, "tenant", name, "DeleteTenant")
    assert pending["approvals"] == "0/3"
    later = datetime.now(UTC) + timedelta(hours=1)
    kubectl.apply(sign(people["alice"], pending, not_after=later))
    kubectl.apply(sign(people["bob"], pending, not_after=later))
    waiting(kubectl, "tenant", name, "2/3 approvals")
    kubectl.apply(sign(people["carol"], pending, not_after=later))
    eventually(lambda: kubectl.get("tenant", name) is None, timeout=90, what=f"tenant {name} deleted")


def test_removed_key_and_weakened_protection_policy(
    kubectl: Kubectl, operator: Operator, people: dict[str, Keys]
) -> None:
    suffix = uuid.uuid4().hex[:6]
    qp, pp = f"pp-gate-{suffix}", f"pq-{suffix}"
    gate = policy(qp, people, allow_self_approval=True)
    gate["spec"]["rules"].append(builders.rule("WeakenProtectionPolicy", min_approvals=2, allow_self_approval=True))
    kubectl.apply(gate)
    wait_for_condition(kubectl, "quorumpolicy", qp, "Ready", current=True)
    kubectl.apply(builders.protection_policy(pp, profile="cnsa-2.0", spec={"quorumPolicyRef": qp}))
    wait_for_condition(kubectl, "protectionpolicy", pp, "Ready", current=True)

    kubectl.run("patch", "protectionpolicy", pp, "--type=merge", "-p", '{"spec":{"profile":"classical-legacy"}}')
    pending = pending_of(kubectl, "protectionpolicy", pp, "WeakenProtectionPolicy")
    waiting(kubectl, "protectionpolicy", pp, "0/2 approvals")
    held = kubectl.get("protectionpolicy", pp)["status"]  # type: ignore[index]
    assert held["inForceGeneration"] == 1 and held["quantumSafe"] is True  # the approved spec stays in force

    # carol's key is replaced in the policy (a weakening itself, so it waits: her old key stays in
    # force); an approval signed with a key that is not the policy's verifies nothing.
    stranger = Keys("carol", ApproverKeys.generate())
    forged = sign(stranger, pending, not_after=datetime.now(UTC) + timedelta(hours=1))
    kubectl.apply(forged)
    verdict = wait_for_condition(kubectl, "approval", forged["metadata"]["name"], "Stalled")
    assert verdict["status"]["verdict"] == "Invalid" and "no signature verifies" in verdict["status"]["reason"]

    later = datetime.now(UTC) + timedelta(hours=1)
    kubectl.apply(sign(people["alice"], pending, not_after=later))
    kubectl.apply(sign(people["bob"], pending, not_after=later))

    def approved() -> dict[str, Any] | None:
        status = (kubectl.get("protectionpolicy", pp) or {}).get("status") or {}
        return status if status.get("quantumSafe") is False and not status.get("pending") else None

    eventually(approved, timeout=60, what=f"the weakening of {pp} in force once approved")


def test_a_stripped_finalizer_is_recorded_and_raised(
    kubectl: Kubectl, operator: Operator, database: Database, people: dict[str, Keys]
) -> None:
    suffix = uuid.uuid4().hex[:6]
    qp, name = f"bypassed-{suffix}", f"umbrella-{suffix}"
    kubectl.apply(policy(qp, people))
    wait_for_condition(kubectl, "quorumpolicy", qp, "Ready", current=True)
    kubectl.apply(builders.tenant(name, quorum_policy_ref=qp))
    wait_for_condition(kubectl, "tenant", name, "Ready", current=True)
    uid = kubectl.get("tenant", name)["metadata"]["uid"]  # type: ignore[index]
    kubectl.run("delete", "tenant", name, "--wait=false")
    pending_of(kubectl, "tenant", name, "DeleteTenant")

    # A cluster admin can always strip the finalizer: the tenant goes, and that is not hidden.
    kubectl.run("patch", "tenant", name, "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    eventually(lambda: kubectl.get("tenant", name) is None, timeout=30, what=f"tenant {name} gone")
    recorded = eventually(
        lambda: ledger_records(database, f"quorumpolicy/{qp}/bypassed-quorum/{uid}"),
        timeout=30,
        what="the bypass in the ledger",
    )
    assert recorded[0]["resource"] == {"kind": "Tenant", "name": name, "uid": uid}
    assert not ledger_records(database, f"tenant/{uid}/delete-tenant/")  # nothing was torn down by the operator
    bypass = condition(wait_for_condition(kubectl, "quorumpolicy", qp, "QuorumBypassed"), "QuorumBypassed")
    assert bypass is not None and "without a decision" in bypass["message"]
    events = kubectl.run(
        "get", "events", "-A", "--field-selector", f"reason=BypassedQuorum,involvedObject.name={qp}", "-o", "json"
    )
    assert json.loads(events.stdout)["items"], "a Warning Event on the QuorumPolicy"
    assert "disappeared without a quorum decision" in operator.log()


def test_destroying_a_key_out_of_schedule_waits_for_quorum(
    kubectl: Kubectl, operator: Operator, database: Database, people: dict[str, Keys]
) -> None:
    suffix = uuid.uuid4().hex[:6]
    qp, name = f"keys-{suffix}", f"hooli-{suffix}"
    gate = policy(qp, people, allow_self_approval=True)
    gate["spec"]["rules"].append(
        builders.rule("DestroyKey", min_approvals=2, required_roles=["security", "platform"], allow_self_approval=True)
    )
    kubectl.apply(gate)
    wait_for_condition(kubectl, "quorumpolicy", qp, "Ready", current=True)
    kubectl.apply(builders.tenant(name, quorum_policy_ref=qp))
    wait_for_condition(kubectl, "tenant", name, "Ready", current=True)
    uid = kubectl.get("tenant", name)["metadata"]["uid"]  # type: ignore[index]

    kubectl.run("annotate", "tenant", name, "privatevault.io/destroy-kek=incident-42")
    pending = pending_of(kubectl, "tenant", name, "DestroyKey")
    waiting(kubectl, "tenant", name, "0/2 approvals")
    assert not ledger_records(database, f"tenant/{uid}/destroy-kek-on-request/")
    later = datetime.now(UTC) + timedelta(hours=1)
    kubectl.apply(sign(people["alice"], pending, not_after=later))
    waiting(kubectl, "tenant", name, "1/2 approvals; missing role platform")
    kubectl.apply(sign(people["bob"], pending, not_after=later))
    destroyed = eventually(
        lambda: ledger_records(database, f"tenant/{uid}/destroy-kek-on-request/incident-42"),
        timeout=60,
        what="the key destroyed once approved",
    )
    assert destroyed[0]["details"]["gate"] == "Approved"
    decision = ledger_records(database, f"tenant/{uid}/quorum-decision/DestroyKey")
    assert decision and decision[0]["seq"] < destroyed[0]["seq"]
    wait_for_condition(kubectl, "tenant", name, "Ready", current=True)  # answered once; a fresh key is made
    kubectl.run("delete", "tenant", name, "--wait=false")
