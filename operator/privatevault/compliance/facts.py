"""What the checks read: frozen, hashable facts about one tenant and about the cluster.

The adapter (``privatevault.compliance_facts``) builds them from the watch caches; the checks
never read the cluster. Facts are plain frozen dataclasses, so two builds of an unchanged tenant
compare equal (and hash equal): a caller may skip evaluating facts it has already evaluated at
the same instant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

#: Labels as a sorted tuple of pairs: hashable, and cheap to scan for the one key a check reads.
Labels = tuple[tuple[str, str], ...]


def labels_of(mapping: Mapping[str, str] | None) -> Labels:
    """``mapping`` in the hashable form the facts keep."""
    return tuple(sorted((mapping or {}).items()))


def label(labels: Labels, key: str) -> str | None:
    for k, v in labels:
        if k == key:
            return v
    return None


@dataclass(frozen=True)
class NamespaceFacts:
    name: str
    labels: Labels = ()
    #: The operator's default-deny NetworkPolicy (empty podSelector, Ingress and Egress) exists.
    has_default_deny: bool = False
    #: The resources the namespace's ResourceQuota limits; None when it has no ResourceQuota.
    quota_hard: frozenset[str] | None = None
    #: The RoleBinding granting the tenant's owners their role exists.
    owner_binding: bool = False
    #: The namespace's MCS label (``openshift.io/sa.scc.mcs`` style annotation), if any.
    mcs_label: str | None = None

    def label(self, key: str) -> str | None:
        return label(self.labels, key)


@dataclass(frozen=True)
class WorkloadFact:
    namespace: str
    kind: str
    name: str
    #: A ProtectionPolicy selects the workload.
    protected: bool = False
    #: The name of the ProtectionPolicy that selects it, if any.
    policy: str | None = None


@dataclass(frozen=True)
class CertFact:
    namespace: str
    name: str
    not_after: datetime | None = None
    quantum_vulnerable: bool = False
    #: The inventory's quantum risk score (0..100), None when not scored.
    risk: int | None = None


@dataclass(frozen=True)
class PolicyFacts:
    """A ProtectionPolicy as the checks see it."""

    name: str
    mode: str
    algorithms: frozenset[str] = frozenset()
    ready: bool = False


@dataclass(frozen=True)
class QuorumRuleFacts:
    """A rule of the QuorumPolicy in force: approvals and the distinct roles it requires."""

    action: str
    min_approvals: int
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ExportFact:
    """The tenant's last Ready EvidenceExport."""

    name: str
    finished: datetime
    tenants: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TenantFacts:
    name: str
    uid: str = ""
    generation: int = 0
    labels: Labels = ()
    region: str | None = None
    owners: int = 0
    deletion_policy: str | None = None
    mcs_level: str | None = None
    #: Other tenants holding the same MCS level (empty when the level is unique).
    mcs_holders: frozenset[str] = frozenset()
    kms_provider: str | None = None
    kek_created: datetime | None = None
    kek_rotated: datetime | None = None
    namespaces: tuple[NamespaceFacts, ...] = ()
    workloads: tuple[WorkloadFact, ...] = ()
    certificates: tuple[CertFact, ...] = ()
    #: The tenant's ProtectionPolicy (spec.protectionPolicyRef), None without one.
    protection: PolicyFacts | None = None
    #: Other ProtectionPolicies that select the tenant's workloads (by name), when not ``protection``.
    policies: tuple[PolicyFacts, ...] = ()
    #: The QuorumPolicy in force for the tenant and its rules (empty when none is in force).
    quorum_policy: str | None = None
    quorum_rules: tuple[QuorumRuleFacts, ...] = ()
    last_export: ExportFact | None = None
    #: Ledger records the checks cite as evidence, by name (``"kek"``: the last key creation or
    #: rotation record): pairs of (name, sequence number).
    ledger_refs: tuple[tuple[str, int], ...] = field(default=())

    def label(self, key: str) -> str | None:
        return label(self.labels, key)

    def ledger_ref(self, name: str) -> int | None:
        for key, seq in self.ledger_refs:
            if key == name:
                return seq
        return None

    def policy(self, name: str | None) -> PolicyFacts | None:
        """The ProtectionPolicy called ``name`` among those the facts know."""
        if name is None:
            return None
        if self.protection is not None and self.protection.name == name:
            return self.protection
        return next((p for p in self.policies if p.name == name), None)


@dataclass(frozen=True)
class ClusterFacts:
    """Facts shared by every tenant: the ledger's last proven checkpoint."""

    #: When the operator last proved its checkpoint consistent with the published one.
    checkpoint_verified_at: datetime | None = None
    checkpoint_size: int | None = None
    witness_cosignatures: int = 0
