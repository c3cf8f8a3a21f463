"""The routes around a ProtectionPolicy's weakening gate, on fakes: moving a Tenant's
protectionPolicyRef to a weaker policy, removing it, or pointing it at one that does not exist is
held (``ChangeQuorumGate`` under the QuorumPolicy gating the policy left) while the policy in force
keeps protecting; a move to a policy at least as strong is in force at once; nothing is gated
without a quorum policy in force."""

from __future__ import annotations

from typing import Any

import pytest

from privatevault.api.v1alpha1 import API_VERSION, ProtectionPolicy, Tenant
from privatevault.api.v1alpha1.protectionpolicy import ProtectionPolicySpec
from privatevault.ledger import ResourceRef
from privatevault.reconcile import protectionpolicy as protection
from privatevault.reconcile import protectionpolicy_gate, tenant_gate
from privatevault.reconcile.audit import event
from privatevault.reconcile.ports import ProtectionPolicyPorts
from tests import builders
from tests.unit.fakes import FakeKeys
from tests.unit.test_quorum_reconcile import NOW, World, policy_body

PROFILES = {
    "strong": "cnsa-2.0",
    "equal": "cnsa-2.0",
    "twin": "cnsa-2.0",
    "hybrid": "hybrid-default",
    "weak": "classical-legacy",
}
#: The policies gated by the QuorumPolicy two-person (none, when the world is not gated).
GATED = ("strong", "equal", "hybrid")
#: The rules of two-person, in order: a move out from under it is decided by all of them, as a
#: change of the left policy's own quorumPolicyRef would be (two-person has no ChangeQuorumGate rule).
ALL_RULES = ["DeleteTenant", "CryptoShred", "WeakenProtectionPolicy"]


def spec(**fields: Any) -> ProtectionPolicySpec:
    return ProtectionPolicySpec.model_validate(fields)


@pytest.mark.parametrize(
    ("target", "name", "held", "reason"),
    [
        (spec(profile="cnsa-2.0"), "equal", False, ""),
        (spec(profile="cnsa-2.0", rotationInterval="24h"), "stronger", False, ""),
        (spec(profile="hybrid-default"), "hybrid", True, "lowers the security level from 5 to 3"),
        (spec(profile="classical-legacy"), "weak", True, "leaves quantum safety"),
        (spec(profile="cnsa-2.0", workloadSelector={"protect": "yes", "tier": "db"}), "narrow", True, "deselect"),
        (spec(profile="cnsa-2.0", selinuxType="container_init_t"), "loose", True, "SELinux type"),
        (None, "missing", True, "ProtectionPolicy missing does not exist"),
        (None, None, True, "removes the tenant's protectionPolicyRef"),
    ],
    ids=repr,
)
def test_a_move_is_held_unless_the_target_protects_at_least_as_well(
    target: ProtectionPolicySpec | None, name: str | None, held: bool, reason: str
) -> None:
    left = spec(profile="cnsa-2.0", workloadSelector={"protect": "yes"})
    why = tenant_gate.moves_weaker(left, target, name)
    assert (why is not None) is held
    assert reason in (why or "")


@pytest.mark.parametrize(
    ("target", "name", "reason"),
    [
        (spec(quorumPolicyRef="two-person"), "same", None),
        (
            spec(quorumPolicyRef="lenient"),
            "other",
            "ProtectionPolicy other is gated by QuorumPolicy lenient, not two-person",
        ),
        (spec(), "ungated", "ProtectionPolicy ungated is gated by no QuorumPolicy, not two-person"),
        (None, None, "no ProtectionPolicy is gated by no QuorumPolicy, not two-person"),
    ],
    ids=repr,
)
def test_a_move_out_from_under_the_left_policys_gate_is_named(
    target: ProtectionPolicySpec | None, name: str | None, reason: str | None
) -> None:
    assert tenant_gate.leaves_gate(spec(quorumPolicyRef="two-person"), target, name) == reason
    assert tenant_gate.leaves_gate(spec(), target, name) is None  # an ungated policy left: no gate to leave


