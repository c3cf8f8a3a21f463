"""The one decision, table-driven on a 2-of-3 policy with roles AND regions, then as properties
(hypothesis): no set of approvals below the threshold, missing a required role or region, or
leaning on the requester's own approval when that is forbidden is ever Approved, and adding an
approval never turns Approved into anything else."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privatevault.api.v1alpha1.quorumpolicy import Approver, QuorumPolicySpec, Rule
from privatevault.quorum import Ballot, Requester, decide
from privatevault.quorum.dsse import Algorithm
from tests import builders

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BOTH: frozenset[Algorithm] = frozenset({"Ed25519", "ML-DSA-65"})
ED: frozenset[Algorithm] = frozenset({"Ed25519"})


def _spec(*approvers: dict[str, object], **rule: object) -> QuorumPolicySpec:
    manifest = builders.quorum_policy("p", approvers=list(approvers), rules=[builders.rule(**rule)])  # type: ignore[arg-type]
    return QuorumPolicySpec.model_validate(manifest["spec"])


#: 2 of 3; roles security AND platform; 2 distinct regions.
POLICY = _spec(
    builders.approver(
        "alice",
        roles=["security"],
        region="eu-west-1",
        users=["alice@corp"],
        ml_dsa65=builders.PLACEHOLDER_ML_DSA_65_KEY,
    ),
    builders.approver("bob", roles=["platform"], region="us-east-1", ml_dsa65=builders.PLACEHOLDER_ML_DSA_65_KEY),
    builders.approver("carol", roles=["platform"], region="eu-west-1"),
    min_approvals=2,
    required_roles=["security", "platform"],
    min_distinct_regions=2,
    ttl="2h",
)
SOMEONE = Requester.of("someone@corp")


def ballot(
    approver: str,
    algorithms: frozenset[Algorithm] = ED,
    *,
    age: timedelta = timedelta(minutes=10),
    left: timedelta = timedelta(hours=1),
) -> Ballot:
    return Ballot(approver=approver, algorithms=algorithms, not_after=NOW + left, created=NOW - age, name=approver)


def _decide(ballots: Sequence[Ballot], requester: Requester = SOMEONE, spec: QuorumPolicySpec = POLICY) -> object:
    return decide(spec.rules, spec.approvers, ballots, requester, NOW)


@pytest.mark.parametrize(
    ("case", "ballots", "requester", "state", "message"),
    [
        (
            "nothing yet",
            [],
            SOMEONE,
            "Pending",
            "0/2 approvals; missing role security; missing role platform; 2 more distinct region(s)",
        ),
        (
            "one approval holds",
            [ballot("alice")],
            SOMEONE,
            "Pending",
            "1/2 approvals; missing role platform; 1 more distinct region(s)",
        ),
        (
            "two from one role hold",
            [ballot("bob"), ballot("carol")],
            SOMEONE,
            "Pending",
            "2/2 approvals; missing role security",
        ),
        (
            "two from one region hold",
            [ballot("alice"), ballot("carol")],
            SOMEONE,
            "Pending",
            "2/2 approvals; 1 more distinct region(s)",
        ),
        ("the right two approve", [ballot("alice"), ballot("bob")], SOMEONE, "Approved", "2/2 approvals (alice, bob)"),
        (
            "one approver twice counts once",
            [ballot("alice"), ballot("alice")],
            SOMEONE,
            "Pending",
            "1/2 approvals; missing role platform; 1 more distinct region(s)",
        ),
        (
            "an approver not in the policy counts for nothing",
            [ballot("alice"), ballot("mallory")],
            SOMEONE,
            "Pending",
            "1/2 approvals; missing role platform; 1 more distinct region(s)",
        ),
        (
            "self-approval is forbidden: the requester's own approval does not count",
            [ballot("alice"), ballot("bob"), ballot("carol")],
            Requester.of("alice@corp"),
            "Refused",
            "can never be approved by the policy's approvers: role security",
        ),
        (
            "unknown requester: one approval more",
            [ballot("alice"), ballot("bob")],
            Requester.unknown(),
            "Pending",
            "2/3 approvals; requester unknown, so one approval more than the minimum",
        ),
        (
            "unknown requester: one more approves",
            [ballot("alice"), ballot("bob"), ballot("carol")],
            Requester.unknown(),
            "Approved",
            "3/3 approvals (alice, bob, carol)",
        ),
        (
            "one approval lapsed (notAfter): pending, the lapsed approver named",
            [ballot("alice", left=-timedelta(seconds=1)), ballot("bob")],
            SOMEONE,
            "Pending",
            "1/2 approvals; missing role security; 1 more distinct region(s); expired: alice (sign again)",
        ),
        (
            "ttl counts from the Approval's creation, whatever its notAfter",
            [ballot("alice", age=timedelta(hours=2), left=timedelta(days=1)), ballot("bob")],
            SOMEONE,
            "Pending",
            "1/2 approvals; missing role security; 1 more distinct region(s); expired: alice (sign again)",
        ),
        (
            "every approval lapsed, though they would have met the rule",
            [ballot("alice", left=-timedelta(seconds=1)), ballot("bob", age=timedelta(hours=3))],
            SOMEONE,
            "Expired",
            "0/2 approvals: approvals expired, sign again; missing role security; missing role platform;"
            " 2 more distinct region(s)",
        ),
        (
            "every approval lapsed, and they would not have met it: pending",
            [ballot("alice", left=-timedelta(seconds=1))],
            SOMEONE,
            "Pending",
            "0/2 approvals; missing role security; missing role platform; 2 more distinct region(s);"
            " expired: alice (sign again)",
        ),
        (
            "just inside the ttl",
            [ballot("alice", age=timedelta(hours=2) - timedelta(seconds=1)), ballot("bob")],
            SOMEONE,
            "Approved",
            "2/2 approvals (alice, bob)",
        ),
    ],
)
def test_decisions(case: str, ballots: list[Ballot], requester: Requester, state: str, message: str) -> None:
    decision = decide(POLICY.rules, POLICY.approvers, ballots, requester, NOW)
    assert (decision.state, decision.message) == (state, message), case
    assert decision.approved == (state == "Approved")


def test_the_message_gitops_shows() -> None:
    spec = _spec(
        builders.approver("alice", roles=["security"]),
        builders.approver("bob", roles=["platform"]),
        min_approvals=2,
        required_roles=["security", "platform"],
    )
    decision = _decide([ballot("alice")], spec=spec)
    assert (decision.state, decision.approvals, decision.message) == (
        "Pending",
        "1/2",
        "1/2 approvals; missing role platform",
    )


def test_hybrid_required() -> None:
    spec = _spec(
        builders.approver("alice", ml_dsa65=builders.PLACEHOLDER_ML_DSA_65_KEY),
        builders.approver("bob", ml_dsa65=builders.PLACEHOLDER_ML_DSA_65_KEY),
        builders.approver("carol"),  # Ed25519 only: can never count under hybrid-required
        min_approvals=2,
        signature_mode="hybrid-required",
    )
    assert _decide([ballot("alice", BOTH), ballot("bob", ED)], spec=spec).state == "Pending"
    assert _decide([ballot("alice", BOTH), ballot("carol", BOTH)], spec=spec).state == "Pending"
    assert _decide([ballot("alice", BOTH), ballot("bob", BOTH)], spec=spec).state == "Approved"
    assert _decide([ballot("alice", BOTH), ballot("bob", frozenset({"ML-DSA-65"}))], spec=spec).state == "Pending"


def test_allowed_regions() -> None:
    spec = _spec(
        builders.approver("alice", region="eu-west-1"),
        builders.approver("bob", region="us-east-1"),
        builders.approver("carol", region="eu-central-1"),
        builders.approver("dave"),
        min_approvals=2,
        allowed_regions=["eu-west-1", "eu-central-1"],
    )
    assert _decide([ballot("alice"), ballot("bob")], spec=spec).state == "Pending"
    assert _decide([ballot("alice"), ballot("dave")], spec=spec).state == "Pending"
    assert _decide([ballot("alice"), ballot("carol")], spec=spec).state == "Approved"


def test_self_approval_allowed_counts_the_requester_and_needs_no_extra() -> None:
    spec = _spec(
        builders.approver("alice", users=["alice@corp"]),
        builders.approver("bob"),
        min_approvals=2,
        allow_self_approval=True,
    )
    assert _decide([ballot("alice"), ballot("bob")], Requester.of("alice@corp"), spec=spec).state == "Approved"
    assert _decide([ballot("alice"), ballot("bob")], Requester.unknown(), spec=spec).state == "Approved"


def test_unsatisfiable_for_this_requester_is_refused() -> None:
    """The requester is the only holder of a role: nobody else can ever give it."""
    decision = _decide([], Requester.of("alice@corp"))
    assert decision.state == "Refused"
    assert "role security" in decision.message


def test_several_rules_take_the_worst_state() -> None:
    spec = QuorumPolicySpec.model_validate(
        builders.quorum_policy(
            "p",
            approvers=[builders.approver("alice"), builders.approver("bob")],
            rules=[builders.rule("DeleteTenant"), builders.rule("CryptoShred", min_approvals=2)],
        )["spec"]
    )
    decision = decide(spec.rules, spec.approvers, [ballot("alice")], SOMEONE, NOW)
    assert decision.state == "Pending"
    assert decision.message == "DeleteTenant: 1/1 approvals (alice); and CryptoShred: 1/2 approvals"
    assert decision.approvals == "1/2"
    assert decide([], spec.approvers, [], SOMEONE, NOW).state == "Approved"


# -- properties ------------------------------------------------------------------------------------

ROLES = ("security", "platform", "audit")
REGIONS = ("eu-west-1", "us-east-1", "ap-south-1")


@st.composite
def policies(draw: st.DrawFn) -> tuple[list[Approver], Rule]:
    count = draw(st.integers(1, 6))
    approvers = [
        Approver.model_validate(
            builders.approver(
                f"a{n}",
                roles=draw(st.lists(st.sampled_from(ROLES), unique=True, max_size=2)),
                region=draw(st.sampled_from(REGIONS)),
                users=[f"user{n}@corp"],
                ml_dsa65=draw(st.sampled_from([None, builders.PLACEHOLDER_ML_DSA_65_KEY])),
            )
        )
        for n in range(count)
    ]
    held = sorted({role for a in approvers for role in a.roles})
    rule = Rule.model_validate(
        builders.rule(
            min_approvals=draw(st.integers(1, count)),
            required_roles=draw(st.lists(st.sampled_from(held), unique=True)) if held else None,
            min_distinct_regions=draw(st.integers(1, 3)),
            allowed_regions=draw(st.one_of(st.none(), st.lists(st.sampled_from(REGIONS), min_size=1, unique=True))),
            allow_self_approval=draw(st.booleans()),
            signature_mode=draw(st.sampled_from(["any", "hybrid-required"])),
            ttl="1h",
        )
    )
    return approvers, rule


@st.composite
def ballots_of(draw: st.DrawFn, approvers: Sequence[Approver]) -> list[Ballot]:
    names = [a.name for a in approvers] + ["stranger"]
    return [
        ballot(
            draw(st.sampled_from(names)),
            draw(st.sampled_from([ED, BOTH, frozenset({"ML-DSA-65"})])),
            age=timedelta(minutes=draw(st.integers(0, 90))),
            left=timedelta(minutes=draw(st.integers(-30, 90))),
        )
        for _ in range(draw(st.integers(0, 8)))
    ]


requesters = st.one_of(
    st.just(Requester.unknown()),
    st.builds(lambda n: Requester.of(f"user{n}@corp"), st.integers(0, 6)),
)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_what_approves_meets_every_condition(data: st.DataObject) -> None:
    approvers, rule = data.draw(policies())
    ballots = data.draw(ballots_of(approvers))
    requester = data.draw(requesters)
    decision = decide([rule], approvers, ballots, requester, NOW)
    if not decision.approved:
        return
    by_name = {a.name: a for a in approvers}
    counted = [by_name[name] for name in decision.counted]
    need = rule.min_approvals + (0 if rule.allow_self_approval or requester.known else 1)
    assert len(counted) >= need
    assert set(rule.required_roles) <= {role for a in counted for role in a.roles}
    assert len({a.region for a in counted}) >= rule.min_distinct_regions
    for approver in counted:
        assert not rule.allowed_regions or approver.region in rule.allowed_regions
        assert rule.allow_self_approval or not requester.is_(approver)
        mine = [
            b
            for b in ballots
            if b.approver == approver.name
            and min(b.not_after, b.created + timedelta(hours=1)) > NOW
            and (rule.signature_mode == "any" or b.algorithms == BOTH)
        ]
        assert mine, f"{approver.name} counted without a live ballot signed as the rule asks"


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_below_the_threshold_or_missing_a_role_or_region_is_never_approved(data: st.DataObject) -> None:
    approvers, rule = data.draw(policies())
    requester = data.draw(requesters)
    # Everyone signs everything, live: only who signs can hold the action back.
    everyone = [ballot(a.name, BOTH) for a in approvers]
    subset = data.draw(st.lists(st.sampled_from(everyone), unique_by=lambda b: b.approver)) if everyone else []
    decision = decide([rule], approvers, subset, requester, NOW)
    signers = [a for a in approvers if a.name in {b.approver for b in subset}]
    if len(signers) < rule.min_approvals:
        assert not decision.approved
    if not set(rule.required_roles) <= {role for a in signers for role in a.roles}:
        assert not decision.approved
    if len({a.region for a in signers}) < rule.min_distinct_regions:
        assert not decision.approved
    if not requester.known and not rule.allow_self_approval and len(signers) <= rule.min_approvals:
        assert not decision.approved


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_requesters_own_approval_never_tips_the_decision(data: st.DataObject) -> None:
    approvers, rule = data.draw(policies())
    rule = rule.model_copy(update={"allow_self_approval": False})
    ballots = data.draw(ballots_of(approvers))
    requester = Requester.of(data.draw(st.sampled_from([u for a in approvers for u in a.users])))
    without = [b for b in ballots if not any(a.name == b.approver and requester.is_(a) for a in approvers)]
    assert (
        decide([rule], approvers, ballots, requester, NOW).state
        == decide([rule], approvers, without, requester, NOW).state
    )


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_adding_an_approval_never_undoes_approved(data: st.DataObject) -> None:
    approvers, rule = data.draw(policies())
    ballots = data.draw(ballots_of(approvers))
    more = data.draw(ballots_of(approvers))
    requester = data.draw(requesters)
    if decide([rule], approvers, ballots, requester, NOW).approved:
        assert decide([rule], approvers, ballots + more, requester, NOW).approved
