"""From Approval objects to ballots: the checks an Approval passes before it may count.

:func:`verify` judges one Approval on its own, against the policy in force: the envelope is DSSE
with the in-toto payload type, the statement is ours, the Approval's fields say what the statement
says, the approver is in the policy and at least one signature verifies under that approver's
keys there (a key removed from the policy verifies nothing), and it has not expired. The
verdict is ``Valid``, ``Invalid`` or ``Expired`` with a reason, as the Approval's status shows it.

:func:`ballots` keeps the valid Approvals bound to one pending change: same action, same object
uid, same change digest, same generation, same policy. An approval for another object, another
spec or an older generation is valid on its own and counts for nothing here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from privatevault.api.v1alpha1 import Approval
from privatevault.api.v1alpha1.quorumpolicy import QuorumPolicySpec

from . import dsse
from .decision import Ballot
from .rules import public_keys
from .statement import Statement, StatementError, Target, parse, parse_time

Verdict = Literal["Valid", "Invalid", "Expired"]


@dataclass(frozen=True)
class Judged:
    name: str
    verdict: Verdict
    reason: str
    statement: Statement | None = None
    algorithms: frozenset[dsse.Algorithm] = frozenset()
    created: datetime | None = None
    envelope: dict[str, object] | None = None
    envelope_digest: str = ""

    def ballot(self) -> Ballot:
        assert self.statement is not None and self.created is not None
        return Ballot(
            approver=self.statement.approver,
            algorithms=self.algorithms,
            not_after=self.statement.not_after,
            created=self.created,
            name=self.name,
        )


def _mismatch(approval: Approval, statement: Statement) -> str | None:
    spec = approval.spec
    pairs = (
        ("approver", spec.approver, statement.approver),
        ("policy", spec.policy, statement.policy),
        ("action.verb", spec.action.verb, statement.action),
        ("action.kind", spec.action.kind, statement.target.kind),
        ("action.name", spec.action.name, statement.target.name),
        ("action.uid", spec.action.uid, statement.target.uid),
        ("action.generation", spec.action.generation, statement.target.generation),
        ("action.digest", spec.action.digest, statement.change_digest),
    )
    for field, declared, signed in pairs:
        if declared != signed:
            return f"spec.{field} is {declared!r} but the signed statement says {signed!r}"
    if parse_time(spec.expires) != statement.not_after:
        return "spec.expires differs from the signed statement's notAfter"
    return None


def verify(approval: Approval, policy_name: str, policy: QuorumPolicySpec | None, now: datetime) -> Judged:
    """The verdict on one Approval under the policy in force (``None``: the policy does not exist)."""
    name = str(approval.metadata.get("name", ""))
    document = approval.spec.envelope.model_dump(mode="json", by_alias=True)
    try:
        envelope = dsse.parse(document)
        statement = parse(envelope.payload)
        created = parse_time(str(approval.metadata.get("creationTimestamp") or "1970-01-01T00:00:00Z"))
    except (dsse.EnvelopeError, StatementError) as exc:
        return Judged(name, "Invalid", str(exc))
    base = Judged(
        name, "Invalid", "", statement=statement, created=created, envelope=document, envelope_digest=envelope.digest()
    )

    def invalid(reason: str) -> Judged:
        return replace(base, reason=reason)

    if envelope.payload_type != dsse.PAYLOAD_TYPE:
        return invalid(f"payloadType must be {dsse.PAYLOAD_TYPE}")
    problem = _mismatch(approval, statement)
    if problem:
        return invalid(problem)
    if policy is None or statement.policy != policy_name:
        return invalid(f"QuorumPolicy {statement.policy} does not exist")
    approver = next((a for a in policy.approvers if a.name == statement.approver), None)
    if approver is None:
        return invalid(f"{statement.approver} is not an approver of QuorumPolicy {policy_name}")
    algorithms = dsse.verify(envelope, public_keys(approver))
    if not algorithms:
        return invalid(f"no signature verifies under {approver.name}'s keys in QuorumPolicy {policy_name}")
    if now >= statement.not_after:
        return replace(base, verdict="Expired", reason=f"expired at {approval.spec.expires}", algorithms=algorithms)
    signed = " and ".join(sorted(algorithms))
    return replace(base, verdict="Valid", reason=f"signed by {approver.name} ({signed})", algorithms=algorithms)


def binds(judged: Judged, action: str, target: Target, digest: str) -> bool:
    statement = judged.statement
    return (
        statement is not None
        and statement.action == action
        and statement.target == target
        and (statement.change_digest == digest)
    )


def ballots(judged: Iterable[Judged], action: str, target: Target, digest: str) -> list[Ballot]:
    """The valid (or lapsed: the decision tells expired from missing) approvals of this exact change."""
    return [j.ballot() for j in judged if j.verdict != "Invalid" and binds(j, action, target, digest)]