class Protected(World):
    """A QuorumPolicy gating weakenings, ProtectionPolicies of each strength (those of ``GATED`` gated by it)."""

    def __init__(self, *, gated: bool = True) -> None:
        super().__init__()
        body = policy_body()
        body["spec"]["rules"].append(builders.rule("WeakenProtectionPolicy", min_approvals=2))
        self.policy(body)
        for name, profile in PROFILES.items():
            extra = {"quorumPolicyRef": "two-person"} if gated and name in GATED else {}
            self.cluster.put(dict(builders.protection_policy(name, profile=profile, uid=f"pp-{name}", spec=extra)))

    def tenant(self, generation: int, ref: str | None) -> tuple[Tenant, dict[str, Any]]:
        body = dict(builders.tenant("acme", uid="uid-acme", generation=generation, protection_policy_ref=ref))
        return Tenant.model_validate(body), body

    def move(self, to: str | None) -> list[Any]:
        first, first_body = self.tenant(1, "strong")
        assert tenant_gate.change(first, first_body, ports=self.ports, actor="test", now=NOW) == []  # first seen
        moved, moved_body = self.tenant(2, to)
        return tenant_gate.change(moved, moved_body, ports=self.ports, actor="test", now=NOW)


WEAKER_AND_UNGATED = ["WeakenProtectionPolicy", "DeleteTenant", "CryptoShred"]


@pytest.mark.parametrize(
    ("to", "rules"),
    [
        ("equal", []),  # as strong, under the same gate: in force at once
        ("hybrid", ["WeakenProtectionPolicy"]),
        ("twin", ALL_RULES),  # as strong, but weakened in place under no gate afterwards
        ("weak", WEAKER_AND_UNGATED),
        ("missing", WEAKER_AND_UNGATED),
        (None, WEAKER_AND_UNGATED),
    ],
    ids=repr,
)
def test_the_tenant_leaving_a_gated_policy_waits_and_the_old_one_keeps_protecting(
    to: str | None, rules: list[str]
) -> None:
    world = Protected()
    gates = world.move(to)
    moved, _ = world.tenant(2, to)
    if not rules:
        assert gates == [] and tenant_gate.protection_ref(world.ledger, moved) == to
        return
    (gate,) = gates  # the tenant has no quorumPolicyRef: the strong policy's own gate decides
    assert (gate.held.change.action, gate.held.pending.policy) == ("ChangeQuorumGate", "two-person")
    assert [o.action for o in gate.held.decision.outcomes] == rules
    assert tenant_gate.protection_ref(world.ledger, moved) == "strong"

    world.approve(gate.held.pending, "alice", "bob", "carol")  # 2, plus 1: the requester is unknown
    _, body = world.tenant(2, to)
    assert tenant_gate.change(moved, body, ports=world.ports, actor="test", now=NOW) == []
    assert tenant_gate.protection_ref(world.ledger, moved) == to


def test_without_a_quorum_policy_in_force_a_move_is_not_gated() -> None:
    world = Protected(gated=False)
    assert world.move("weak") == []
    assert tenant_gate.protection_ref(world.ledger, world.tenant(2, "weak")[0]) == "weak"


def test_the_tenants_own_gate_decides_a_move_too() -> None:
    world = Protected(gated=False)
    _, first_body = world.tenant(1, "strong")
    first_body["spec"]["quorumPolicyRef"] = "two-person"
    tenant_gate.change(Tenant.model_validate(first_body), first_body, ports=world.ports, actor="test", now=NOW)
    moved, moved_body = world.tenant(2, "weak")
    moved_body["spec"]["quorumPolicyRef"] = "two-person"
    (gate,) = tenant_gate.change(
        Tenant.model_validate(moved_body), moved_body, ports=world.ports, actor="test", now=NOW
    )
    assert [o.action for o in gate.held.decision.outcomes] == ["WeakenProtectionPolicy"]
    assert tenant_gate.protection_ref(world.ledger, moved) == "strong"


def test_the_spec_in_force_of_the_policy_left_is_what_a_move_is_measured_against() -> None:
    world = Protected()
    ports = ProtectionPolicyPorts(cluster=world.cluster, ledger=world.ledger, keys=FakeKeys())
    gated = {"quorumPolicyRef": "two-person"}
    for generation, profile in ((1, "cnsa-2.0"), (2, "hybrid-default")):
        body = dict(
            builders.protection_policy("strong", profile=profile, uid="pp-strong", generation=generation, spec=gated)
        )
        world.cluster.put(body)
        force = protectionpolicy_gate.in_force(
            ProtectionPolicy.model_validate(body), body, ports=ports, actor="test", now=NOW
        )
    assert force.gate is not None and force.spec.profile == "cnsa-2.0"  # strong's edit down to hybrid waits
    (held,) = world.move("hybrid")  # so a move to hybrid weakens what is in force
    assert not held.approved


