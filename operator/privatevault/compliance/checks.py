"""The check library: what a control's ``checks[].name`` may say, with its parameters.

Each check is a pure function of its (validated, compiled once) parameters, one tenant's facts,
the cluster's facts and the instant: it returns a :class:`Finding` whose reason a person reads
("namespace acme-dev has no ResourceQuota") and whose evidence names the objects and ledger
records it looked at (``Namespace/acme-dev``, ``ledger:412``).

Names and parameters are fixed by ``docs/design/compliance.md``; ``docs/compliance-checks.md``
is generated from :data:`LIBRARY` (``make generate``). The API's enum of names
(``privatevault.api.v1alpha1.complianceframework.CHECK_NAMES``) must list the same names — a unit
test holds them equal, since the API layer may not import this package.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, Generic, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from privatevault.api.v1alpha1.complianceframework import Check
from privatevault.errors import SpecError
from privatevault.manifests.tenant import NETWORK_POLICY_NAME, OWNERS_BINDING_NAME, QUOTA_NAME

from .facts import CertFact, ClusterFacts, NamespaceFacts, TenantFacts

Outcome = Literal["pass", "fail", "not-applicable", "unknown"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("pass", "fail", "not-applicable", "unknown")

PSA_LABEL: Final = "pod-security.kubernetes.io/enforce"
CNSA2: Final = frozenset({"ML-KEM-1024", "ML-DSA-87", "AES-256-GCM"})
QUANTUM_SAFE_MODES: Final = frozenset({"PQC", "Hybrid"})
#: How many objects a reason names before it says "and N more".
NAMED: Final = 3


@dataclass(frozen=True, slots=True)
class Finding:
    outcome: Outcome
    reason: str
    evidence: tuple[str, ...] = ()


class Params(BaseModel):
    """Base of the parameter models: camelCase on the wire only, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, extra="forbid", frozen=True)


P = TypeVar("P", bound=Params)
Run = Callable[[P, TenantFacts, ClusterFacts, datetime], Finding]


@dataclass(frozen=True)
class CheckSpec(Generic[P]):
    """A check of the library: what it checks, what it reads, why it maps to controls."""

    name: str
    summary: str
    reads: tuple[str, ...]
    why: str
    outcomes: Mapping[str, str]
    params: type[P]
    run: Run[P]


@dataclass(frozen=True, slots=True)
class CompiledCheck:
    """A check with its parameters validated once: calling it is a plain function call."""

    name: str
    params: Params
    run: Callable[[Params, TenantFacts, ClusterFacts, datetime], Finding]
    #: The check and its parameters in canonical form: equal keys give equal findings on the same facts.
    key: str

    def __call__(self, tenant: TenantFacts, cluster: ClusterFacts, now: datetime) -> Finding:
        return self.run(self.params, tenant, cluster, now)


# -- helpers ---------------------------------------------------------------------------------------


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:NAMED])
    return shown if len(items) <= NAMED else f"{shown} and {len(items) - NAMED} more"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}es" if word.endswith("s") else f"{n} {word}s"


def _no_namespaces(tenant: TenantFacts) -> Finding:
    return Finding("unknown", f"tenant {tenant.name} has no namespaces yet", (f"Tenant/{tenant.name}",))


def _every_namespace(
    tenant: TenantFacts, ok: Callable[[NamespaceFacts], bool], passed: str, failed: str, ref: Callable[[str], str]
) -> Finding:
    """pass when ``ok`` holds for every namespace; ``failed`` is formatted with the names that fail."""
    if not tenant.namespaces:
        return _no_namespaces(tenant)
    bad = [ns.name for ns in tenant.namespaces if not ok(ns)]
    if bad:
        noun = "namespace" if len(bad) == 1 else "namespaces"
        return Finding("fail", failed.format(noun=noun, names=_names(bad)), tuple(f"Namespace/{n}" for n in bad))
    return Finding("pass", passed, tuple(ref(ns.name) for ns in tenant.namespaces))


