"""The one decision: may a gated action go ahead, given the rules, the approvals and the requester?

Pure: everything it needs is handed in (the clock too). The approvals reaching it have had their
signatures checked and are bound to the change (see ``ballots``); here they are counted against
each rule:

- an approval counts once per approver, only while it has not expired (its ``notAfter`` and
  the rule's ``ttl`` from its creation), only with the signatures the rule's mode asks for, only
  from an approver in the allowed regions, and never from the requester when the rule forbids
  self-approval;
- a rule is met when the counted approvers are at least ``minApprovals``, hold every required
  role between them (AND) and sit in at least ``minDistinctRegions`` regions;
- when the requester is unknown (no admission webhook saw the request) and the rule forbids
  self-approval, the rule needs one approval more: the unknown requester might be any of them.

Adding an approval never turns an approved action back into a pending one (every condition is
monotone in the set of counted approvers), so counting everyone eligible is the whole search.
The state is ``Approved`` when every rule is met, ``Refused`` when some rule can never be met by
the approvers there are, ``Expired`` when every approval given has lapsed though they would have
met it (the approvers must sign again), and ``Pending`` otherwise, with what is missing in words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from privatevault.api.v1alpha1.protectionpolicy import duration_seconds
from privatevault.api.v1alpha1.quorumpolicy import Approver, Rule

from .dsse import ALGORITHMS, Algorithm

State = Literal["Approved", "Pending", "Refused", "Expired"]
#: Worst first: the state of several rules is the worst of theirs.
_ORDER: tuple[State, ...] = ("Refused", "Expired", "Pending", "Approved")


@dataclass(frozen=True)
class Ballot:
    """One approval whose signatures verified and which is bound to this exact change."""

    approver: str
    algorithms: frozenset[Algorithm]
    not_after: datetime
    created: datetime
    name: str = ""


@dataclass(frozen=True)
class Requester:
    """Who asked for the action: the Kubernetes user names, or unknown (``users`` empty, not ``known``)."""

    known: bool
    users: frozenset[str] = frozenset()
    name: str = ""

    @classmethod
    def unknown(cls) -> Requester:
        return cls(known=False)

    @classmethod
    def of(cls, *users: str) -> Requester:
        return cls(known=True, users=frozenset(users), name=", ".join(sorted(users)))

    def is_(self, approver: Approver) -> bool:
        return bool(self.users & set(approver.users))


@dataclass(frozen=True)
class RuleOutcome:
    action: str
    state: State
    counted: tuple[str, ...]
    needed: int
    missing: tuple[str, ...]
    lapsed: tuple[str, ...] = ()

    @property
    def approvals(self) -> str:
        return f"{min(len(self.counted), self.needed)}/{self.needed}"


@dataclass(frozen=True)
class Decision:
    state: State
    outcomes: tuple[RuleOutcome, ...]
    message: str

    @property
    def approved(self) -> bool:
        return self.state == "Approved"

    @property
    def approvals(self) -> str:
        """``n/m`` of the first rule not met (of the only rule when all are met)."""
        unmet = [o for o in self.outcomes if o.state != "Approved"]
        return (unmet or list(self.outcomes) or [_NOTHING])[0].approvals

    @property
    def counted(self) -> tuple[str, ...]:
        return tuple(sorted({name for o in self.outcomes for name in o.counted}))


_NOTHING = RuleOutcome(action="", state="Approved", counted=(), needed=0, missing=())


def needed(rule: Rule, requester: Requester) -> int:
    """Approvals the rule needs from this requester's point of view (one more when it is unknown)."""
    return rule.min_approvals + (0 if rule.allow_self_approval or requester.known else 1)


def eligible(rule: Rule, approver: Approver, requester: Requester) -> bool:
    """Whether this approver could count toward ``rule`` at all, whatever they sign."""
    if rule.allowed_regions and approver.region not in rule.allowed_regions:
        return False
    if rule.signature_mode == "hybrid-required" and not approver.public_keys.hybrid:
        return False
    return rule.allow_self_approval or not requester.is_(approver)


def signed_enough(rule: Rule, algorithms: frozenset[Algorithm]) -> bool:
    return set(ALGORITHMS) <= algorithms if rule.signature_mode == "hybrid-required" else bool(algorithms)


def ends(rule: Rule, ballot: Ballot) -> datetime:
    """When the ballot stops counting toward ``rule``: its ``notAfter`` or the rule's ``ttl`` from its creation."""
    return min(ballot.not_after, ballot.created + timedelta(seconds=float(duration_seconds(rule.ttl))))


