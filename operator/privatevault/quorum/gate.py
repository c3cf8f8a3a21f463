"""A held action from its facts to the decision and the ``PendingAction`` its object's status shows.

Gather (the policy in force, the Approvals judged under it, the requester the webhook recorded),
then :func:`hold` decides. The caller acts on ``Held.decision``: on ``Approved`` it records the
decision in the ledger (with every counted envelope verbatim) and goes ahead; otherwise it shows
``Held.pending`` and waits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from privatevault.api.v1alpha1.pending import PendingAction
from privatevault.api.v1alpha1.pending import Target as TargetModel
from privatevault.api.v1alpha1.quorumpolicy import QuorumPolicySpec, Rule

from .ballots import Judged, binds
from .changes import Change
from .decision import Decision, Requester, decide, ends, live, signed_enough


@dataclass(frozen=True)
class InForce:
    """A QuorumPolicy as it decides today: the last version recorded in force in the ledger."""

    name: str
    generation: int
    spec: QuorumPolicySpec

    def rule(self, action: str) -> Rule | None:
        return next((r for r in self.spec.rules if r.action == action), None)

    def rules(self, *actions: str) -> list[Rule]:
        return [r for a in actions if (r := self.rule(a)) is not None]


@dataclass(frozen=True)
class Held:
    change: Change
    decision: Decision
    pending: PendingAction
    counted: tuple[Judged, ...]
    #: While not approved: when the first counted approval stops counting (None: none counts).
    #: Past it the action needs that approver to sign again (the approvals-expiring alert).
    expires: datetime | None = None

    def ledger_details(self, requester: Requester) -> dict[str, Any]:
        """The decision as the ledger keeps it: rules' outcomes and every counted envelope verbatim."""
        return {
            "action": self.change.action,
            "target": self.pending.target.model_dump(mode="json", by_alias=True),
            "changeDigest": self.change.digest,
            "policy": {"name": self.pending.policy, "generation": self.pending.policy_generation},
            "decision": self.decision.state,
            "message": self.decision.message,
            "requester": requester.name if requester.known else None,
            "approvals": [
                {"name": j.name, "approver": j.statement.approver if j.statement else None, "envelope": j.envelope}
                for j in self.counted
            ],
        }


def sign_with(change: Change) -> str:
    return f"pvctl approvals create {change.target.kind}/{change.target.name} --action {change.action}"


def hold(
    change: Change,
    *,
    rules: Sequence[Rule],
    policy: InForce,
    judged: Iterable[Judged],
    requester: Requester,
    now: datetime,
) -> Held:
    """Decide ``change`` under ``rules`` of ``policy`` with the Approvals ``judged`` under it."""
    bound = [j for j in judged if j.verdict != "Invalid" and binds(j, change.action, change.target, change.digest)]
    decision = decide(rules, policy.spec.approvers, [j.ballot() for j in bound], requester, now)
    # The envelopes that counted: a counted approver's lapsed or under-signed Approval did not.
    counted = tuple(
        j
        for j in bound
        if j.statement is not None
        and j.statement.approver in decision.counted
        and any(live(rule, j.ballot(), now) and signed_enough(rule, j.algorithms) for rule in rules)
    )
    lapses = [
        ends(rule, j.ballot())
        for j in counted
        for rule in rules
        if live(rule, j.ballot(), now) and signed_enough(rule, j.algorithms)
    ]
    expires = min(lapses) if lapses and not decision.approved else None
    pending = PendingAction(
        action=change.action,
        policy=policy.name,
        policy_generation=policy.generation,
        target=TargetModel(
            kind=change.target.kind, name=change.target.name, uid=change.target.uid, generation=change.target.generation
        ),
        change_digest=change.digest,
        state=decision.state,
        approvals=decision.approvals,
        message=decision.message[:1024],
        requester=requester.name if requester.known else None,
        sign_with=sign_with(change),
    )
    return Held(change=change, decision=decision, pending=pending, counted=counted, expires=expires)
