"""The quorum gate of a ProtectionPolicy: a weaker spec waits, the approved one stays in force.

The spec in force is kept in the ledger (``protectionpolicy-in-force``), keyed by the policy's
*name* as a QuorumPolicy's is: a policy deleted and made again under the same name (a new uid)
is judged against the spec in force of the one deleted, so deleting a gated policy and applying a
weaker one, or one without a quorumPolicyRef, is a weakening too. Records written before this
were keyed by uid; they are still read for an object that has none under its name. A new spec that is not
weaker (``strength.is_weakening``) and keeps the policy's quorumPolicyRef is in force at once. A
weaker one is ``WeakenProtectionPolicy``; removing or changing the quorumPolicyRef is
``ChangeQuorumGate`` as well: both are decided under the QuorumPolicy named by the spec in force,
and until approved the workloads stay protected as the spec in force says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from privatevault.api.v1alpha1 import ProtectionPolicy
from privatevault.api.v1alpha1.protectionpolicy import ProtectionPolicySpec
from privatevault.api.v1alpha1.quorumpolicy import Rule
from privatevault.ledger import ResourceRef
from privatevault.quorum import changes
from privatevault.quorum.gate import InForce as QuorumInForce
from privatevault.reconcile import quorum
from privatevault.reconcile.audit import event
from privatevault.reconcile.ports import LedgerPort, ProtectionPolicyPorts
from privatevault.reconcile.strength import is_weakening

IN_FORCE = "protectionpolicy-in-force"


@dataclass(frozen=True)
class InForce:
    spec: ProtectionPolicySpec
    generation: int
    gate: quorum.Gate | None = None


def latest(ledger: LedgerPort, name: str, uid: str) -> dict[str, Any] | None:
    """The details of the spec in force of the policy named ``name`` (of object ``uid`` before names
    keyed it); None when there is none, or when its approved deletion is the newest."""
    found = quorum.latest(ledger, "protectionpolicy", name, IN_FORCE) or quorum.latest(
        ledger, "protectionpolicy", uid, IN_FORCE
    )
    return found if found is not None and found.get("spec") is not None else None


def _record(
    ports: ProtectionPolicyPorts, actor: str, body: Mapping[str, Any], why: str, *, deleted: bool = False
) -> None:
    details = {"spec": None if deleted else dict(body.get("spec") or {}), "why": why}
    quorum.record_in_force(
        ports.ledger,
        actor,
        body,
        kind="ProtectionPolicy",
        action=IN_FORCE,
        details=details,
        suffix=":deleted" if deleted else "",
    )


def _gate_rules(state: QuorumInForce, *, weaker: bool, ref_moved: bool) -> list[Rule]:
    """The rules that decide a change of a gated policy: a weakening's, and a gate moved's (or every rule)."""
    rules = state.rules("WeakenProtectionPolicy") if weaker else []
    if ref_moved:
        rules += state.rules("ChangeQuorumGate") or list(state.spec.rules)
    return quorum.dedupe(rules)


def in_force(
    policy: ProtectionPolicy, body: Mapping[str, Any], *, ports: ProtectionPolicyPorts, actor: str, now: datetime
) -> InForce:
    generation = int(policy.metadata.get("generation") or 0)
    found = latest(ports.ledger, str(policy.metadata["name"]), str(policy.metadata["uid"]))
    if found is None:
        if policy.spec.quorum_policy_ref:  # ungated policies keep no spec in force: nothing decides over them
            _record(ports, actor, body, "first seen")
        return InForce(policy.spec, generation)
    old = ProtectionPolicySpec.model_validate(found["spec"])
    old_generation = int(found.get("generation") or 0)
    if old == policy.spec:
        return InForce(policy.spec, old_generation)
    weaker, _ = is_weakening(old, policy.spec)
    ref_moved = old.quorum_policy_ref is not None and old.quorum_policy_ref != policy.spec.quorum_policy_ref
    state = quorum.policy(ports.ledger, old.quorum_policy_ref) if old.quorum_policy_ref else None
    gate_policy = state.in_force if state is not None else None
    rules = _gate_rules(gate_policy, weaker=weaker, ref_moved=ref_moved) if gate_policy is not None else []
    if gate_policy is None or not rules:
        _record(ports, actor, body, "not weaker" if not (weaker or ref_moved) else "no rule gates it")
        return InForce(policy.spec, generation)
    action = "WeakenProtectionPolicy" if weaker else "ChangeQuorumGate"
    gate = quorum.decide_object(changes.new_spec(action, body), rules, gate_policy, ports=ports, actor=actor, now=now)
    if gate.approved:
        _record(ports, actor, body, "approved")
        return InForce(policy.spec, generation)
    return InForce(old, old_generation, gate)


def deletion(body: Mapping[str, Any], *, ports: ProtectionPolicyPorts, actor: str, now: datetime) -> quorum.Gate | None:
    """The deletion of a policy whose spec in force is gated: held until approved (None: not gated).

    Deleting takes the protection off every workload the policy selects and the gate with it, so it
    is decided as the weakest edit would be: the ``WeakenProtectionPolicy`` rules of the QuorumPolicy
    in force, plus its ``ChangeQuorumGate`` rule (or every rule). Approved, the deletion is recorded
    as the spec in force (none), so a policy made again under the name starts afresh. Only the
    ledger decides: ``body`` (whose spec may be one the operator refuses) gives the name and uid,
    and the spec the approval binds.
    """
    meta = body.get("metadata") or {}
    found = latest(ports.ledger, str(meta.get("name")), str(meta.get("uid")))
    old = ProtectionPolicySpec.model_validate(found["spec"]) if found is not None else None
    state = quorum.policy(ports.ledger, old.quorum_policy_ref) if old and old.quorum_policy_ref else None
    rules = _gate_rules(state.in_force, weaker=True, ref_moved=True) if state and state.in_force else []
    if state is None or state.in_force is None or not rules:
        return None
    gate = quorum.decide_object(
        changes.protection_policy_deletion(body), rules, state.in_force, ports=ports, actor=actor, now=now
    )
    if gate.approved:
        _record(ports, actor, body, "deletion approved", deleted=True)
    return gate


def bypassed(body: Mapping[str, Any], *, ports: ProtectionPolicyPorts, actor: str) -> str | None:
    """A gated policy gone without its deletion approved (its finalizer stripped): record ``bypassed-quorum``.

    Returns the QuorumPolicy whose gate was bypassed, or None when the deletion was approved (the
    spec in force is then none) or nothing gated the policy. The record is kept under the
    QuorumPolicy, whose status then shows it, as for a Tenant.
    """
    meta = body.get("metadata") or {}
    name, uid = str(meta.get("name", "")), str(meta.get("uid", ""))
    found = latest(ports.ledger, name, uid)
    ref = ProtectionPolicySpec.model_validate(found["spec"]).quorum_policy_ref if found is not None else None
    state = quorum.policy(ports.ledger, ref).in_force if ref else None
    if ref is None or state is None or not _gate_rules(state, weaker=True, ref_moved=True):
        return None
    ports.ledger.append(
        event(
            kind="quorumpolicy",
            uid=ref,
            tenant="",
            actor=actor,
            action=quorum.BYPASSED,
            resource=ResourceRef(kind="ProtectionPolicy", name=name, uid=uid),
            change=uid,
            details={"kind": "ProtectionPolicy", "gate": "WeakenProtectionPolicy"},
        )
    )
    return ref