def live(rule: Rule, ballot: Ballot, now: datetime) -> bool:
    return now < ends(rule, ballot)


def missing(rule: Rule, approvers: Sequence[Approver], requester: Requester) -> list[str]:
    """What the rule still lacks when exactly ``approvers`` count, in words; empty when it is met."""
    out = []
    count, need = len(approvers), needed(rule, requester)
    if count < need:
        out.append(f"{need - count} more approval{'s' if need - count > 1 else ''}")
    held = {role for a in approvers for role in a.roles}
    out += [f"role {role}" for role in rule.required_roles if role not in held]
    # One region is no constraint (approvers need not name theirs); from two on, only named regions count.
    regions = {a.region for a in approvers if a.region}
    if rule.min_distinct_regions > 1 and len(regions) < rule.min_distinct_regions:
        out.append(f"{rule.min_distinct_regions - len(regions)} more distinct region(s)")
    return out


def _outcome(
    rule: Rule, approvers: Sequence[Approver], ballots: Sequence[Ballot], requester: Requester, now: datetime
) -> RuleOutcome:
    by_name = {a.name: a for a in approvers}
    usable = [b for b in ballots if b.approver in by_name and eligible(rule, by_name[b.approver], requester)]
    signed = [b for b in usable if signed_enough(rule, b.algorithms)]
    counted = _distinct(by_name[b.approver] for b in signed if live(rule, b, now))
    need = needed(rule, requester)
    lacking = missing(rule, counted, requester)
    names = tuple(a.name for a in counted)
    if not lacking:
        return RuleOutcome(rule.action, "Approved", names, need, ())
    everyone = [a for a in approvers if eligible(rule, a, requester)]
    if missing(rule, everyone, requester):
        return RuleOutcome(rule.action, "Refused", names, need, tuple(missing(rule, everyone, requester)))
    lapsed = _distinct(by_name[b.approver] for b in signed if not live(rule, b, now) and b.approver not in names)
    gone = tuple(a.name for a in lapsed)
    if not counted and lapsed and not missing(rule, lapsed, requester):
        return RuleOutcome(rule.action, "Expired", names, need, tuple(lacking), gone)
    return RuleOutcome(rule.action, "Pending", names, need, tuple(lacking), gone)


def _distinct(approvers: Iterable[Approver]) -> list[Approver]:
    seen: dict[str, Approver] = {}
    for approver in approvers:
        seen.setdefault(approver.name, approver)
    return list(seen.values())


def _words(outcome: RuleOutcome, *, several: bool, requester: Requester, rule: Rule) -> str:
    head = f"{outcome.action}: " if several else ""
    if outcome.state == "Approved":
        return f"{head}{outcome.approvals} approvals ({', '.join(outcome.counted)})"
    if outcome.state == "Refused":
        return f"{head}can never be approved by the policy's approvers: {'; '.join(outcome.missing)}"
    lacking = "; ".join(
        f"missing {m}" if m.startswith("role") else m for m in outcome.missing if "more approval" not in m
    )
    lacking = f"; {lacking}" if lacking else ""
    if outcome.state == "Expired":
        return f"{head}{outcome.approvals} approvals: approvals expired, sign again{lacking}"
    unknown = (
        "; requester unknown, so one approval more than the minimum"
        if not requester.known and not rule.allow_self_approval
        else ""
    )
    expired = f"; expired: {', '.join(outcome.lapsed)} (sign again)" if outcome.lapsed else ""
    return f"{head}{outcome.approvals} approvals{lacking}{unknown}{expired}"


def decide(
    rules: Sequence[Rule],
    approvers: Sequence[Approver],
    ballots: Sequence[Ballot],
    requester: Requester,
    now: datetime,
) -> Decision:
    """Whether ``ballots`` approve the action under every one of ``rules`` (no rules: approved)."""
    outcomes = tuple(_outcome(rule, approvers, ballots, requester, now) for rule in rules)
    state: State = min((o.state for o in outcomes), key=_ORDER.index, default="Approved")
    several = len(outcomes) > 1
    message = "; and ".join(
        _words(o, several=several, requester=requester, rule=r) for o, r in zip(outcomes, rules, strict=True)
    )
    return Decision(state=state, outcomes=outcomes, message=message or "no rule gates this action")