def _age_days(then: datetime, now: datetime) -> float:
    return (now - then) / timedelta(days=1)


def _tenant_ref(tenant: TenantFacts) -> str:
    return f"Tenant/{tenant.name}"


# -- the checks ------------------------------------------------------------------------------------


class NoParams(Params):
    pass


def pod_security_restricted(_: NoParams, tenant: TenantFacts, __: ClusterFacts, ___: datetime) -> Finding:
    return _every_namespace(
        tenant,
        lambda ns: ns.label(PSA_LABEL) == "restricted",
        "every namespace enforces Pod Security restricted",
        f"Pod Security restricted ({PSA_LABEL}) is not enforced in {{noun}} {{names}}",
        lambda n: f"Namespace/{n}",
    )


def network_default_deny(_: NoParams, tenant: TenantFacts, __: ClusterFacts, ___: datetime) -> Finding:
    return _every_namespace(
        tenant,
        lambda ns: ns.has_default_deny,
        "every namespace has the default-deny NetworkPolicy",
        f"the default-deny NetworkPolicy {NETWORK_POLICY_NAME} is missing in {{noun}} {{names}}",
        lambda n: f"NetworkPolicy/{n}/{NETWORK_POLICY_NAME}",
    )


class OwnersParams(Params):
    min_owners: int = Field(default=1, ge=1, le=64)


def owners_defined(params: OwnersParams, tenant: TenantFacts, _: ClusterFacts, __: datetime) -> Finding:
    if tenant.owners < params.min_owners:
        return Finding(
            "fail",
            f"tenant {tenant.name} has {_plural(tenant.owners, 'owner')}, fewer than {params.min_owners}",
            (_tenant_ref(tenant),),
        )
    return _every_namespace(
        tenant,
        lambda ns: ns.owner_binding,
        f"tenant {tenant.name} has {_plural(tenant.owners, 'owner')}, bound in every namespace",
        f"the owners' RoleBinding {OWNERS_BINDING_NAME} is missing in {{noun}} {{names}}",
        lambda n: f"RoleBinding/{n}/{OWNERS_BINDING_NAME}",
    )


class QuotaParams(Params):
    resources: list[str] = Field(default_factory=list, max_length=32)


def quota_set(params: QuotaParams, tenant: TenantFacts, _: ClusterFacts, __: datetime) -> Finding:
    if not tenant.namespaces:
        return _no_namespaces(tenant)
    wanted = frozenset(params.resources)
    problems: list[str] = []
    bad: list[str] = []
    for ns in tenant.namespaces:
        if ns.quota_hard is None:
            problems.append(f"namespace {ns.name} has no ResourceQuota")
            bad.append(f"Namespace/{ns.name}")
        elif missing := wanted - ns.quota_hard:
            problems.append(f"the ResourceQuota of namespace {ns.name} does not limit {', '.join(sorted(missing))}")
            bad.append(f"ResourceQuota/{ns.name}/{QUOTA_NAME}")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return Finding("fail", problems[0] + more, tuple(bad))
    limits = f", limiting {', '.join(sorted(wanted))}" if wanted else ""
    return Finding(
        "pass",
        f"every namespace has a ResourceQuota{limits}",
        tuple(f"ResourceQuota/{ns.name}/{QUOTA_NAME}" for ns in tenant.namespaces),
    )


def mcs_level_unique(_: NoParams, tenant: TenantFacts, __: ClusterFacts, ___: datetime) -> Finding:
    level = tenant.mcs_level
    if level is None:
        return Finding("fail", f"tenant {tenant.name} has no MCS level", (_tenant_ref(tenant),))
    if tenant.mcs_holders:
        others = sorted(tenant.mcs_holders)
        return Finding(
            "fail",
            f"MCS level {level} is also held by {_names(others)}",
            (_tenant_ref(tenant), *(f"Tenant/{o}" for o in others)),
        )
    return _every_namespace(
        tenant,
        lambda ns: ns.mcs_label == level,
        f"MCS level {level} is the tenant's alone and labels every namespace",
        f"MCS level {level} does not label {{noun}} {{names}}",
        lambda n: f"Namespace/{n}",
    )


