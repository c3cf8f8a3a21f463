"""Gates in the reconcile: what is in force, who asked, which Approvals count, and the decision.

What decides is kept in the ledger, not in an object anyone with write access could edit:

- the rules of a QuorumPolicy in force (``quorumpolicy-in-force``, keyed by the policy's
  *name*, so deleting a policy and making a weaker one under the same name is a weakening too);
- the gate of a Tenant in force (``tenant-gate-in-force``: its quorumPolicyRef, deletion policy
  and protectionPolicyRef) and the spec of a ProtectionPolicy in force (``protectionpolicy-in-force``);
- who requested a gated change (``request-gated-action``, written by the admission webhook);
- every decision that let a gated action through (``quorum-decision``, with the counted DSSE
  envelopes verbatim), written before the action.

The latest record under a key prefix is what is in force (``LedgerPort.find``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from privatevault.api.v1alpha1 import API_VERSION, Approval
from privatevault.api.v1alpha1.quorumpolicy import QuorumPolicySpec, Rule
from privatevault.errors import GateClosed, SpecError
from privatevault.ledger import Record, ResourceRef
from privatevault.quorum import Requester, verify
from privatevault.quorum.ballots import Judged
from privatevault.quorum.changes import Change
from privatevault.quorum.gate import Held, InForce, hold
from privatevault.reconcile import requesters, status
from privatevault.reconcile.audit import event
from privatevault.reconcile.ports import ClusterPort, LedgerPort

POLICY_IN_FORCE = "quorumpolicy-in-force"
REQUEST = requesters.ACTION
DECISION = "quorum-decision"
HELD = "quorum-held"
AWAITING = "AwaitingQuorum"


def details(record: Record) -> dict[str, Any]:
    body = json.loads(record.canonical)
    return dict(body.get("details") or {})


def latest(ledger: LedgerPort, kind: str, key: str, action: str) -> dict[str, Any] | None:
    """The details of the newest record under ``<kind>/<key>/<action>/``, or None."""
    found = ledger.find(f"{kind}/{key}/{action}/", limit=1)
    return details(found[-1]) if found else None


@dataclass(frozen=True)
class PolicyState:
    """A QuorumPolicy as the ledger knows it: never in force, in force, or deleted (approved)."""

    name: str
    in_force: InForce | None
    deleted: bool = False

    @property
    def missing(self) -> bool:
        return self.in_force is None and not self.deleted


def policy(ledger: LedgerPort, name: str) -> PolicyState:
    found = latest(ledger, "quorumpolicy", name, POLICY_IN_FORCE)
    if found is None:
        return PolicyState(name, None)
    if found.get("spec") is None:
        return PolicyState(name, None, deleted=True)
    spec = QuorumPolicySpec.model_validate(found["spec"])
    return PolicyState(name, InForce(name=name, generation=int(found.get("generation") or 0), spec=spec))


def record_in_force(
    ledger: LedgerPort,
    actor: str,
    obj: Mapping[str, Any],
    *,
    kind: str,
    action: str,
    details: Mapping[str, Any],
    suffix: str = "",
) -> None:
    """What is in force of a cluster-wide object, keyed by its *name* (``<kind>/<name>/<action>/<uid>:<generation>``).

    By name, so an object deleted and made again under the same name (a new uid) is compared with
    what was in force of its former self; the uid and generation in the key keep both records.
    """
    meta = obj["metadata"]
    generation = int(meta.get("generation") or 0)
    ledger.append(
        event(
            kind=kind.lower(),
            uid=str(meta["name"]),
            tenant="",
            actor=actor,
            action=action,
            resource=ResourceRef(kind=kind, name=str(meta["name"]), uid=str(meta["uid"])),
            change=f"{meta['uid']}:{generation}{suffix}",
            details={"generation": generation, **details},
        )
    )


def record_policy(
    ledger: LedgerPort, actor: str, obj: Mapping[str, Any], spec: Mapping[str, Any] | None, reasons: Sequence[str]
) -> None:
    details = {"spec": dict(spec) if spec is not None else None, "reasons": list(reasons)}
    suffix = ":deleted" if spec is None else ""
    record_in_force(ledger, actor, obj, kind="QuorumPolicy", action=POLICY_IN_FORCE, details=details, suffix=suffix)


def judged(cluster: ClusterPort, state: InForce, uid: str, now: datetime) -> list[Judged]:
    """Every Approval of an action on the object ``uid`` under the policy, judged under its rules in force."""
    out = []
    for body in cluster.list(API_VERSION, "Approval"):
        spec = body.get("spec") or {}
        if (spec.get("action") or {}).get("uid") != uid or spec.get("policy") != state.name:
            continue
        try:
            approval = Approval.model_validate(body)
        except ValueError:
            continue  # stored before a rule that now refuses it: it counts for nothing
        out.append(verify(approval, state.name, state.spec, now))
    return out


@dataclass(frozen=True)
class Gate:
    """One gated change of one object, decided (see :func:`decide`)."""

    held: Held
    requester: Requester

    @property
    def approved(self) -> bool:
        return self.held.decision.approved

    def error(self) -> GateClosed | SpecError:
        """What the status shows while held: AwaitingQuorum (in progress), or Stalled when refused/expired."""
        decision = self.held.decision
        head = f"{self.held.change.action}: " if len(decision.outcomes) == 1 else ""
        text = f"{head}{decision.message}; sign with: {self.held.pending.sign_with}"
        if decision.state == "Refused":
            return SpecError(text, reason="QuorumRefused")
        if decision.state == "Expired":
            return SpecError(text, reason="QuorumExpired")
        return GateClosed(text, reason=AWAITING)


def decide(
    change: Change,
    rules: Sequence[Rule],
    state: InForce,
    *,
    cluster: ClusterPort,
    ledger: LedgerPort,
    actor: str,
    tenant: str,
    now: datetime,
) -> Gate:
    """Decide ``change``; an approval is recorded (with its envelopes) before the caller acts on it."""
    who = requesters.requester(ledger, change)
    held = hold(
        change, rules=rules, policy=state, judged=judged(cluster, state, change.target.uid, now), requester=who, now=now
    )
    kind = change.target.kind.lower()
    ref = ResourceRef(kind=change.target.kind, name=change.target.name, uid=change.target.uid)
    key = f"{change.action}:{change.digest}:{change.target.generation}"
    action = DECISION if held.decision.approved else HELD
    record_details = held.ledger_details(who)
    # The rules decided under, by action: an auditor re-runs the decision from the ledger alone.
    record_details["rules"] = [rule.action for rule in rules]
    if not held.decision.approved:
        record_details = {k: v for k, v in record_details.items() if k != "approvals"}
        record_details["decision"] = "Held"
        record_details["message"] = ""
    ledger.append(
        event(
            kind=kind,
            uid=change.target.uid,
            tenant=tenant,
            actor=actor,
            action=action,
            resource=ref,
            change=key,
            details=record_details,
        )
    )
    return Gate(held=held, requester=who)


class _Reads(Protocol):
    @property
    def cluster(self) -> ClusterPort: ...

    @property
    def ledger(self) -> LedgerPort: ...


def decide_object(
    change: Change, rules: Sequence[Rule], state: InForce, *, ports: _Reads, actor: str, now: datetime
) -> Gate:
    """:func:`decide` for a change of a cluster-wide object (a policy, a framework): no tenant's chain."""
    return decide(change, rules, state, cluster=ports.cluster, ledger=ports.ledger, actor=actor, tenant="", now=now)


def decided(gate: Gate) -> tuple[str, str, datetime | None]:
    """What the metrics keep of a decision: its action, state, and when its first counted approval lapses."""
    return gate.held.change.action, gate.held.decision.state, gate.held.expires


def with_gates(done: status.Done, gates: Sequence[Gate]) -> status.Done:
    """``done`` with the held gates in ``pending`` (none: cleared) and the first one's condition."""
    facts = {**done.facts, "pending": [g.held.pending for g in gates]}
    return replace(done, facts=facts, held=gates[0].error() if gates else None)


def dedupe(rules: Sequence[Rule]) -> list[Rule]:
    seen: dict[str, Rule] = {}
    for rule in rules:
        seen.setdefault(rule.action, rule)
    return list(seen.values())


BYPASSED = "bypassed-quorum"
