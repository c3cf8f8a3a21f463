"""The quorum gates of a Tenant: its deletion (and crypto-shred), and changes to the gate itself.

What gates a tenant is its gate in force (``tenant-gate-in-force`` in the ledger: the
quorumPolicyRef and deletionPolicy last approved, or first seen with a quorumPolicyRef), not its
spec: removing or
changing the ref, or switching deletionPolicy to CryptoShred, is itself a gated action
(``ChangeQuorumGate``) approved under the policy in force before the change, and until then the
old gate keeps deciding, deletion included. Changes that only make the gate stricter (a ref
added where there was none, CryptoShred switched back to Retain) are in force at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from privatevault.api.v1alpha1 import Tenant
from privatevault.api.v1alpha1.quorumpolicy import Rule
from privatevault.errors import SpecError
from privatevault.ledger import ResourceRef
from privatevault.quorum import changes
from privatevault.quorum.changes import Change
from privatevault.quorum.gate import InForce
from privatevault.reconcile import quorum
from privatevault.reconcile.audit import event
from privatevault.reconcile.ports import LedgerPort, TenantPorts

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
            change=f"{generation}:{fields['quorumPolicyRef']}:{fields['deletionPolicy']}",
            details={**fields, "generation": generation, "why": why},
        )
    )


def change(
    tenant: Tenant, body: Mapping[str, Any], *, ports: TenantPorts, actor: str, now: datetime
) -> quorum.Gate | None:
    """Bring the spec's gate into force, or hold it: returns the held gate while it waits."""
    wanted = changes.gate_fields(body.get("spec") or {})
    known = in_force(ports, tenant)
    if known == wanted:
        return None
    if known is None:
        if wanted["quorumPolicyRef"]:  # no gate, nothing to keep: a tenant without a policy records none
            _record(ports, actor, tenant, wanted, "first seen")
        return None
    state = quorum.policy(ports.ledger, known["quorumPolicyRef"]) if known["quorumPolicyRef"] else None
    policy = state.in_force if state is not None else None
    if policy is None or not _weakens(known, wanted):
        _record(ports, actor, tenant, wanted, "not weaker" if policy else "no quorum policy in force before")
        return None
    rules = policy.rules("ChangeQuorumGate")
    if known["quorumPolicyRef"] != wanted["quorumPolicyRef"]:
        rules += list(policy.spec.rules)
    if known["deletionPolicy"] != "CryptoShred" and wanted["deletionPolicy"] == "CryptoShred":
        rules += policy.rules("CryptoShred", "DeleteTenant")
    rules = quorum.dedupe(rules)
    if not rules:
        _record(ports, actor, tenant, wanted, "no rule of the policy in force gates it")
        return None
    gate = decide(tenant, changes.new_spec("ChangeQuorumGate", body), rules, policy, ports=ports, actor=actor, now=now)
    if gate.approved:
        _record(ports, actor, tenant, wanted, "approved")
        return None
    return gate


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