class KmsParams(Params):
    providers: list[str] = Field(default_factory=lambda: ["vault"], min_length=1, max_length=16)


def kek_external_kms(params: KmsParams, tenant: TenantFacts, _: ClusterFacts, __: datetime) -> Finding:
    provider = tenant.kms_provider
    if provider is None:
        return Finding("unknown", f"tenant {tenant.name} has no key provider in its status yet", (_tenant_ref(tenant),))
    if provider not in params.providers:
        allowed = ", ".join(params.providers)
        return Finding(
            "fail", f"the key encryption key is held by {provider}, not by {allowed}", (_tenant_ref(tenant),)
        )
    return Finding("pass", f"the key encryption key is held by {provider}", (_tenant_ref(tenant),))


class DaysParams(Params):
    days: int = Field(default=90, ge=1, le=3650)


def kek_rotated_within(params: DaysParams, tenant: TenantFacts, _: ClusterFacts, now: datetime) -> Finding:
    when = tenant.kek_rotated or tenant.kek_created
    seq = tenant.ledger_ref("kek")
    evidence = (_tenant_ref(tenant), *((f"ledger:{seq}",) if seq is not None else ()))
    if when is None:
        return Finding("unknown", f"tenant {tenant.name} has no key encryption key yet", evidence)
    verb = "rotated" if tenant.kek_rotated else "created"
    age = _age_days(when, now)
    if age > params.days:
        return Finding(
            "fail", f"the key encryption key was last {verb} {int(age)} days ago (> {params.days})", evidence
        )
    return Finding("pass", f"the key encryption key was {verb} {int(age)} days ago (≤ {params.days})", evidence)


def workloads_quantum_safe(_: NoParams, tenant: TenantFacts, __: ClusterFacts, ___: datetime) -> Finding:
    if not tenant.workloads:
        return Finding("not-applicable", f"tenant {tenant.name} has no Deployment or StatefulSet", ())
    bad: list[str] = []
    unknown: list[str] = []
    policies: set[str] = set()
    for w in tenant.workloads:
        ref = f"{w.kind}/{w.namespace}/{w.name}"
        policy = tenant.policy(w.policy) if w.protected else None
        if not w.protected:
            bad.append(ref)
        elif policy is None:
            unknown.append(ref)
        elif not policy.ready or policy.mode not in QUANTUM_SAFE_MODES:
            bad.append(ref)
            policies.add(f"ProtectionPolicy/{policy.name}")
        else:
            policies.add(f"ProtectionPolicy/{policy.name}")
    if bad:
        return Finding(
            "fail",
            f"{_plural(len(bad), 'workload')} not protected by a Ready PQC or Hybrid ProtectionPolicy: "
            f"{_names([b.split('/', 1)[1] for b in bad])}",
            tuple(bad) + tuple(sorted(policies)),
        )
    if unknown:
        return Finding(
            "unknown",
            f"the ProtectionPolicy of {_plural(len(unknown), 'workload')} is not known: "
            f"{_names([u.split('/', 1)[1] for u in unknown])}",
            tuple(unknown),
        )
    return Finding(
        "pass",
        f"all {_plural(len(tenant.workloads), 'workload')} are protected by a Ready PQC or Hybrid ProtectionPolicy",
        tuple(sorted(policies)),
    )


def cnsa2_algorithms(_: NoParams, tenant: TenantFacts, __: ClusterFacts, ___: datetime) -> Finding:
    policy = tenant.protection
    if policy is None:
        return Finding("fail", f"tenant {tenant.name} has no ProtectionPolicy", (_tenant_ref(tenant),))
    ref = (f"ProtectionPolicy/{policy.name}",)
    if not policy.algorithms:
        return Finding("unknown", f"the algorithms of ProtectionPolicy {policy.name} are not known", ref)
    if outside := sorted(policy.algorithms - CNSA2):
        return Finding("fail", f"ProtectionPolicy {policy.name} uses {', '.join(outside)}, outside CNSA 2.0", ref)
    return Finding("pass", f"ProtectionPolicy {policy.name} uses CNSA 2.0 algorithms only", ref)


