"""The quorum gates of a Tenant: its deletion (and crypto-shred), and changes to the gate itself.

What gates a tenant is its gate in force (``tenant-gate-in-force`` in the ledger: the
quorumPolicyRef, deletionPolicy and protectionPolicyRef last approved, or first seen), not its
spec: removing or changing the quorumPolicyRef, switching deletionPolicy to CryptoShred, or
moving the protectionPolicyRef to a weaker ProtectionPolicy (or to none, or to one that does not
exist) is itself a gated action (``ChangeQuorumGate``) approved under the policies in force before
the change, and until then the old gate keeps deciding, deletion included, and the old
ProtectionPolicy keeps protecting the workloads. Changes that only make the gate stricter (a ref
added where there was none, CryptoShred switched back to Retain, a move to a ProtectionPolicy at
least as strong) are in force at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from privatevault.api.v1alpha1 import API_VERSION, Tenant
from privatevault.api.v1alpha1.protectionpolicy import ProtectionPolicySpec
from privatevault.api.v1alpha1.quorumpolicy import Rule
from privatevault.errors import SpecError
from privatevault.ledger import ResourceRef
from privatevault.quorum import changes
from privatevault.quorum.changes import Change
from privatevault.quorum.gate import InForce
from privatevault.reconcile import quorum
from privatevault.reconcile.audit import event
from privatevault.reconcile.ports import LedgerPort, TenantPorts
from privatevault.reconcile.protectionpolicy_gate import latest as protection_in_force
from privatevault.reconcile.strength import is_weakening

IN_FORCE = "tenant-gate-in-force"


def ref(tenant: Tenant) -> ResourceRef:
    return ResourceRef(kind="Tenant", name=str(tenant.metadata["name"]), uid=str(tenant.metadata["uid"]))


def decide(
    tenant: Tenant,
    change: Change,
    rules: Sequence[Rule],
    policy: InForce,
    *,
    ports: TenantPorts,
    actor: str,
    now: datetime,
) -> quorum.Gate:
    """``quorum.decide`` for a change of this tenant (its records carry the tenant's name)."""
    return quorum.decide(
        change,
        rules,
        policy,
        cluster=ports.cluster,
        ledger=ports.ledger,
        actor=actor,
        tenant=str(tenant.metadata["name"]),
        now=now,
    )


def in_force(ports: TenantPorts, tenant: Tenant) -> dict[str, Any] | None:
    found = quorum.latest(ports.ledger, "tenant", str(tenant.metadata["uid"]), IN_FORCE)
    return changes.gate_fields(found) if found is not None else None


def protection_ref(ledger: LedgerPort, tenant: Tenant) -> str | None:
    """The ProtectionPolicy that protects the tenant's workloads: the one in force, not the spec's.

    A move to a weaker policy waits for its approval while the policy in force keeps protecting.
    A tenant never recorded (its reconcile has not run yet), or recorded before the ref was part of
    its gate, is protected as its spec says.
    """
    found = quorum.latest(ledger, "tenant", str(tenant.metadata["uid"]), IN_FORCE)
    if found is None or "protectionPolicyRef" not in found:
        return tenant.spec.protection_policy_ref
    ref = found["protectionPolicyRef"]
    return str(ref) if ref else None


def _record(ports: TenantPorts, actor: str, tenant: Tenant, fields: Mapping[str, Any], why: str) -> None:
    generation = int(tenant.metadata.get("generation") or 0)
    ports.ledger.append(
        event(
            kind="tenant",
            uid=str(tenant.metadata["uid"]),
            tenant=str(tenant.metadata["name"]),
            actor=actor,
            action=IN_FORCE,
            resource=ref(tenant),
            change=f"{generation}:{fields['quorumPolicyRef']}:{fields['deletionPolicy']}:{fields['protectionPolicyRef']}",
            details={**fields, "generation": generation, "why": why},
        )
    )


def change(
    tenant: Tenant, body: Mapping[str, Any], *, ports: TenantPorts, actor: str, now: datetime
) -> list[quorum.Gate]:
    """Bring the spec's gate into force, or hold it: returns the held gates while it waits.

    One change (``ChangeQuorumGate``, bound to the new spec) may be decided under two policies: the
    tenant's own QuorumPolicy in force, and the one gating the ProtectionPolicy the tenant leaves
    for a weaker one (whose own weakening gate the move would route around). It is in force once
    every one of them approves it.
    """
    wanted = changes.gate_fields(body.get("spec") or {})
    known = in_force(ports, tenant)
    if known == wanted:
        return []
    if known is None:
        # No gate, nothing to keep: a tenant with neither a quorum nor a protection policy records none.
        if wanted["quorumPolicyRef"] or wanted["protectionPolicyRef"]:
            _record(ports, actor, tenant, wanted, "first seen")
        return []
    own = _policy(ports, known["quorumPolicyRef"])
    move = protection_move(ports, known, wanted)
    deciders = _deciders(known, wanted, own, move)
    if not deciders:
        weaker = _weakens(known, wanted) or move is not None
        why = f"no quorum policy in force gates it{f' ({move.reason})' if move else ''}"
        _record(ports, actor, tenant, wanted, why if weaker else "not weaker")
        return []
    moved = changes.new_spec("ChangeQuorumGate", body)
    gates = [decide(tenant, moved, rules, policy, ports=ports, actor=actor, now=now) for policy, rules in deciders]
    held = [gate for gate in gates if not gate.approved]
    if not held:
        _record(ports, actor, tenant, wanted, "approved")
    return held


def _policy(ports: TenantPorts, name: Any) -> InForce | None:
    return quorum.policy(ports.ledger, str(name)).in_force if name else None


@dataclass(frozen=True)
class ProtectionMove:
    """The tenant's protectionPolicyRef moved away from a policy that still protects its workloads."""

    #: Why the protection weakens (``moves_weaker``), or None when the target protects as well.
    weaker: str | None
    #: Why the target escapes the gate of the policy left (``leaves_gate``), or None.
    gate_moved: str | None
    #: The QuorumPolicy in force of the ProtectionPolicy left, when it has one.
    left_gate: InForce | None

    @property
    def reason(self) -> str:
        return "; ".join(r for r in (self.weaker, self.gate_moved) if r)


def protection_move(ports: TenantPorts, known: Mapping[str, Any], wanted: Mapping[str, Any]) -> ProtectionMove | None:
    """Gather the two ProtectionPolicies as in force and decide what the move does to the protection."""
    old_name, new_name = known["protectionPolicyRef"], wanted["protectionPolicyRef"]
    if not old_name or old_name == new_name:
        return None
    left = _protection(ports, str(old_name))
    if left is None:
        return None  # the policy left is gone: nothing of it protects the workloads any more
    target = _protection(ports, str(new_name)) if new_name else None
    weaker = moves_weaker(left, target, str(new_name) if new_name else None)
    gate_moved = leaves_gate(left, target, str(new_name) if new_name else None)
    if weaker is None and gate_moved is None:
        return None
    return ProtectionMove(weaker, gate_moved, _policy(ports, left.quorum_policy_ref))


def moves_weaker(
    left: ProtectionPolicySpec, target: ProtectionPolicySpec | None, target_name: str | None
) -> str | None:
    """Why moving a tenant from the policy ``left`` (as in force) to ``target_name`` weakens its
    protection, or None when the target protects at least as well (``strength.is_weakening``)."""
    if target_name is None:
        return "removes the tenant's protectionPolicyRef: its workloads would lose their protection"
    if target is None:
        return f"ProtectionPolicy {target_name} does not exist: the move waits like a weakening"
    weaker, reason = is_weakening(left, target)
    return f"ProtectionPolicy {target_name} {reason}" if weaker else None


def leaves_gate(left: ProtectionPolicySpec, target: ProtectionPolicySpec | None, target_name: str | None) -> str | None:
    """Why the move takes the workloads out from under the left policy's QuorumPolicy, or None.

    A policy as strong but gated by another QuorumPolicy (or none) could then be weakened in place
    under that other gate: the same route as changing the left policy's own quorumPolicyRef.
    """
    gate = left.quorum_policy_ref
    if gate is None or (target is not None and target.quorum_policy_ref == gate):
        return None
    where = f"ProtectionPolicy {target_name}" if target_name else "no ProtectionPolicy"
    other = target.quorum_policy_ref if target is not None else None
    return f"{where} is gated by {f'QuorumPolicy {other}' if other else 'no QuorumPolicy'}, not {gate}"


def _protection(ports: TenantPorts, name: str) -> ProtectionPolicySpec | None:
    """A ProtectionPolicy's spec in force (the last approved one when it has a gate), or None when absent."""
    body = ports.cluster.get(API_VERSION, "ProtectionPolicy", name)
    if body is None:
        return None
    found = protection_in_force(ports.ledger, name, str(body["metadata"]["uid"]))
    return ProtectionPolicySpec.model_validate(found["spec"] if found is not None else body.get("spec") or {})


def _deciders(
    known: Mapping[str, Any], wanted: Mapping[str, Any], own: InForce | None, move: ProtectionMove | None
) -> list[tuple[InForce, list[Rule]]]:
    """The policies that decide the change, each with its rules (none: in force at once)."""
    out: dict[str, tuple[InForce, list[Rule]]] = {}

    def add(policy: InForce | None, rules: Sequence[Rule]) -> None:
        if policy is None or not rules:
            return
        before = out[policy.name][1] if policy.name in out else []
        out[policy.name] = (policy, quorum.dedupe([*before, *rules]))

    if own is not None and _weakens(known, wanted):
        rules = own.rules("ChangeQuorumGate")
        if known["quorumPolicyRef"] != wanted["quorumPolicyRef"]:
            rules += list(own.spec.rules)
        if known["deletionPolicy"] != "CryptoShred" and wanted["deletionPolicy"] == "CryptoShred":
            rules += own.rules("CryptoShred", "DeleteTenant")
        add(own, rules)
    if move is not None:
        # Decided as the same edit of the policy left would be (``protectionpolicy_gate``) ...
        left = move.left_gate
        if left is not None:
            add(left, left.rules("WeakenProtectionPolicy") if move.weaker else [])
            add(left, (left.rules("ChangeQuorumGate") or list(left.spec.rules)) if move.gate_moved else [])
        # ... and as a weaker change of the tenant's own gate.
        if own is not None and move.weaker:
            add(own, own.rules("ChangeQuorumGate", "WeakenProtectionPolicy"))
    return list(out.values())


def _weakens(known: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return bool(known["quorumPolicyRef"] != wanted["quorumPolicyRef"]) or (
        known["deletionPolicy"] != "CryptoShred" and wanted["deletionPolicy"] == "CryptoShred"
    )


@dataclass(frozen=True)
class Deletion:
    deletion_policy: str
    gate: quorum.Gate | None


def deletion(tenant: Tenant, body: Mapping[str, Any], *, ports: TenantPorts, actor: str, now: datetime) -> Deletion:
    """The deletion under the gate in force: approved (or ungated), or held with what it waits for."""
    known = in_force(ports, tenant) or changes.gate_fields(body.get("spec") or {})
    policy_name, deletion_policy = known["quorumPolicyRef"], str(known["deletionPolicy"])
    if not policy_name:
        return Deletion(deletion_policy, None)
    state = quorum.policy(ports.ledger, policy_name)
    if state.deleted:
        return Deletion(deletion_policy, None)
    if state.in_force is None:
        raise SpecError(
            f"the tenant names QuorumPolicy {policy_name}, which has never been in force: its deletion can never"
            " be approved; create the QuorumPolicy (or ask a cluster admin)",
            reason="QuorumRefused",
        )
    rules = state.in_force.rules("DeleteTenant", *(["CryptoShred"] if deletion_policy == "CryptoShred" else []))
    if not rules:
        return Deletion(deletion_policy, None)
    gate = decide(tenant, changes.deletion(body), rules, state.in_force, ports=ports, actor=actor, now=now)
    return Deletion(deletion_policy, gate)


def bypassed(body: Mapping[str, Any], *, ledger: LedgerPort, actor: str) -> str | None:
    """A Tenant gone without its deletion decided (its finalizer stripped): record ``bypassed-quorum``.

    Returns the name of the QuorumPolicy whose gate was bypassed, or None when the deletion was
    decided (its ``delete-tenant`` record exists) or nothing gated it. The record is kept under the
    policy, whose status then shows it.
    """
    meta = body.get("metadata") or {}
    uid, name = str(meta.get("uid", "")), str(meta.get("name", ""))
    if ledger.find(f"tenant/{uid}/delete-tenant/", limit=1):
        return None
    found = quorum.latest(ledger, "tenant", uid, IN_FORCE)
    known = changes.gate_fields(found if found is not None else body.get("spec") or {})
    policy_name = known["quorumPolicyRef"]
    if not policy_name:
        return None
    state = quorum.policy(ledger, str(policy_name))
    if state.in_force is None or not state.in_force.rules("DeleteTenant"):
        return None
    ledger.append(
        event(
            kind="quorumpolicy",
            uid=str(policy_name),
            tenant=name,
            actor=actor,
            action=quorum.BYPASSED,
            resource=ResourceRef(kind="Tenant", name=name, uid=uid),
            change=uid,
            details={"kind": "Tenant", "deletionPolicy": known["deletionPolicy"], "gate": "DeleteTenant"},
        )
    )
    return str(policy_name)
