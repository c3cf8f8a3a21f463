"""An Approval is judged on its own (Valid, Invalid or Expired, with the reason) against the
policy in force, and counts only for the exact change it signs: same object uid, same digest,
same generation. Each way to get it wrong is one row."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from privatevault.api.v1alpha1 import Approval
from privatevault.api.v1alpha1.pending import PendingAction
from privatevault.api.v1alpha1.quorumpolicy import QuorumPolicySpec
from privatevault.quorum import Target, ballots, binds, dsse, verify
from privatevault.quorum.consent import statement_for
from tests import builders
from tests.quorum_keys import ApproverKeys, approver, signed_approval

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CREATED = "2026-06-01T11:00:00Z"
DIGEST = "sha256:" + "ab" * 32
TARGET = Target(kind="Tenant", name="acme", uid="uid-acme", generation=3)
PENDING = builders.pending_action(digest=DIGEST)

KEYS = {name: ApproverKeys.generate() for name in ("alice", "bob", "carol")}


def _policy(alice_keys: ApproverKeys | None = None) -> QuorumPolicySpec:
    manifest = builders.quorum_policy(
        "two-person",
        approvers=[
            approver("alice", alice_keys or KEYS["alice"], roles=["security"], region="eu-west-1"),
            approver("bob", KEYS["bob"], roles=["platform"], region="us-east-1"),
        ],
        rules=[builders.rule(min_approvals=2, required_roles=["security", "platform"])],
    )
    return QuorumPolicySpec.model_validate(manifest["spec"])


def _approval(who: str = "alice", *, keys: str | None = None, **options: Any) -> dict[str, Any]:
    options.setdefault("not_after", NOW + timedelta(hours=1))
    manifest = signed_approval(f"{who}-approves", PENDING, who, KEYS[keys or who], **options)
    manifest["metadata"]["creationTimestamp"] = CREATED
    return manifest


def _judge(manifest: dict[str, Any], policy: QuorumPolicySpec | None = None, name: str = "two-person") -> Any:
    return verify(Approval.model_validate(manifest), name, policy or _policy(), NOW)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(manifest: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(manifest)
        where = out["spec"]
        *parents, last = path.split(".")
        for key in parents:
            where = where[key]
        where[last] = value
        return out

    return change


def test_a_valid_approval() -> None:
    judged = _judge(_approval())
    assert (judged.verdict, judged.reason) == ("Valid", "signed by alice (Ed25519 and ML-DSA-65)")
    assert judged.algorithms == {"Ed25519", "ML-DSA-65"}
    assert judged.envelope is not None and judged.envelope_digest.startswith("sha256:")
    assert judged.created == datetime(2026, 6, 1, 11, 0, tzinfo=UTC)
    assert binds(judged, "DeleteTenant", TARGET, DIGEST)
    [ballot] = ballots([judged], "DeleteTenant", TARGET, DIGEST)
    assert (ballot.approver, ballot.name) == ("alice", "alice-approves")


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("approver", "bob", "spec.approver is 'bob' but the signed statement says 'alice'"),
        ("policy", "other", "spec.policy is 'other'"),
        ("action.verb", "CryptoShred", "spec.action.verb is 'CryptoShred'"),
        ("action.name", "globex", "spec.action.name is 'globex'"),
        ("action.uid", "uid-globex", "spec.action.uid is 'uid-globex'"),
        ("action.generation", 4, "spec.action.generation is 4"),
        ("action.digest", "sha256:" + "cd" * 32, "spec.action.digest is 'sha256:cdcd"),
        ("expires", "2031-01-01T00:00:00Z", "spec.expires differs from the signed statement's notAfter"),
    ],
)
def test_a_tampered_mirror_field_is_invalid(field: str, value: Any, reason: str) -> None:
    judged = _judge(_set(field, value)(_approval()))
    assert judged.verdict == "Invalid"
    assert reason in judged.reason


@pytest.mark.parametrize(
    ("case", "manifest", "policy", "verdict", "reason"),
    [
        (
            "approver not in the policy",
            lambda: _approval("carol"),
            None,
            "Invalid",
            "carol is not an approver of QuorumPolicy two-person",
        ),
        (
            "signed with another approver's keys",
            lambda: _approval("alice", keys="bob"),
            None,
            "Invalid",
            "no signature verifies under alice's keys in QuorumPolicy two-person",
        ),
        (
            "the key it signed with was removed from the policy",
            lambda: _approval(algorithms=["Ed25519"]),
            lambda: _policy(ApproverKeys(ed25519=None, ml_dsa65=KEYS["alice"].ml_dsa65)),
            "Invalid",
            "no signature verifies under alice's keys",
        ),
        (
            "one of two keys removed: the other still verifies",
            _approval,
            lambda: _policy(ApproverKeys(ed25519=None, ml_dsa65=KEYS["alice"].ml_dsa65)),
            "Valid",
            "signed by alice (ML-DSA-65)",
        ),
        (
            "expired",
            lambda: _approval(not_after=NOW - timedelta(seconds=1)),
            None,
            "Expired",
            "expired at 2026-06-01T11:59:59Z",
        ),
        ("expires now", lambda: _approval(not_after=NOW), None, "Expired", "expired at"),
        (
            "given under another policy",
            lambda: _approval(policy="other"),
            None,
            "Invalid",
            "QuorumPolicy other does not exist",
        ),
    ],
)
def test_verdicts(case: str, manifest: Any, policy: Any, verdict: str, reason: str) -> None:
    judged = _judge(manifest(), policy() if policy else None)
    assert (judged.verdict, reason in judged.reason) == (verdict, True), (case, judged.reason)


def test_no_policy_at_all() -> None:
    judged = verify(Approval.model_validate(_approval()), "two-person", None, NOW)
    assert (judged.verdict, judged.reason) == ("Invalid", "QuorumPolicy two-person does not exist")


def test_another_payload_type_is_refused_by_the_api_and_does_not_verify() -> None:
    manifest = _approval()
    with pytest.raises(ValidationError, match=r"application/vnd\.in-toto\+json"):
        Approval.model_validate(_set("envelope.payloadType", "application/json")(manifest))
    # Signed under another type, relabelled in-toto: the PAE differs, so no signature verifies.
    statement = statement_for(PendingAction.model_validate(PENDING), "alice", NOW + timedelta(hours=1))
    other = dsse.sign(statement.payload(), KEYS["alice"].signing(), payload_type="application/json")
    relabelled = other.to_json() | {"payloadType": dsse.PAYLOAD_TYPE}
    judged = _judge(_set("envelope", relabelled)(manifest))
    assert (judged.verdict, judged.reason) == (
        "Invalid",
        "no signature verifies under alice's keys in QuorumPolicy two-person",
    )


def test_an_envelope_that_is_not_ours_is_invalid() -> None:
    judged = _judge(_set("envelope.payload", "e30=")(_approval()))
    assert judged.verdict == "Invalid"
    assert "not an in-toto Statement v1" in judged.reason


@pytest.mark.parametrize(
    ("case", "target", "digest"),
    [
        (
            "another object's uid (a tenant made again under the same name)",
            Target(kind="Tenant", name="acme", uid="uid-acme-2", generation=3),
            DIGEST,
        ),
        ("another change (a different spec)", TARGET, "sha256:" + "cd" * 32),
        (
            "a newer generation than the one approved",
            Target(kind="Tenant", name="acme", uid="uid-acme", generation=4),
            DIGEST,
        ),
        ("another object", Target(kind="Tenant", name="globex", uid="uid-acme", generation=3), DIGEST),
    ],
)
def test_a_valid_approval_counts_only_for_its_change(case: str, target: Target, digest: str) -> None:
    judged = _judge(_approval())
    assert judged.verdict == "Valid"
    assert not binds(judged, "DeleteTenant", target, digest), case
    assert ballots([judged], "DeleteTenant", target, digest) == []


def test_another_action_does_not_bind() -> None:
    judged = _judge(_approval())
    assert not binds(judged, "CryptoShred", TARGET, DIGEST)


def test_invalid_approvals_make_no_ballots_and_lapsed_ones_do() -> None:
    valid = _judge(_approval())
    expired = _judge(_approval("bob", not_after=NOW - timedelta(minutes=1)))
    invalid = _judge(_approval("carol"))
    assert [b.approver for b in ballots([valid, expired, invalid], "DeleteTenant", TARGET, DIGEST)] == ["alice", "bob"]
