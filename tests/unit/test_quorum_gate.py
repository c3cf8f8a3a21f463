"""From a held change and its judged Approvals to the decision, the ``status.pending`` entry and
what the ledger keeps: only the envelopes that counted, verbatim; and the Approval ``pvctl``
makes for a pending entry is named and bound as the gate expects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from privatevault.api.v1alpha1 import Approval
from privatevault.api.v1alpha1.pending import PendingAction
from privatevault.api.v1alpha1.quorumpolicy import QuorumPolicySpec
from privatevault.quorum import Requester, changes, consent, verify
from privatevault.quorum.gate import Held, InForce, hold
from privatevault.quorum.statement import Statement, Target
from tests import builders
from tests.quorum_keys import ApproverKeys, approver, signed_approval

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
KEYS = {name: ApproverKeys.generate() for name in ("alice", "bob", "carol")}
SPEC = QuorumPolicySpec.model_validate(
    builders.quorum_policy(
        "two-person",
        approvers=[
            approver("alice", KEYS["alice"], roles=["security"], region="eu-west-1"),
            approver("bob", KEYS["bob"], roles=["platform"], region="us-east-1"),
            approver("carol", KEYS["carol"], roles=["security"], region="eu-west-1"),
        ],
        rules=[builders.rule(min_approvals=2, required_roles=["security", "platform"], min_distinct_regions=2)],
    )["spec"]
)
POLICY = InForce("two-person", 4, SPEC)
TENANT = builders.tenant("acme", uid="uid-acme", generation=3, quorum_policy_ref="two-person")
CHANGE = changes.deletion(TENANT)
PENDING = builders.pending_action(policy_generation=4, digest=CHANGE.digest)


def _approval(who: str, *, name: str | None = None, created: str = "2026-06-01T11:00:00Z", **options: Any) -> Any:
    options.setdefault("not_after", NOW + timedelta(hours=1))
    manifest = signed_approval(name, PENDING, who, KEYS[who], **options)
    manifest["metadata"]["creationTimestamp"] = created
    return verify(Approval.model_validate(manifest), "two-person", SPEC, NOW)


def _hold(*judged: Any, requester: Requester | None = None) -> Held:
    return hold(
        CHANGE,
        rules=SPEC.rules,
        policy=POLICY,
        judged=judged,
        requester=requester or Requester.of("dave@corp"),
        now=NOW,
    )


def test_held_shows_what_to_sign() -> None:
    held = _hold(_approval("alice"))
    assert held.pending == PendingAction(
        action="DeleteTenant",
        policy="two-person",
        policy_generation=4,
        target={"kind": "Tenant", "name": "acme", "uid": "uid-acme", "generation": 3},  # type: ignore[arg-type]
        change_digest=CHANGE.digest,
        state="Pending",
        approvals="1/2",
        message="1/2 approvals; missing role platform; 1 more distinct region(s)",
        requester="dave@corp",
        sign_with="pvctl approvals create Tenant/acme --action DeleteTenant",
    )
    assert [j.statement.approver for j in held.counted if j.statement] == ["alice"]


def test_approved_keeps_the_envelopes_that_counted_verbatim() -> None:
    alice, bob = _approval("alice"), _approval("bob")
    held = _hold(alice, bob)
    assert held.decision.approved
    details = held.ledger_details(Requester.of("dave@corp"))
    assert details["decision"] == "Approved"
    assert details["changeDigest"] == CHANGE.digest
    assert details["policy"] == {"name": "two-person", "generation": 4}
    assert details["requester"] == "dave@corp"
    assert [(a["approver"], a["envelope"]) for a in details["approvals"]] == [
        ("alice", alice.envelope),
        ("bob", bob.envelope),
    ]


def test_a_lapsed_approval_of_a_counted_approver_is_not_in_the_ledger() -> None:
    old = _approval("alice", name="alice-old", not_after=NOW - timedelta(minutes=1))
    held = _hold(old, _approval("alice", name="alice-new"), _approval("bob"))
    assert held.decision.approved
    assert [j.name for j in held.counted] == ["alice-new", f"acme-deletetenant-bob-{CHANGE.digest[7:15]}"]


def test_approvals_of_other_changes_do_not_count() -> None:
    other = builders.pending_action(policy_generation=4, digest=CHANGE.digest, target_uid="uid-other")
    manifest = signed_approval("replayed", other, "bob", KEYS["bob"], not_after=NOW + timedelta(hours=1))
    manifest["metadata"]["creationTimestamp"] = "2026-06-01T11:00:00Z"
    replayed = verify(Approval.model_validate(manifest), "two-person", SPEC, NOW)
    assert replayed.verdict == "Valid"
    assert _hold(_approval("alice"), replayed).decision.state == "Pending"


def test_the_approval_pvctl_makes_is_named_for_the_change() -> None:
    statement = consent.statement_for(PendingAction.model_validate(PENDING), "alice", NOW)
    assert consent.approval_name(statement) == f"acme-deletetenant-alice-{CHANGE.digest[7:15]}"
    long = Statement(
        action="WeakenProtectionPolicy",
        target=Target(kind="ProtectionPolicy", name="p." + "x" * 250, uid="u", generation=1),
        change_digest=CHANGE.digest,
        approver="a" * 63,
        policy="two-person",
        policy_generation=1,
        not_after=NOW,
    )
    name = consent.approval_name(long)
    assert len(name) <= 253
    assert name.endswith(f"-weakenprotectionpolicy-{'a' * 63}-{CHANGE.digest[7:15]}")
    assert name.startswith("p.xxx")


def test_not_after_is_whole_seconds_in_utc() -> None:
    statement = consent.statement_for(
        PendingAction.model_validate(PENDING), "alice", datetime(2026, 6, 1, 14, 0, 0, 999_999, tzinfo=UTC)
    )
    assert statement.not_after == datetime(2026, 6, 1, 14, 0, tzinfo=UTC)


def test_a_held_action_says_when_its_first_counted_approval_lapses() -> None:
    # alice's notAfter is in 1 h; the rule's default ttl from its creation is later.
    held = _hold(_approval("alice"))
    assert held.expires == NOW + timedelta(hours=1)
    sooner = _hold(_approval("alice", not_after=NOW + timedelta(hours=3)), _approval("carol"))
    assert not sooner.decision.approved and sooner.expires == NOW + timedelta(hours=1)
    assert _hold().expires is None  # nothing counted
    assert _hold(_approval("alice"), _approval("bob")).expires is None  # approved: nothing to lapse
