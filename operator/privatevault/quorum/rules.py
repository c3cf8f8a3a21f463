"""QuorumPolicy rules read for people and for the gate: what a rule needs in words, whether the
approvers can ever meet it, whether every key parses, and whether a new spec weakens an old one.

A weakening of a QuorumPolicy is itself a gated action (``WeakenQuorumPolicy``), approved under
the rules in force before it: otherwise the way around a two-person rule would be to edit it
down to one person first.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

from privatevault.api.v1alpha1.protectionpolicy import duration_seconds
from privatevault.api.v1alpha1.quorumpolicy import Approver, QuorumPolicySpec, Rule

from .decision import Requester, eligible, missing
from .dsse import Algorithm, small_order


def in_words(rule: Rule, approvers: Sequence[Approver]) -> str:
    """``2 of 3; roles security AND platform; 2 distinct regions; no self-approval; …``."""
    parts = [f"{rule.min_approvals} of {len(approvers)}"]
    if rule.required_roles:
        parts.append(f"role{'s' if len(rule.required_roles) > 1 else ''} {' AND '.join(rule.required_roles)}")
    if rule.min_distinct_regions > 1:
        parts.append(f"{rule.min_distinct_regions} distinct regions")
    if rule.allowed_regions:
        parts.append(f"regions {', '.join(rule.allowed_regions)} only")
    parts.append("self-approval allowed" if rule.allow_self_approval else "no self-approval")
    parts.append("Ed25519 AND ML-DSA-65 signatures" if rule.signature_mode == "hybrid-required" else "any signature")
    parts.append(f"approvals valid {rule.ttl}")
    return "; ".join(parts)


def unsatisfiable(spec: QuorumPolicySpec) -> list[str]:
    """One message per rule the approvers could never meet, even all approving (requester known)."""
    out = []
    for rule in spec.rules:
        everyone = [a for a in spec.approvers if eligible(rule, a, Requester.of())]
        lacking = missing(rule, everyone, Requester.of())
        if lacking:
            out.append(
                f"rule {rule.action} can never be met: with every eligible approver it lacks {', '.join(lacking)}"
            )
    return out


def public_keys(approver: Approver) -> dict[Algorithm, bytes]:
    keys: dict[Algorithm, bytes] = {}
    if approver.public_keys.ed25519:
        keys["Ed25519"] = base64.b64decode(approver.public_keys.ed25519)
    if approver.public_keys.ml_dsa65:
        keys["ML-DSA-65"] = base64.b64decode(approver.public_keys.ml_dsa65)
    return keys


def unparsable_keys(spec: QuorumPolicySpec) -> list[str]:
    """Approver keys of the right length that are still not keys (the schema checks only the length),
    or Ed25519 keys of small order, under which anyone could forge signatures (no signature counts)."""
    out = []
    for approver in spec.approvers:
        for algorithm, raw in public_keys(approver).items():
            try:
                if algorithm == "Ed25519":
                    ed25519.Ed25519PublicKey.from_public_bytes(raw)
                else:
                    mldsa.MLDSA65PublicKey.from_public_bytes(raw)
            except ValueError:
                out.append(f"approver {approver.name}: the {algorithm} public key does not parse")
                continue
            if algorithm == "Ed25519" and small_order(raw):
                out.append(
                    f"approver {approver.name}: the Ed25519 public key is a point of small order (a placeholder?):"
                    " anyone could forge its signatures, so none counts"
                )
    return out


def _rule_weakened(old: Rule, new: Rule | None) -> list[str]:
    if new is None:
        return ["the rule is removed"]
    out = []
    if new.min_approvals < old.min_approvals:
        out.append(f"minApprovals {old.min_approvals} -> {new.min_approvals}")
    dropped = sorted(set(old.required_roles) - set(new.required_roles))
    if dropped:
        out.append(f"required roles dropped: {', '.join(dropped)}")
    if new.min_distinct_regions < old.min_distinct_regions:
        out.append(f"minDistinctRegions {old.min_distinct_regions} -> {new.min_distinct_regions}")
    if old.allowed_regions and (not new.allowed_regions or set(new.allowed_regions) - set(old.allowed_regions)):
        out.append("more regions allowed")
    if new.allow_self_approval and not old.allow_self_approval:
        out.append("self-approval allowed")
    if old.signature_mode == "hybrid-required" and new.signature_mode != "hybrid-required":
        out.append("hybrid signatures no longer required")
    if duration_seconds(new.ttl) > duration_seconds(old.ttl):
        out.append(f"ttl {old.ttl} -> {new.ttl}")
    return out


def _approvers_weakened(old: QuorumPolicySpec, new: QuorumPolicySpec) -> list[str]:
    before = {a.name: a for a in old.approvers}
    out = []
    for approver in new.approvers:
        was = before.get(approver.name)
        if was is None:
            out.append(f"approver {approver.name} added")
            continue
        old_keys = public_keys(was)
        if any(old_keys.get(alg) != key for alg, key in public_keys(approver).items()):
            out.append(f"approver {approver.name}'s keys changed")
        if set(approver.roles) - set(was.roles):
            out.append(
                f"approver {approver.name} gains roles {', '.join(sorted(set(approver.roles) - set(was.roles)))}"
            )
        if approver.region != was.region:
            out.append(f"approver {approver.name} moves region {was.region} -> {approver.region}")
        if set(was.users) - set(approver.users):
            out.append(
                f"approver {approver.name} no longer acts as {', '.join(sorted(set(was.users) - set(approver.users)))}"
            )
    return out


def weakenings(old: QuorumPolicySpec, new: QuorumPolicySpec) -> tuple[list[Rule], list[str]]:
    """The old rules a change weakens, and why in words; nothing when the new spec is as strict.

    A change to the approvers (one added, a key replaced, a role gained, a region moved, a user
    name dropped so self-approval would go unseen) weakens every rule: each rule's count can be
    met by someone it could not be met by before.
    """
    new_rules = {r.action: r for r in new.rules}
    weakened: list[Rule] = []
    reasons: list[str] = []
    for rule in old.rules:
        why = _rule_weakened(rule, new_rules.get(rule.action))
        if why:
            weakened.append(rule)
            reasons.append(f"{rule.action}: {', '.join(why)}")
    people = _approvers_weakened(old, new)
    if people:
        weakened = list(old.rules)
        reasons += people
    return weakened, reasons