def test_the_protection_policy_controller_follows_the_ref_in_force() -> None:
    world = Protected()
    assert world.move("weak")  # held
    moved, body = world.tenant(2, "weak")
    body["status"] = {"mcsLevel": "s0:c1,c2", "namespaces": []}
    world.cluster.put(body)
    ports = ProtectionPolicyPorts(cluster=world.cluster, ledger=world.ledger, keys=FakeKeys())

    def protects(name: str) -> list[str]:
        policy = ProtectionPolicy.model_validate(world.cluster.get(API_VERSION, "ProtectionPolicy", name))
        return [str(t.metadata["name"]) for t in protection._tenants(protection.run_for(policy, ports, "test"))]

    assert (protects("strong"), protects("weak")) == (["acme"], [])
    assert moved.spec.protection_policy_ref == "weak"  # what the spec asks is not what protects


def test_under_two_quorum_policies_both_must_approve() -> None:
    world = Protected()
    own = policy_body()
    own["metadata"].update(name="tenant-own", uid="qp-own")
    own["spec"]["rules"] = [builders.rule("ChangeQuorumGate", min_approvals=1, allow_self_approval=True)]
    world.policy(own)
    bodies = []
    for generation, to in ((1, "strong"), (2, "hybrid")):
        _, body = world.tenant(generation, to)
        body["spec"]["quorumPolicyRef"] = "tenant-own"
        bodies.append(body)
        gates = tenant_gate.change(Tenant.model_validate(body), body, ports=world.ports, actor="test", now=NOW)
    assert sorted(g.held.pending.policy for g in gates) == ["tenant-own", "two-person"]
    assert len({g.held.change.digest for g in gates}) == 1  # one change, decided under each policy

    (own_gate,) = [g for g in gates if g.held.pending.policy == "tenant-own"]
    world.approve(own_gate.held.pending, "alice")
    moved = Tenant.model_validate(bodies[-1])
    (still,) = tenant_gate.change(moved, bodies[-1], ports=world.ports, actor="test", now=NOW)
    assert still.held.pending.policy == "two-person"
    assert tenant_gate.protection_ref(world.ledger, moved) == "strong"


def _in_force(world: Protected, uid: str, generation: int, **spec: Any) -> protectionpolicy_gate.InForce:
    """The spec in force of the policy ``strong`` as the object ``uid`` (its generation, its spec) is reconciled."""
    ports = ProtectionPolicyPorts(cluster=world.cluster, ledger=world.ledger, keys=FakeKeys())
    body = dict(builders.protection_policy("strong", uid=uid, generation=generation, spec=spec))
    world.cluster.put(body)
    return protectionpolicy_gate.in_force(
        ProtectionPolicy.model_validate(body), body, ports=ports, actor="test", now=NOW
    )


@pytest.mark.parametrize(
    ("again", "actions"),
    [
        ({"profile": "classical-legacy", "quorumPolicyRef": "two-person"}, ["WeakenProtectionPolicy"]),
        ({"profile": "classical-legacy"}, WEAKER_AND_UNGATED),  # weaker, and out from under the gate: every rule
        ({"profile": "cnsa-2.0"}, ALL_RULES),  # as strong, but ungated from now on
    ],
    ids=repr,
)
def test_a_gated_policy_deleted_and_made_again_weaker_under_its_name_waits(
    again: dict[str, Any], actions: list[str]
) -> None:
    world = Protected()
    assert _in_force(world, "pp-first", 1, profile="cnsa-2.0", quorumPolicyRef="two-person").gate is None
    world.cluster.delete(API_VERSION, "ProtectionPolicy", "strong")
    force = _in_force(world, "pp-again", 1, **again)  # a new object: new uid, generation 1 again
    assert force.gate is not None
    assert [o.action for o in force.gate.held.decision.outcomes] == actions
    assert force.gate.held.change.target.uid == "pp-again"  # approvals bind the new object
    assert (force.spec.profile, force.spec.quorum_policy_ref) == ("cnsa-2.0", "two-person")  # the old one protects

    world.approve(force.gate.held.pending, "alice", "bob", "carol")
    approved = _in_force(world, "pp-again", 1, **again)
    assert approved.gate is None and approved.spec.profile == again["profile"]
    # The approved spec is recorded under the name, beside the first object's record (not deduplicated).
    assert world.actions("protectionpolicy/strong/") == ["protectionpolicy-in-force"] * 2


def test_a_policy_made_again_as_strong_under_the_same_gate_is_in_force_at_once() -> None:
    world = Protected()
    _in_force(world, "pp-first", 1, profile="cnsa-2.0", quorumPolicyRef="two-person")
    again = _in_force(world, "pp-again", 1, profile="cnsa-2.0", quorumPolicyRef="two-person", rotationInterval="24h")
    assert again.gate is None and again.spec.rotation_interval is not None


