"""What the compliance checks read, gathered from what the operator already holds: no live GET.

The checks (``privatevault.compliance.checks``) read frozen facts; this adapter builds them from
the watch caches (``cache.ClusterView``: namespaces, the tenants' children, workloads, TLS
Secrets, ProtectionPolicies, EvidenceExports, Tenants with their status), the crypto inventory
the tenant reconcile last computed (``OperatorMetrics.inventories``), the ledger's gates in force
(read once and kept until the tenant or the QuorumPolicy is reconciled again) and the
checkpointer's last finding.

A :class:`Snapshot` is one evaluation's view: what several tenants share (which tenant holds
which MCS level, the Ready EvidenceExports, the ProtectionPolicies) is read once per snapshot.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol

from privatevault.api.v1alpha1 import API_VERSION
from privatevault.api.v1alpha1.protectionpolicy import ProtectionPolicySpec
from privatevault.compliance.facts import (
    CertFact,
    ClusterFacts,
    ExportFact,
    NamespaceFacts,
    PolicyFacts,
    QuorumRuleFacts,
    TenantFacts,
    WorkloadFact,
    labels_of,
)
from privatevault.inventory import Inventory
from privatevault.inventory.asset import Asset, parse_tls_secret
from privatevault.ledger.integrity import Integrity
from privatevault.manifests import labels
from privatevault.manifests.protectionpolicy import protected_by
from privatevault.manifests.tenant import OWNERS_BINDING_NAME
from privatevault.quorum.gate import InForce
from privatevault.reconcile import quorum, tenant_gate
from privatevault.reconcile.ports import LedgerPort

WORKLOAD_KINDS = ("Deployment", "StatefulSet")
_UNREAD = object()


class Reader(Protocol):
    """The cached reads the facts need (``cache.ClusterView``)."""

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def list(
        self, api_version: str, kind: str, *, label_selector: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]: ...


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _ready(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The object's ``Ready=True`` condition for its current generation, or None."""
    generation = (obj.get("metadata") or {}).get("generation")
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            observed = condition.get("observedGeneration")
            return condition if observed in (None, generation) else None
    return None


def policy_facts(obj: Mapping[str, Any]) -> PolicyFacts:
    """A ProtectionPolicy as the checks see it: its mode, its effective algorithms, Ready."""
    name = str(obj["metadata"]["name"])
    try:
        spec = ProtectionPolicySpec.model_validate(obj.get("spec") or {})
    except ValueError:
        return PolicyFacts(name=name, mode="", ready=False)
    profile = spec.effective_profile
    algorithms = frozenset(
        {spec.kem or profile.kem, spec.signature or profile.signature, spec.symmetric or profile.symmetric}
    )
    return PolicyFacts(name=name, mode=profile.mode, algorithms=algorithms, ready=_ready(obj) is not None)


@dataclass
class Gates:
    """The QuorumPolicy in force for each tenant, read from the ledger once and kept.

    The tenant's gate in force (``tenant-gate-in-force``) is dropped when the tenant is reconciled
    again (:meth:`forget_tenant`), a policy's rules in force (``quorumpolicy-in-force``) when the
    QuorumPolicy is (:meth:`forget_policy`): an evaluation reads no ledger row for a tenant it
    read before.
    """

    ledger: LedgerPort
    _gates: dict[str, object] = field(default_factory=dict)
    _policies: dict[str, quorum.PolicyState] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def policy(self, name: str) -> quorum.PolicyState:
        with self._lock:
            found = self._policies.get(name)
        if found is None:
            found = quorum.policy(self.ledger, name)
            with self._lock:
                self._policies[name] = found
        return found

    def tenant_policy(self, uid: str, spec_ref: str | None) -> InForce | None:
        """The rules in force for the tenant ``uid``: its gate in force (else its spec's ref).

        The gate read is kept while it equals the spec's ref: it can only move when the spec does
        (a held change of the gate is read again every time, until it is in force).
        """
        with self._lock:
            kept = self._gates.get(uid, _UNREAD)
        if kept is _UNREAD or kept != spec_ref:
            found = quorum.latest(self.ledger, "tenant", uid, tenant_gate.IN_FORCE)
            kept = str(found["quorumPolicyRef"]) if found and found.get("quorumPolicyRef") else None
            with self._lock:
                self._gates[uid] = kept
        name = kept if isinstance(kept, str) else spec_ref
        return self.policy(name).in_force if name else None

    def forget_tenant(self, uid: str) -> None:
        with self._lock:
            self._gates.pop(uid, None)

    def forget_policy(self, name: str) -> None:
        with self._lock:
            self._policies.pop(name, None)


