"""Gates in front of dangerous actions. Today every gate is open; the QuorumPolicy issue closes
them: a gated action then waits (``Reconciling``, "n/m approvals") until enough valid Approvals
exist, and the decision is recorded in the ledger."""

from __future__ import annotations

from dataclasses import dataclass

from privatevault.api.v1alpha1 import ProtectionPolicy, Tenant


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    message: str


OPEN = Decision(True, "NoQuorumPolicy", "no quorum policy gates this action yet")


def tenant_deletion(tenant: Tenant) -> Decision:
    """May the tenant be torn down (and, with CryptoShred, its key destroyed)?"""
    return OPEN


def policy_weakening(policy: ProtectionPolicy) -> Decision:
    """May a weaker protection policy take effect?"""
    return OPEN