def test_a_spec_in_force_recorded_under_the_uid_before_names_keyed_it_still_decides() -> None:
    world = Protected()
    legacy = dict(
        builders.protection_policy("strong", profile="cnsa-2.0", uid="pp-old", spec={"quorumPolicyRef": "two-person"})
    )
    world.ledger.append(
        event(
            kind="protectionpolicy",
            uid="pp-old",
            tenant="",
            actor="test",
            action=protectionpolicy_gate.IN_FORCE,
            resource=ResourceRef(kind="ProtectionPolicy", name="strong", uid="pp-old"),
            change="1",
            details={"generation": 1, "spec": legacy["spec"], "why": "first seen"},
        )
    )
    force = _in_force(world, "pp-old", 2, profile="classical-legacy", quorumPolicyRef="two-person")
    assert force.gate is not None and force.spec.profile == "cnsa-2.0"


def _deletion(world: Protected, uid: str) -> Any:
    ports = ProtectionPolicyPorts(cluster=world.cluster, ledger=world.ledger, keys=FakeKeys())
    body = dict(world.cluster.get(API_VERSION, "ProtectionPolicy", "strong") or {})
    assert body["metadata"]["uid"] == uid
    return protectionpolicy_gate.deletion(body, ports=ports, actor="t", now=NOW)


def test_deleting_a_gated_policy_waits_for_quorum_and_once_approved_the_name_starts_afresh() -> None:
    world = Protected()
    _in_force(world, "pp-first", 1, profile="cnsa-2.0", quorumPolicyRef="two-person")
    held = _deletion(world, "pp-first")
    assert held is not None and not held.approved
    assert (held.held.change.action, held.held.pending.policy) == ("WeakenProtectionPolicy", "two-person")
    assert held.held.change.what == {"delete": {"profile": "cnsa-2.0", "quorumPolicyRef": "two-person"}}
    assert [o.action for o in held.held.decision.outcomes] == WEAKER_AND_UNGATED  # the weakest edit: every rule

    world.approve(held.held.pending, "alice", "bob", "carol")
    approved = _deletion(world, "pp-first")
    assert approved is not None and approved.approved
    assert protectionpolicy_gate.latest(world.ledger, "strong", "pp-first") is None  # the deletion is in force
    world.cluster.delete(API_VERSION, "ProtectionPolicy", "strong")
    again = _in_force(world, "pp-again", 1, profile="classical-legacy")  # approved away: nothing to weaken
    assert again.gate is None and again.spec.profile == "classical-legacy"


def test_deleting_a_policy_never_gated_is_not_held() -> None:
    world = Protected()
    _in_force(world, "pp-first", 1, profile="cnsa-2.0")
    assert _deletion(world, "pp-first") is None


def test_a_gated_policy_gone_without_an_approved_deletion_is_recorded_as_a_bypass() -> None:
    world = Protected()
    ports = ProtectionPolicyPorts(cluster=world.cluster, ledger=world.ledger, keys=FakeKeys())
    _in_force(world, "pp-first", 1, profile="cnsa-2.0", quorumPolicyRef="two-person")
    body = dict(world.cluster.get(API_VERSION, "ProtectionPolicy", "strong") or {})
    assert protectionpolicy_gate.bypassed(body, ports=ports, actor="t") == "two-person"
    assert world.actions("quorumpolicy/two-person/bypassed-quorum/") == ["bypassed-quorum"]

    approved = Protected()  # the same policy, its deletion approved first: no bypass
    _in_force(approved, "pp-first", 1, profile="cnsa-2.0", quorumPolicyRef="two-person")
    held = _deletion(approved, "pp-first")
    approved.approve(held.held.pending, "alice", "bob", "carol")
    assert _deletion(approved, "pp-first").approved
    approved_ports = ProtectionPolicyPorts(cluster=approved.cluster, ledger=approved.ledger, keys=FakeKeys())
    assert protectionpolicy_gate.bypassed(body, ports=approved_ports, actor="t") is None

    ungated = Protected()
    _in_force(ungated, "pp-first", 1, profile="cnsa-2.0")
    ungated_ports = ProtectionPolicyPorts(cluster=ungated.cluster, ledger=ungated.ledger, keys=FakeKeys())
    assert protectionpolicy_gate.bypassed(body, ports=ungated_ports, actor="t") is None