def _certificates(
    outcome: Outcome,
    head: str,
    certs: list[CertFact],
    name: Callable[[CertFact], str] = lambda c: f"{c.namespace}/{c.name}",
) -> Finding:
    """``head: <the first names>`` with every certificate's Secret as evidence."""
    return Finding(
        outcome, f"{head}: {_names([name(c) for c in certs])}", tuple(f"Secret/{c.namespace}/{c.name}" for c in certs)
    )


class TlsDaysParams(Params):
    days: int = Field(default=30, ge=0, le=3650)


def tls_not_expiring(params: TlsDaysParams, tenant: TenantFacts, _: ClusterFacts, now: datetime) -> Finding:
    if not tenant.certificates:
        return Finding("not-applicable", f"tenant {tenant.name} has no TLS certificates", ())
    horizon = now + timedelta(days=params.days)
    expiring = [c for c in tenant.certificates if c.not_after is not None and c.not_after <= horizon]
    unknown = [c for c in tenant.certificates if c.not_after is None]
    if expiring:
        expired = sum(1 for c in expiring if c.not_after is not None and c.not_after <= now)
        head = (
            f"{_plural(len(expiring), 'certificate')} expired or expiring within {params.days} days ({expired} expired)"
        )
        return _certificates("fail", head, expiring)
    if unknown:
        return _certificates("unknown", f"the expiry of {_plural(len(unknown), 'certificate')} is not known", unknown)
    return Finding("pass", f"no certificate expires within {params.days} days", ())


class RiskParams(Params):
    max_risk: int = Field(default=50, ge=0, le=100)


def tls_quantum_risk_below(params: RiskParams, tenant: TenantFacts, _: ClusterFacts, __: datetime) -> Finding:
    if not tenant.certificates:
        return Finding("not-applicable", f"tenant {tenant.name} has no TLS certificates", ())
    vulnerable = [c for c in tenant.certificates if c.quantum_vulnerable]
    risky = [c for c in vulnerable if c.risk is not None and c.risk > params.max_risk]
    unscored = [c for c in vulnerable if c.risk is None]
    if risky:
        head = f"{_plural(len(risky), 'quantum-vulnerable certificate')} above risk {params.max_risk}"
        return _certificates("fail", head, risky, lambda c: f"{c.namespace}/{c.name} ({c.risk})")
    if unscored:
        return _certificates(
            "unknown", f"{_plural(len(unscored), 'quantum-vulnerable certificate')} not scored yet", unscored
        )
    return Finding("pass", f"no quantum-vulnerable certificate above risk {params.max_risk}", ())


class LedgerParams(Params):
    hours: int = Field(default=24, ge=1, le=8760)
    min_witnesses: int = Field(default=1, ge=0, le=16)


def ledger_verified_within(params: LedgerParams, _: TenantFacts, cluster: ClusterFacts, now: datetime) -> Finding:
    at = cluster.checkpoint_verified_at
    evidence = (f"checkpoint:{cluster.checkpoint_size}",) if cluster.checkpoint_size is not None else ()
    if at is None:
        return Finding("fail", "the ledger's checkpoint has never been proven consistent with the published one", ())
    hours = (now - at) / timedelta(hours=1)
    if hours > params.hours:
        return Finding(
            "fail", f"the ledger's checkpoint was last proven {int(hours)} hours ago (> {params.hours})", evidence
        )
    if cluster.witness_cosignatures < params.min_witnesses:
        return Finding(
            "fail",
            f"the ledger's checkpoint has {_plural(cluster.witness_cosignatures, 'witness cosignature')},"
            f" fewer than {params.min_witnesses}",
            evidence,
        )
    return Finding(
        "pass",
        f"the ledger's checkpoint was proven {int(hours)} hours ago and cosigned by "
        f"{_plural(cluster.witness_cosignatures, 'witness')}",
        evidence,
    )


