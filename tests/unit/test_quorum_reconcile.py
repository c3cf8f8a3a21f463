"""The quorum gates in the reconcile, on fakes: what is in force is read from the ledger (never the
spec or status), weaker QuorumPolicies and moved Tenant gates are held under the rules in force
before, a deletion is decided under the gate in force with the requester the webhook recorded,
approvals are kept verbatim, and a Tenant that vanished undecided is recorded as a bypass."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from privatevault.api.v1alpha1 import Approval, QuorumPolicy, Tenant
from privatevault.errors import GateClosed, SpecError
from privatevault.ledger import ResourceRef
from privatevault.quorum import changes
from privatevault.reconcile import approval as approval_reconcile
from privatevault.reconcile import quorum, quorumpolicy, tenant_gate
from privatevault.reconcile.audit import event
from privatevault.reconcile.ports import TenantPorts
from tests import builders
from tests.quorum_keys import ApproverKeys, approver, signed_approval
from tests.unit.fakes import FakeCluster, FakeKeys, FakeLedger, FakeLevels

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
KEYS = {name: ApproverKeys.generate() for name in ("alice", "bob", "carol")}
ROLES = {"alice": ("security", "eu-west-1"), "bob": ("platform", "us-east-1"), "carol": ("security", "eu-west-1")}


def policy_body(generation: int = 1, **rule: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"min_approvals": 2, "required_roles": ["security", "platform"]}
    options |= rule
    body = builders.quorum_policy(
        "two-person",
        approvers=[
            approver(name, KEYS[name], roles=[role], region=region, users=[f"{name}@corp"])
            for name, (role, region) in ROLES.items()
        ],
        rules=[builders.rule("DeleteTenant", **options), builders.rule("CryptoShred", **options)],
        uid="qp-uid",
        generation=generation,
    )
    return dict(body)


class World:
    def __init__(self) -> None:
        self.cluster, self.ledger = FakeCluster(), FakeLedger()
        self.ports = TenantPorts(cluster=self.cluster, ledger=self.ledger, levels=FakeLevels(), keys=FakeKeys())

    def policy(self, body: dict[str, Any]) -> Any:
        return quorumpolicy.reconcile(
            QuorumPolicy.model_validate(body), body, cluster=self.cluster, ledger=self.ledger, actor="test", now=NOW
        )

    def approve(self, pending: Any, *names: str, **options: Any) -> None:
        for name in names:
            manifest = signed_approval(
                None, pending.model_dump(mode="json", by_alias=True), name, KEYS[name], **options
            )
            manifest["metadata"]["creationTimestamp"] = (NOW - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.cluster.put(manifest)

    def actions(self, prefix: str = "") -> list[str]:
        return [json.loads(r.canonical)["action"] for r in self.ledger.records if r.idempotency_key.startswith(prefix)]


def tenant(generation: int = 1, **spec: Any) -> tuple[Tenant, dict[str, Any]]:
    body = dict(builders.tenant("acme", uid="uid-acme", generation=generation, quorum_policy_ref="two-person", **spec))
    return Tenant.model_validate(body), body


def test_a_quorum_policy_is_in_force_when_first_seen_and_a_weaker_one_waits() -> None:
    world = World()
    done = world.policy(policy_body())
    assert done.held is None and done.facts["in_force_generation"] == 1
    assert done.facts["rules"][0].needs.startswith("2 of 3; roles security AND platform")

    weaker = policy_body(generation=2, min_approvals=1, required_roles=["security"])
    held = world.policy(weaker)
    assert isinstance(held.held, GateClosed) and held.facts["in_force_generation"] == 1
    (pending,) = held.facts["pending"]
    assert (pending.action, pending.approvals) == ("WeakenQuorumPolicy", "0/3")  # requester unknown: one more
    assert quorum.policy(world.ledger, "two-person").in_force.generation == 1  # type: ignore[union-attr]

    world.approve(pending, "alice", "bob", "carol")
    approved = world.policy(weaker)
    assert approved.held is None and approved.facts["in_force_generation"] == 2
    decision = world.actions("quorumpolicy/qp-uid/quorum-decision/")
    assert decision == ["quorum-decision"]


def test_a_stricter_quorum_policy_is_in_force_at_once() -> None:
    world = World()
    world.policy(policy_body())
    done = world.policy(policy_body(generation=2, min_approvals=3))
    assert done.held is None
    assert quorum.policy(world.ledger, "two-person").in_force.generation == 2  # type: ignore[union-attr]


def test_a_rule_no_approver_set_can_meet_is_stalled_naming_it() -> None:
    body = policy_body(min_distinct_regions=3)
    with pytest.raises(SpecError, match="rule DeleteTenant can never be met"):
        World().policy(body)


def test_moving_the_tenant_gate_is_held_under_the_policy_in_force_and_deletion_follows_the_old_gate() -> None:
    world = World()
    world.policy(policy_body())
    acme, body = tenant()
    assert tenant_gate.change(acme, body, ports=world.ports, actor="test", now=NOW) == []  # first seen

    moved, moved_body = tenant(generation=2)
    moved_body["spec"].pop("quorumPolicyRef")
    moved = Tenant.model_validate(moved_body)
    (gate,) = tenant_gate.change(moved, moved_body, ports=world.ports, actor="test", now=NOW)
    assert gate.held.change.action == "ChangeQuorumGate" and not gate.approved
    assert tenant_gate.in_force(world.ports, moved) == {
        "quorumPolicyRef": "two-person",
        "deletionPolicy": "Retain",
        "protectionPolicyRef": None,
    }

    deletion = tenant_gate.deletion(moved, moved_body, ports=world.ports, actor="test", now=NOW)
    assert deletion.gate is not None and deletion.gate.held.change.action == "DeleteTenant"
    assert not deletion.gate.approved


def test_switching_back_to_retain_is_in_force_at_once_but_to_cryptoshred_is_held() -> None:
    world = World()
    world.policy(policy_body())
    shred, shred_body = tenant(deletion_policy="CryptoShred")
    tenant_gate.change(shred, shred_body, ports=world.ports, actor="test", now=NOW)
    retain, retain_body = tenant(generation=2, deletion_policy="Retain")
    assert tenant_gate.change(retain, retain_body, ports=world.ports, actor="test", now=NOW) == []
    again, again_body = tenant(generation=3, deletion_policy="CryptoShred")
    (gate,) = tenant_gate.change(again, again_body, ports=world.ports, actor="test", now=NOW)
    assert {o.action for o in gate.held.decision.outcomes} == {"DeleteTenant", "CryptoShred"}


def test_a_deletion_under_a_policy_never_in_force_is_refused() -> None:
    world = World()
    acme, body = tenant()
    with pytest.raises(SpecError, match="never been in force"):
        tenant_gate.deletion(acme, body, ports=world.ports, actor="test", now=NOW)


def requested_by(world: World, body: dict[str, Any], user: str) -> None:
    """What the admission webhook records when ``user`` deletes the tenant."""
    world.ledger.append(
        event(
            kind="tenant",
            uid="uid-acme",
            tenant="acme",
            actor="admission-webhook",
            action=quorum.REQUEST,
            resource=ResourceRef(kind="Tenant", name="acme", uid="uid-acme"),
            change=f"{changes.deletion(body).digest}/request-{user}",
            details={"user": user},
        )
    )


def test_the_requesters_own_approval_never_counts() -> None:
    world = World()
    world.policy(policy_body())
    acme, body = tenant()
    requested_by(world, body, "alice@corp")
    first = tenant_gate.deletion(acme, body, ports=world.ports, actor="test", now=NOW).gate
    assert first is not None and first.requester.name == "alice@corp"
    assert first.held.pending.approvals == "0/2"  # the requester is known: no approval more
    world.approve(first.held.pending, "alice", "bob")
    held = tenant_gate.deletion(acme, body, ports=world.ports, actor="test", now=NOW).gate
    assert held is not None and not held.approved and held.held.decision.message.startswith("1/2 approvals")
    world.approve(first.held.pending, "carol")
    approved = tenant_gate.deletion(acme, body, ports=world.ports, actor="test", now=NOW).gate
    assert approved is not None and approved.approved and approved.held.decision.counted == ("bob", "carol")


def test_a_requester_holding_the_only_platform_role_can_never_be_approved() -> None:
    world = World()
    world.policy(policy_body())
    acme, body = tenant()
    requested_by(world, body, "bob@corp")
    gate = tenant_gate.deletion(acme, body, ports=world.ports, actor="test", now=NOW).gate
    assert gate is not None and gate.held.decision.state == "Refused"
    assert isinstance(gate.error(), SpecError) and "can never be approved" in str(gate.error())


def test_an_approved_deletion_records_the_decision_with_every_counted_envelope() -> None:
    world = World()
    world.policy(policy_body())
    acme, body = tenant()
    pending = tenant_gate.deletion(acme, body, ports=world.ports, actor="test", now=NOW).gate.held.pending  # type: ignore[union-attr]
    world.approve(pending, "alice", "bob", "carol")  # the requester is unknown: 2 + 1
    deletion = tenant_gate.deletion(acme, body, ports=world.ports, actor="test", now=NOW)
    assert deletion.gate is not None and deletion.gate.approved
    (record,) = [r for r in world.ledger.records if "/quorum-decision/" in r.idempotency_key]
    details = json.loads(record.canonical)["details"]
    assert details["decision"] == "Approved" and details["requester"] is None
    assert sorted(a["approver"] for a in details["approvals"]) == ["alice", "bob", "carol"]
    assert all(a["envelope"]["payloadType"] == "application/vnd.in-toto+json" for a in details["approvals"])


def test_an_approval_seen_is_kept_verbatim_and_an_invalid_one_stalls() -> None:
    world = World()
    world.policy(policy_body())
    manifest = signed_approval("ok", builders.pending_action(policy="two-person"), "alice", KEYS["alice"])
    manifest["metadata"] |= {"uid": "ap-1", "creationTimestamp": "2026-06-01T11:00:00Z"}
    done = approval_reconcile.reconcile(Approval.model_validate(manifest), ledger=world.ledger, actor="t", now=NOW)
    assert done.held is None and done.facts["verdict"] == "Valid"
    (record,) = [json.loads(r.canonical) for r in world.ledger.records if r.idempotency_key.startswith("approval/")]
    assert record["details"]["envelope"] == manifest["spec"]["envelope"]

    forged = signed_approval("forged", builders.pending_action(policy="two-person"), "alice", ApproverKeys.generate())
    forged["metadata"] |= {"uid": "ap-2", "creationTimestamp": "2026-06-01T11:00:00Z"}
    refused = approval_reconcile.reconcile(Approval.model_validate(forged), ledger=world.ledger, actor="t", now=NOW)
    assert isinstance(refused.held, SpecError) and refused.facts["verdict"] == "Invalid"


def test_a_tenant_gone_without_a_decision_is_recorded_as_a_bypass_once() -> None:
    world = World()
    world.policy(policy_body())
    _, body = tenant()
    assert tenant_gate.bypassed(body, ledger=world.ledger, actor="test") == "two-person"
    assert tenant_gate.bypassed(body, ledger=world.ledger, actor="test") == "two-person"
    assert world.actions("quorumpolicy/two-person/bypassed-quorum/") == ["bypassed-quorum"]  # idempotent


def test_a_tenant_deleted_after_its_decision_is_no_bypass() -> None:
    world = World()
    world.policy(policy_body())
    _, body = tenant()
    world.ledger.append(
        event(
            kind="tenant",
            uid="uid-acme",
            tenant="acme",
            actor="test",
            action="delete-tenant",
            resource=ResourceRef(kind="Tenant", name="acme", uid="uid-acme"),
            change="delete",
        )
    )
    assert tenant_gate.bypassed(body, ledger=world.ledger, actor="test") is None
