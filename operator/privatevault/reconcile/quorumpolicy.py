"""QuorumPolicy reconcile: the policy's rules checked, brought into force, or held when weaker.

``Ready`` when every approver key parses and every rule can be met by the approvers (else
``Stalled`` naming the rule); the status lists what each rule needs in words. A spec at least as
strict as the one in force is in force at once (recorded in the ledger); a weaker one
(``rules.weakenings``) is a gated action, ``WeakenQuorumPolicy``, decided under the rules in
force before it: the rules it weakens, and the policy's own WeakenQuorumPolicy rule if it has
one. Until approved, the old rules keep deciding every gate that names the policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from privatevault.api.v1alpha1 import QuorumPolicy
from privatevault.api.v1alpha1.quorumpolicy import RuleSummary
from privatevault.errors import SpecError
from privatevault.quorum import changes, rules
from privatevault.reconcile import quorum, status
from privatevault.reconcile.ports import ClusterPort, LedgerPort

BEGIN_MESSAGE = "checking the policy's approvers and rules"


def summaries(policy: QuorumPolicy) -> list[RuleSummary]:
    return [RuleSummary(action=r.action, needs=rules.in_words(r, policy.spec.approvers)) for r in policy.spec.rules]


def facts(policy: QuorumPolicy) -> dict[str, Any]:
    return {"rules": summaries(policy)}


def reconcile(
    policy: QuorumPolicy,
    body: Mapping[str, Any],
    *,
    cluster: ClusterPort,
    ledger: LedgerPort,
    actor: str,
    now: datetime,
) -> status.Done:
    problems = rules.unparsable_keys(policy.spec) + rules.unsatisfiable(policy.spec)
    if problems:
        raise SpecError("; ".join(problems), reason="RuleUnsatisfiable")
    name = str(policy.metadata["name"])
    generation = int(policy.metadata.get("generation") or 0)
    spec = dict(body.get("spec") or {})
    state = quorum.policy(ledger, name)
    in_force = state.in_force
    bypassed = ledger.find(f"quorumpolicy/{name}/{quorum.BYPASSED}/")
    marks = (
        [
            status.Mark(
                type="QuorumBypassed",
                status="True",
                reason="BypassedQuorum",
                message=f"{len(bypassed)} gated object(s) disappeared without a decision: see the ledger's"
                f" {quorum.BYPASSED} records (latest seq {bypassed[-1].seq})",
            )
        ]
        if bypassed
        else []
    )
    message = f"{len(policy.spec.rules)} rule(s), {len(policy.spec.approvers)} approver(s) in force"
    if in_force is None:
        quorum.record_policy(ledger, actor, body, spec, ["first version" if not state.deleted else "made again"])
    elif in_force.spec != policy.spec:
        weakened, reasons = rules.weakenings(in_force.spec, policy.spec)
        if weakened:
            held_rules = quorum.dedupe(in_force.rules("WeakenQuorumPolicy") + weakened)
            gate = quorum.decide(
                changes.new_spec("WeakenQuorumPolicy", body),
                held_rules,
                in_force,
                cluster=cluster,
                ledger=ledger,
                actor=actor,
                tenant="",
                now=now,
            )
            if not gate.approved:
                return status.Done(
                    message=message,
                    facts={**facts(policy), "in_force_generation": in_force.generation, "pending": [gate.held.pending]},
                    marks=marks,
                    held=gate.error(),
                )
        quorum.record_policy(ledger, actor, body, spec, reasons or ["not weaker"])
    else:
        generation = in_force.generation
    return status.Done(message=message, facts={**facts(policy), "in_force_generation": generation}, marks=marks)