class QuorumParams(Params):
    min_approvals: int = Field(default=2, ge=1, le=64)
    min_roles: int = Field(default=2, ge=0, le=16)
    actions: list[str] = Field(default_factory=lambda: ["DeleteTenant", "CryptoShred"], min_length=1, max_length=16)


def deletion_quorum(params: QuorumParams, tenant: TenantFacts, _: ClusterFacts, __: datetime) -> Finding:
    policy = tenant.quorum_policy
    if policy is None:
        return Finding("fail", f"no QuorumPolicy is in force for tenant {tenant.name}", (_tenant_ref(tenant),))
    rules = {r.action: r for r in tenant.quorum_rules}
    ref = (f"QuorumPolicy/{policy}",)
    for action in params.actions:
        rule = rules.get(action)
        if rule is None:
            return Finding("fail", f"QuorumPolicy {policy} does not gate {action}", ref)
        if rule.min_approvals < params.min_approvals:
            return Finding(
                "fail",
                f"QuorumPolicy {policy} approves {action} with {rule.min_approvals} approvals"
                f" (< {params.min_approvals})",
                ref,
            )
        if len(rule.roles) < params.min_roles:
            return Finding(
                "fail",
                f"QuorumPolicy {policy} approves {action} with {_plural(len(rule.roles), 'distinct role')}"
                f" (< {params.min_roles})",
                ref,
            )
    return Finding(
        "pass",
        f"QuorumPolicy {policy} requires ≥ {params.min_approvals} approvals and ≥ {params.min_roles} roles"
        f" for {', '.join(params.actions)}",
        ref,
    )


class ExportParams(Params):
    days: int = Field(default=30, ge=1, le=3650)


def evidence_exported_within(params: ExportParams, tenant: TenantFacts, _: ClusterFacts, now: datetime) -> Finding:
    export = tenant.last_export
    if export is None or (export.tenants and tenant.name not in export.tenants):
        return Finding("fail", f"no Ready EvidenceExport covers tenant {tenant.name}", (_tenant_ref(tenant),))
    age = _age_days(export.finished, now)
    ref = (f"EvidenceExport/{export.name}",)
    if age > params.days:
        return Finding("fail", f"the last evidence export {export.name} finished {int(age)} days ago", ref)
    return Finding("pass", f"evidence export {export.name} finished {int(age)} days ago (≤ {params.days})", ref)


class ResidencyParams(Params):
    regions: list[str] = Field(min_length=1, max_length=64)


def data_residency(params: ResidencyParams, tenant: TenantFacts, _: ClusterFacts, __: datetime) -> Finding:
    region = tenant.region
    if region is None:
        return Finding("unknown", f"tenant {tenant.name} names no region", (_tenant_ref(tenant),))
    if region not in params.regions:
        return Finding(
            "fail",
            f"tenant {tenant.name} lives in {region}, outside {', '.join(params.regions)}",
            (_tenant_ref(tenant),),
        )
    return Finding("pass", f"tenant {tenant.name} lives in {region}", (_tenant_ref(tenant),))


class PersonalDataParams(Params):
    label: str = Field(default="privatevault.io/personal-data", min_length=1, max_length=317)


def personal_data_cryptoshred(
    params: PersonalDataParams, tenant: TenantFacts, _: ClusterFacts, __: datetime
) -> Finding:
    if tenant.label(params.label) != "true":
        return Finding("not-applicable", f"tenant {tenant.name} is not labelled {params.label}=true", ())
    if tenant.deletion_policy != "CryptoShred":
        return Finding(
            "fail",
            f"tenant {tenant.name} holds personal data but its deletionPolicy is {tenant.deletion_policy or 'unset'},"
            " not CryptoShred",
            (_tenant_ref(tenant),),
        )
    return Finding(
        "pass", f"tenant {tenant.name} holds personal data and is crypto-shredded on deletion", (_tenant_ref(tenant),)
    )