class Certificates:
    """TLS certificates parsed once per Secret content (a resync of an idle tenant parses nothing)."""

    def __init__(self) -> None:
        self._parsed: dict[bytes, Asset | None] = {}
        self._lock = threading.Lock()

    def asset(self, secret: Mapping[str, Any]) -> Asset | None:
        meta, data = secret.get("metadata") or {}, secret.get("data") or {}
        key = hashlib.sha256(
            f"{meta.get('namespace')}/{meta.get('name')}/{secret.get('type')}/{data.get('tls.crt', '')}".encode()
        ).digest()
        with self._lock:
            if key in self._parsed:
                return self._parsed[key]
        parsed = parse_tls_secret(secret)
        with self._lock:
            if len(self._parsed) > 10_000:
                self._parsed.clear()
            self._parsed[key] = parsed
        return parsed


@dataclass
class Facts:
    """Builds snapshots; one per process, held by the App."""

    cluster: Reader
    gates: Gates
    integrity: Integrity
    #: The crypto inventory each tenant reconcile computed last, by tenant name.
    inventories: Mapping[str, Inventory]
    certificates: Certificates = field(default_factory=Certificates)

    def snapshot(self) -> Snapshot:
        return Snapshot(self)


class Snapshot:
    """One evaluation's view of the caches (see the module docstring)."""

    def __init__(self, facts: Facts) -> None:
        self._facts = facts
        self._cluster = facts.cluster

    @cached_property
    def cluster(self) -> ClusterFacts:
        integrity = self._facts.integrity
        return ClusterFacts(
            checkpoint_verified_at=integrity.verified_at,
            checkpoint_size=integrity.checkpoint_size,
            witness_cosignatures=integrity.cosignatures,
        )

    @cached_property
    def _levels(self) -> dict[str, frozenset[str]]:
        holders: dict[str, set[str]] = {}
        for tenant in self._cluster.list(API_VERSION, "Tenant"):
            level = (tenant.get("status") or {}).get("mcsLevel")
            if level:
                holders.setdefault(str(level), set()).add(str(tenant["metadata"]["name"]))
        return {level: frozenset(names) for level, names in holders.items()}

    @cached_property
    def _policies(self) -> dict[str, PolicyFacts]:
        return {
            str(p["metadata"]["name"]): policy_facts(p) for p in self._cluster.list(API_VERSION, "ProtectionPolicy")
        }

    @cached_property
    def _exports(self) -> list[ExportFact]:
        out = []
        for export in self._cluster.list(API_VERSION, "EvidenceExport"):
            ready = _ready(export)
            finished = _time(ready.get("lastTransitionTime")) if ready else None
            if finished is not None:
                tenants = frozenset(str(t) for t in (export.get("spec") or {}).get("tenants") or [])
                out.append(ExportFact(name=str(export["metadata"]["name"]), finished=finished, tenants=tenants))
        return sorted(out, key=lambda e: (e.finished, e.name), reverse=True)

    def tenant(self, body: Mapping[str, Any]) -> TenantFacts:
        meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
        name, uid = str(meta["name"]), str(meta.get("uid", ""))
        namespaces = [str(n) for n in status.get("namespaces") or []]
        level = status.get("mcsLevel")
        kms = status.get("kms") or {}
        policy_ref = spec.get("protectionPolicyRef")
        workloads = tuple(w for ns in namespaces for w in self._workloads(ns))
        named = {w.policy for w in workloads if w.policy} - {policy_ref}
        in_force = self._facts.gates.tenant_policy(uid, spec.get("quorumPolicyRef")) if uid else None
        return TenantFacts(
            name=name,
            uid=uid,
            generation=int(meta.get("generation") or 0),
            labels=labels_of(meta.get("labels")),
            region=spec.get("region"),
            owners=len(spec.get("owners") or []),
            deletion_policy=spec.get("deletionPolicy") or "Retain",
            mcs_level=level,
            mcs_holders=self._levels.get(str(level), frozenset()) - {name} if level else frozenset(),
            kms_provider=kms.get("provider"),
            kek_created=_time(kms.get("created")),
            kek_rotated=_time(kms.get("rotated")),
            namespaces=tuple(self._namespace(ns) for ns in namespaces),
            workloads=workloads,
            certificates=self._certificates(name, namespaces),
            protection=self._policies.get(policy_ref) if policy_ref else None,
            policies=tuple(self._policies[p] for p in sorted(n for n in named if n in self._policies)),
            quorum_policy=in_force.name if in_force else None,
            quorum_rules=tuple(_rules(in_force)) if in_force else (),
            last_export=next((e for e in self._exports if name in e.tenants), None),
        )

    def _namespace(self, name: str) -> NamespaceFacts:
        found = self._cluster.get("v1", "Namespace", name) or {"metadata": {"name": name}}
        meta = found.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        hard: frozenset[str] | None = None
        for quota in self._cluster.list("v1", "ResourceQuota", namespace=name):
            hard = (hard or frozenset()) | frozenset((quota.get("spec") or {}).get("hard") or {})
        denies = any(
            _default_deny(p) for p in self._cluster.list("networking.k8s.io/v1", "NetworkPolicy", namespace=name)
        )
        binding = self._cluster.get("rbac.authorization.k8s.io/v1", "RoleBinding", OWNERS_BINDING_NAME, name)
        return NamespaceFacts(
            name=name,
            labels=labels_of(meta.get("labels")),
            has_default_deny=denies,
            quota_hard=hard,
            owner_binding=binding is not None,
            mcs_label=annotations.get(labels.MCS_LEVEL) or annotations.get(labels.OPENSHIFT_MCS),
        )

    def _workloads(self, namespace: str) -> list[WorkloadFact]:
        out = []
        for kind in WORKLOAD_KINDS:
            for workload in self._cluster.list("apps/v1", kind, namespace=namespace):
                policy = protected_by(workload) if (workload.get("spec") or {}).get("template") else None
                out.append(
                    WorkloadFact(
                        namespace=namespace,
                        kind=kind,
                        name=str(workload["metadata"]["name"]),
                        protected=policy is not None,
                        policy=policy,
                    )
                )
        return out

    def _certificates(self, tenant: str, namespaces: Sequence[str]) -> tuple[CertFact, ...]:
        found = self._facts.inventories.get(tenant)
        if found is not None:
            return tuple(
                CertFact(
                    namespace=a.asset.namespace,
                    name=a.asset.name,
                    not_after=a.asset.not_after,
                    quantum_vulnerable=bool(a.asset.quantum_vulnerable),
                    risk=round(a.risk),
                )
                for a in found.assessments
            )
        # No tenant reconcile has run in this process yet: the certificates without their risk.
        out = []
        for namespace in namespaces:
            for secret in self._cluster.list("v1", "Secret", namespace=namespace):
                asset = self._facts.certificates.asset(secret)
                if asset is not None:
                    out.append(
                        CertFact(
                            namespace=asset.namespace,
                            name=asset.name,
                            not_after=asset.not_after,
                            quantum_vulnerable=bool(asset.quantum_vulnerable),
                        )
                    )
        return tuple(out)


def _default_deny(policy: Mapping[str, Any]) -> bool:
    """An empty podSelector (every pod) with both Ingress and Egress governed."""
    spec = policy.get("spec") or {}
    selector = spec.get("podSelector") or {}
    return (
        not selector.get("matchLabels")
        and not selector.get("matchExpressions")
        and {
            "Ingress",
            "Egress",
        }
        <= set(spec.get("policyTypes") or [])
    )


def _rules(policy: InForce) -> list[QuorumRuleFacts]:
    return [
        QuorumRuleFacts(action=r.action, min_approvals=r.min_approvals, roles=frozenset(r.required_roles))
        for r in policy.spec.rules
    ]


__all__ = ["Certificates", "Facts", "Gates", "Snapshot", "policy_facts"]