def manual(_: NoParams, __: TenantFacts, ___: ClusterFacts, ____: datetime) -> Finding:
    return Finding("unknown", "a manual control: unknown until attested", ())


# -- the library -----------------------------------------------------------------------------------

_NAMESPACE_OUTCOMES = {"unknown": "the tenant has no namespaces yet"}


class Doc(NamedTuple):
    """What the reference page says of a check."""

    summary: str
    reads: tuple[str, ...]
    why: str
    outcomes: Mapping[str, str]


def _spec(name: str, params: type[P], run: Run[P], doc: Doc) -> CheckSpec[Any]:
    return CheckSpec(name, doc.summary, doc.reads, doc.why, MappingProxyType(dict(doc.outcomes)), params, run)


_SPECS: Final[tuple[CheckSpec[Any], ...]] = (
    _spec(
        "pod-security-restricted",
        NoParams,
        pod_security_restricted,
        Doc(
            "Every tenant namespace has `pod-security.kubernetes.io/enforce=restricted`.",
            ("the labels of the tenant's namespaces",),
            "Workload hardening: maps to access-restriction and secure-configuration controls"
            " (SOC 2 CC6.1/CC6.8, ISO 27001 A.8.9, NIST 800-53 CM-7).",
            {"pass": "every namespace enforces restricted", "fail": "a namespace does not", **_NAMESPACE_OUTCOMES},
        ),
    ),
    _spec(
        "network-default-deny",
        NoParams,
        network_default_deny,
        Doc(
            "Every tenant namespace has the operator's default-deny NetworkPolicy"
            " (empty podSelector, Ingress and Egress).",
            ("the NetworkPolicies of the tenant's namespaces",),
            "Network isolation between tenants: maps to boundary-protection controls"
            " (SOC 2 CC6.6, ISO 27001 A.8.22, NIST 800-53 SC-7).",
            {"pass": "every namespace has it", "fail": "a namespace lacks it", **_NAMESPACE_OUTCOMES},
        ),
    ),
    _spec(
        "owners-defined",
        OwnersParams,
        owners_defined,
        Doc(
            "`spec.owners` has at least `minOwners` entries and every namespace has the owners' RoleBinding.",
            ("Tenant spec.owners", "the owners' RoleBinding in each namespace"),
            "Accountability for a tenant's data: maps to ownership and access-provisioning controls"
            " (SOC 2 CC6.2, ISO 27001 A.5.9, NIST 800-53 AC-2).",
            {
                "pass": "enough owners, bound everywhere",
                "fail": "too few owners or a binding missing",
                **_NAMESPACE_OUTCOMES,
            },
        ),
    ),
    _spec(
        "quota-set",
        QuotaParams,
        quota_set,
        Doc(
            "Every tenant namespace has a ResourceQuota, limiting each resource named in `resources`.",
            ("the ResourceQuotas of the tenant's namespaces",),
            "Capacity and availability: maps to resource-management controls"
            " (SOC 2 A1.1, ISO 27001 A.8.6, NIST 800-53 SC-6).",
            {
                "pass": "every namespace has a quota with the resources",
                "fail": "a quota is missing or incomplete",
                **_NAMESPACE_OUTCOMES,
            },
        ),
    ),
    _spec(
        "mcs-level-unique",
        NoParams,
        mcs_level_unique,
        Doc(
            "`status.mcsLevel` is set, every namespace is labelled with it, and no other tenant holds it.",
            ("Tenant status.mcsLevel", "the MCS label of the tenant's namespaces", "the MCS levels of other tenants"),
            "Mandatory separation of tenants on shared nodes: maps to information-flow and separation controls"
            " (NIST 800-53 AC-4/SC-4, ISO 27001 A.8.3).",
            {
                "pass": "a unique level on every namespace",
                "fail": "no level, a shared level or an unlabelled namespace",
                **_NAMESPACE_OUTCOMES,
            },
        ),
    ),
    _spec(
        "kek-external-kms",
        KmsParams,
        kek_external_kms,
        Doc(
            "The tenant's key encryption key is held by a provider in `providers` (`status.kms.provider`).",
            ("Tenant status.kms.provider",),
            "Keys held outside the cluster: maps to key-management controls"
            " (SOC 2 CC6.1, ISO 27001 A.8.24, NIST 800-53 SC-12).",
            {"pass": "the provider is allowed", "fail": "another provider", "unknown": "no provider in the status yet"},
        ),
    ),
    _spec(
        "kek-rotated-within",
        DaysParams,
        kek_rotated_within,
        Doc(
            "The key encryption key was rotated (or created) within `days` days.",
            ("Tenant status.kms.rotated / created", "the ledger record of the last rotation"),
            "Cryptoperiods: maps to key-lifecycle controls (ISO 27001 A.8.24, NIST 800-53 SC-12, PCI DSS 3.7.4).",
            {"pass": "rotated recently enough", "fail": "older than `days`", "unknown": "no key yet"},
        ),
    ),
    _spec(
        "workloads-quantum-safe",
        NoParams,
        workloads_quantum_safe,
        Doc(
            "Every Deployment and StatefulSet in the tenant's namespaces is protected by a Ready ProtectionPolicy"
            " of mode PQC or Hybrid.",
            ("the Deployments and StatefulSets of the tenant's namespaces", "the ProtectionPolicies selecting them"),
            "Post-quantum readiness of data in use: maps to cryptographic-protection controls"
            " (NIST 800-53 SC-13, CNSA 2.0 transition, ISO 27001 A.8.24).",
            {
                "pass": "every workload is protected",
                "fail": "a workload is unprotected or its policy is classical or not Ready",
                "unknown": "a workload's policy is not known",
                "not-applicable": "no workloads",
            },
        ),
    ),
    _spec(
        "cnsa2-algorithms",
        NoParams,
        cnsa2_algorithms,
        Doc(
            "The tenant's ProtectionPolicy uses CNSA 2.0 algorithms only (ML-KEM-1024, ML-DSA-87, AES-256-GCM).",
            ("Tenant spec.protectionPolicyRef", "that ProtectionPolicy's algorithms"),
            "National-security cryptography: maps to CNSA 2.0 and NIST 800-53 SC-13.",
            {
                "pass": "CNSA 2.0 only",
                "fail": "no policy or another algorithm",
                "unknown": "the policy's algorithms are not known",
            },
        ),
    ),
    _spec(
        "tls-not-expiring",
        TlsDaysParams,
        tls_not_expiring,
        Doc(
            "No TLS certificate in the tenant's namespaces is expired or expires within `days` days.",
            ("the certificate inventory of the tenant's namespaces",),
            "Availability of encrypted transport: maps to certificate-management controls"
            " (SOC 2 CC6.7, ISO 27001 A.8.24, PCI DSS 4.2.1).",
            {
                "pass": "none expiring",
                "fail": "one expired or expiring",
                "unknown": "an expiry not known",
                "not-applicable": "no certificates",
            },
        ),
    ),
    _spec(
        "tls-quantum-risk-below",
        RiskParams,
        tls_quantum_risk_below,
        Doc(
            "No quantum-vulnerable certificate in the tenant's namespaces has a risk score above `maxRisk`.",
            ("the certificate inventory's quantum risk scores",),
            "Harvest-now-decrypt-later exposure: maps to cryptographic-inventory and migration controls"
            " (NIST 800-53 SC-13/RA-3, CNSA 2.0 transition).",
            {
                "pass": "no risky certificate",
                "fail": "a certificate above maxRisk",
                "unknown": "a vulnerable certificate not scored",
                "not-applicable": "no certificates",
            },
        ),
    ),
    _spec(
        "ledger-verified-within",
        LedgerParams,
        ledger_verified_within,
        Doc(
            "The operator's last checkpoint proven consistent with the published one is younger than `hours` hours"
            " and cosigned by at least `minWitnesses` witnesses.",
            ("the ledger checkpointer's last proof", "the witnesses' cosignatures"),
            "Tamper-evident audit trail: maps to audit-integrity controls"
            " (SOC 2 CC7.2, ISO 27001 A.8.15, NIST 800-53 AU-9/AU-10).",
            {"pass": "recent and cosigned", "fail": "never proven, too old or too few cosignatures"},
        ),
    ),
    _spec(
        "deletion-quorum",
        QuorumParams,
        deletion_quorum,
        Doc(
            "The QuorumPolicy in force for the tenant requires, for each of `actions`, at least `minApprovals`"
            " approvals and at least `minRoles` distinct roles.",
            ("the QuorumPolicy in force for the tenant and its rules",),
            "Separation of duties for destructive actions: maps to dual-control controls"
            " (SOC 2 CC6.1, ISO 27001 A.5.3, NIST 800-53 AC-5, PCI DSS 3.6.1.2).",
            {"pass": "every action gated strongly enough", "fail": "no policy, an action ungated or gated too weakly"},
        ),
    ),
    _spec(
        "evidence-exported-within",
        ExportParams,
        evidence_exported_within,
        Doc(
            "A Ready EvidenceExport covering the tenant finished within `days` days.",
            ("the EvidenceExports covering the tenant",),
            "Audit evidence kept outside the cluster: maps to evidence-retention controls"
            " (SOC 2 CC4.1, ISO 27001 A.5.28, NIST 800-53 AU-11).",
            {"pass": "a recent export", "fail": "none, or too old"},
        ),
    ),
    _spec(
        "data-residency",
        ResidencyParams,
        data_residency,
        Doc(
            "The tenant's `spec.region` is one of `regions` (required, non-empty).",
            ("Tenant spec.region",),
            "Where data lives: maps to data-residency and transfer controls (GDPR Art. 44, ISO 27701, EU Data Act).",
            {"pass": "an allowed region", "fail": "another region", "unknown": "no region"},
        ),
    ),
    _spec(
        "personal-data-cryptoshred",
        PersonalDataParams,
        personal_data_cryptoshred,
        Doc(
            "Tenants labelled `<label>=true` have `deletionPolicy: CryptoShred`.",
            ("the Tenant's labels", "Tenant spec.deletionPolicy"),
            "Erasure of personal data: maps to the right to erasure and secure disposal"
            " (GDPR Art. 17, ISO 27001 A.8.10, NIST 800-53 MP-6).",
            {
                "pass": "labelled and crypto-shredded",
                "fail": "labelled but not crypto-shredded",
                "not-applicable": "not labelled",
            },
        ),
    ),
    _spec(
        "manual",
        NoParams,
        manual,
        Doc(
            "Never passes by itself: `unknown` until an active attestation of the control makes it `pass`.",
            ("the framework's attestations",),
            "Controls no cluster fact can show (training, background checks, physical security) are attested by"
            " people under the framework's QuorumPolicy.",
            {"unknown": "always, until attested"},
        ),
    ),
)

LIBRARY: Final[Mapping[str, CheckSpec[Any]]] = MappingProxyType({s.name: s for s in _SPECS})
CHECK_NAMES: Final[tuple[str, ...]] = tuple(LIBRARY)


def compile_check(control: str, check: Check) -> CompiledCheck:
    """``check`` of control ``control`` with its parameters validated; SpecError when they are wrong."""
    spec = LIBRARY.get(check.name)
    if spec is None:
        raise SpecError(f"control {control}: {check.name!r} is not a check of the library", reason="UnknownCheck")
    try:
        params = spec.params.model_validate(dict(check.params))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise SpecError(
            f"control {control}, check {check.name}: invalid params: {problems}", reason="InvalidCheckParams"
        ) from exc
    key = spec.name + json.dumps(params.model_dump(mode="json", by_alias=True), sort_keys=True)
    return CompiledCheck(name=spec.name, params=params, run=spec.run, key=key)
