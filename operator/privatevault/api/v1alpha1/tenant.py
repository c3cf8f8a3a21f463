"""Tenant: one customer or team, isolated in its own namespaces with its own keys."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Final, Literal

from pydantic import Field, field_validator, model_validator

from .common import (
    AGE,
    DNS_LABEL,
    DNS_SUBDOMAIN,
    REGION,
    Model,
    PrintColumn,
    Resource,
    Status,
    cel,
    ready_columns,
    validations,
)
from .pending import PendingAction
from .resources import Quantity, cel_list, limit_names_rule, limit_order_rules, no_overcommit_rule, quota_rules

LOCALE = r"^[a-z]{2,3}(-[A-Z]{2})?$"
MCS_LEVEL = r"^s0:c[0-9]{1,4},c[0-9]{1,4}$"
SUBJECT_NAME = r"^[A-Za-z0-9]([-A-Za-z0-9_.:@]*[A-Za-z0-9])?$"

#: SELinux categories c0 … c1023, as ``privatevault.mcs.level`` allocates and parses them.
MCS_CATEGORIES: Final = 1024
#: Namespaces every cluster has; none of them can be a tenant's.
SYSTEM_NAMESPACES: Final = ("default", "kube-system", "kube-public", "kube-node-lease")

NAME_LENGTH_MESSAGE: Final = (
    "metadata.name: a Tenant's name has at most 63 characters: it names the tenant's default namespace"
    " and its key, and labels every object made for the tenant; choose a shorter name"
)
NAME_LABEL_MESSAGE: Final = (
    "metadata.name: a Tenant's name must be a DNS label (lowercase letters, digits and '-', beginning and"
    " ending with a letter or digit, no dots): it names the tenant's default namespace and its key"
)
NAME_SYSTEM_MESSAGE: Final = (
    "metadata.name: a Tenant without spec.namespaces gets a namespace named after it, and "
    + ", ".join(SYSTEM_NAMESPACES)
    + " belong to the cluster; choose another name or list the tenant's namespaces in spec.namespaces"
)
SYSTEM_NAMESPACE_MESSAGE: Final = (
    "spec.namespaces cannot name " + ", ".join(SYSTEM_NAMESPACES) + ": they belong to the cluster, not to a tenant"
)
MCS_FORMAT_MESSAGE: Final = (
    "mcsLevel must be an MCS level with two categories, such as s0:c12,c345; leave it out to have a free"
    " level allocated"
)
MCS_RANGE_MESSAGE: Final = (
    f"mcsLevel categories go from c0 to c{MCS_CATEGORIES - 1}, as in s0:c12,c345; leave mcsLevel out to have a"
    " free level allocated"
)
MCS_DISTINCT_MESSAGE: Final = "mcsLevel needs two different categories, as in s0:c12,c345; s0:c7,c7 names only one"
SERVICE_ACCOUNT_NAME_MESSAGE: Final = (
    "a ServiceAccount owner's name must be a ServiceAccount name: a DNS subdomain of lowercase letters,"
    " digits, '-' and '.'"
)
CIDR_MESSAGE: Final = (
    "allowEgressCidrs entries must be networks in CIDR form, such as 10.0.0.0/8 or 2001:db8::/32, with no"
    " bits set after the prefix length and no leading zeros"
)

_MCS_FIRST = "int(self.split(',')[0].substring(4))"
_MCS_SECOND = "int(self.split(',')[1].substring(1))"


def mcs_level_problem(text: str) -> str | None:
    """Why ``text`` is not a level the operator can give a tenant, or None: the CRD's rules, in Python."""
    if not re.fullmatch(MCS_LEVEL, text):
        return MCS_FORMAT_MESSAGE
    first, second = (int(part) for part in re.findall(r"c([0-9]+)", text))
    if max(first, second) >= MCS_CATEGORIES:
        return MCS_RANGE_MESSAGE
    if first == second:
        return MCS_DISTINCT_MESSAGE
    return None


Confidentiality = Literal["Public", "Internal", "Confidential", "Restricted", "Secret"]


class Owner(Model):
    """A subject given admin rights in the tenant's namespaces."""

    model_config = Model.model_config | {
        "json_schema_extra": validations(
            cel(
                "self.kind != 'ServiceAccount' || has(self.__namespace__)",
                "a ServiceAccount owner needs the namespace it lives in",
                field_path=".namespace",
            ),
            cel(
                "self.kind == 'ServiceAccount' || !has(self.__namespace__)",
                "only a ServiceAccount owner has a namespace; Users and Groups are cluster-wide",
                field_path=".namespace",
            ),
            cel(
                f"self.kind != 'ServiceAccount' || (size(self.name) <= 253 && self.name.matches(r'{DNS_SUBDOMAIN}'))",
                SERVICE_ACCOUNT_NAME_MESSAGE,
                field_path=".name",
            ),
        )
    }

    kind: Literal["User", "Group", "ServiceAccount"] = Field(description="User, Group or ServiceAccount.")
    name: str = Field(min_length=1, max_length=253, pattern=SUBJECT_NAME)
    namespace: str | None = Field(default=None, max_length=63, pattern=DNS_LABEL)

    @model_validator(mode="after")
    def _namespace_only_for_service_accounts(self) -> Owner:
        if (self.kind == "ServiceAccount") != (self.namespace is not None):
            raise ValueError("only a ServiceAccount owner has a namespace, and it must have one")
        return self


class SecurityLabel(Model):
    """How sensitive the tenant's data is; drives SELinux categories and risk scores."""

    confidentiality: Confidentiality = "Internal"
    integrity: Literal["Low", "Medium", "High"] = "Medium"
    compartments: list[str] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={
            "x-kubernetes-list-type": "set",
            "items": {"type": "string", "maxLength": 63, "pattern": DNS_LABEL},
        },
    )


class Quota(Model):
    """A ResourceQuota's ``hard`` limits for each tenant namespace."""

    hard: dict[str, Quantity] = Field(
        default_factory=dict, json_schema_extra={"maxProperties": 32} | validations(*quota_rules())
    )


def _limits_field() -> dict[str, Any]:
    return {"maxProperties": 8} | validations(limit_names_rule())


class ContainerLimits(Model):
    """A LimitRange for containers in each tenant namespace: min <= defaultRequest <= default <= max."""

    model_config = Model.model_config | {"json_schema_extra": validations(*limit_order_rules(), no_overcommit_rule())}

    default: dict[str, Quantity] = Field(default_factory=dict, json_schema_extra=_limits_field())
    default_request: dict[str, Quantity] = Field(default_factory=dict, json_schema_extra=_limits_field())
    max: dict[str, Quantity] = Field(default_factory=dict, json_schema_extra=_limits_field())
    min: dict[str, Quantity] = Field(default_factory=dict, json_schema_extra=_limits_field())


class NetworkIsolation(Model):
    """Traffic the default-deny policy lets through beyond the tenant's own namespaces."""

    allow_dns: bool = Field(default=True, description="Allow egress to cluster DNS (kube-system).")
    allow_from_namespaces: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Namespaces outside the tenant allowed to send traffic in.",
        json_schema_extra={
            "x-kubernetes-list-type": "set",
            "items": {"type": "string", "maxLength": 63, "pattern": DNS_LABEL},
        },
    )
    allow_egress_cidrs: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="CIDRs the tenant's pods may reach outside the cluster.",
        json_schema_extra={
            "x-kubernetes-list-type": "set",
            "items": {
                "type": "string",
                "maxLength": 43,
                **validations(cel("isCIDR(self) && cidr(self) == cidr(self).masked()", CIDR_MESSAGE)),
            },
        },
    )


class KmsRef(Model):
    """Where the tenant's key-encryption key lives."""

    provider: Literal["local", "vault"] = "local"


class TenantSpec(Model):
    """What a platform team declares for a tenant."""

    owners: list[Owner] = Field(min_length=1, max_length=32)
    region: str = Field(
        max_length=32,
        pattern=REGION,
        description="Data residency region, for example eu-west-1. Immutable.",
        json_schema_extra=validations(
            cel("self == oldSelf", "region is immutable: data residency cannot move; create a new tenant instead")
        ),
    )
    locale: str = Field(default="en-US", max_length=8, pattern=LOCALE)
    security_label: SecurityLabel = Field(default_factory=SecurityLabel)
    namespaces: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Namespaces the tenant owns; default: one named after the tenant.",
        json_schema_extra={
            "x-kubernetes-list-type": "set",
            "items": {"type": "string", "maxLength": 63, "pattern": DNS_LABEL},
            **validations(cel(f"self.all(n, !(n in {cel_list(SYSTEM_NAMESPACES)}))", SYSTEM_NAMESPACE_MESSAGE)),
        },
    )
    quota: Quota = Field(default_factory=Quota)
    limits: ContainerLimits = Field(default_factory=ContainerLimits)
    network: NetworkIsolation = Field(default_factory=NetworkIsolation)
    protection_policy_ref: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_LABEL,
        description="The ProtectionPolicy protecting the tenant's workloads. Moving to a weaker one, to one that"
        " does not exist or to none waits for quorum (ChangeQuorumGate) when the policy left or the tenant has a"
        " QuorumPolicy; until then the policy left keeps protecting.",
    )
    quorum_policy_ref: str | None = Field(default=None, max_length=253, pattern=DNS_LABEL)
    compliance_framework_refs: list[str] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={
            "x-kubernetes-list-type": "set",
            "items": {"type": "string", "maxLength": 253, "pattern": DNS_LABEL},
        },
    )
    kms: KmsRef = Field(default_factory=KmsRef)
    deletion_policy: Literal["Retain", "CryptoShred"] = Field(
        default="Retain",
        description="Retain keeps the tenant's key on deletion; CryptoShred destroys it.",
    )
    mcs_level: str | None = Field(
        default=None,
        max_length=32,
        description=(
            f"SELinux MCS level set by hand (s0:cX,cY: two different categories from c0 to c{MCS_CATEGORIES - 1});"
            " allocated when absent. Immutable."
        ),
        json_schema_extra=validations(
            cel("self == oldSelf", "an MCS level cannot change once set: it labels every file the tenant wrote"),
            cel(f"self.matches(r'{MCS_LEVEL}')", MCS_FORMAT_MESSAGE),
            cel(
                f"!self.matches(r'{MCS_LEVEL}')"
                f" || ({_MCS_FIRST} < {MCS_CATEGORIES} && {_MCS_SECOND} < {MCS_CATEGORIES})",
                MCS_RANGE_MESSAGE,
            ),
            cel(f"!self.matches(r'{MCS_LEVEL}') || {_MCS_FIRST} != {_MCS_SECOND}", MCS_DISTINCT_MESSAGE),
        ),
    )

    @field_validator("namespaces")
    @classmethod
    def _no_system_namespaces(cls, value: list[str]) -> list[str]:
        if any(name in SYSTEM_NAMESPACES for name in value):
            raise ValueError(SYSTEM_NAMESPACE_MESSAGE)
        return value

    @field_validator("mcs_level")
    @classmethod
    def _a_level_the_operator_can_give(cls, value: str | None) -> str | None:
        problem = None if value is None else mcs_level_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class ChildRef(Model):
    """An object the operator made for the tenant, with the uid it had when last seen."""

    kind: str = Field(max_length=64)
    namespace: str | None = Field(default=None, max_length=63)
    name: str = Field(max_length=253)
    uid: str = Field(max_length=64)


class KeyStatus(Model):
    """Facts about the tenant's key-encryption key; never key material."""

    provider: Literal["local", "vault"]
    key_name: str = Field(max_length=253)
    latest_version: int = Field(ge=0)
    created: str = Field(default="", max_length=64)
    rotated: str = Field(default="", max_length=64)


class InventorySummary(Model):
    """The tenant's crypto inventory in numbers (TLS certificates in its namespaces)."""

    total: int = 0
    quantum_vulnerable: int = 0
    expired: int = 0
    expiring_within30_days: int = Field(default=0, alias="expiringWithin30Days")
    unparseable: int = 0
    highest_risk: float = 0.0
    fingerprint: str | None = Field(
        default=None,
        max_length=64,
        description="Digest of the inventory as last recorded in the ledger; an unchanged one is not recorded again.",
    )


class TenantStatus(Status):
    namespaces: list[str] = Field(default_factory=list, max_length=16)
    mcs_level: str | None = Field(default=None, max_length=32)
    kms: KeyStatus | None = None
    crypto_inventory: InventorySummary | None = None
    children: list[ChildRef] = Field(default_factory=list, max_length=160)
    pending: list[PendingAction] = Field(
        default_factory=list, max_length=4, description="Gated actions held until a quorum approves them."
    )


class Tenant(Resource):
    kind: ClassVar[str] = "Tenant"
    plural: ClassVar[str] = "tenants"
    short_names: ClassVar[tuple[str, ...]] = ("pvt",)
    description: ClassVar[str] = "A tenant isolated in its own namespaces, with its own keys and audit trail."
    columns: ClassVar[tuple[PrintColumn, ...]] = (
        *ready_columns(),
        PrintColumn(name="Region", type="string", json_path=".spec.region"),
        PrintColumn(name="Namespaces", type="string", json_path=".status.namespaces"),
        PrintColumn(name="MCS", type="string", json_path=".status.mcsLevel"),
        PrintColumn(name="KMS", type="string", json_path=".status.kms.provider", priority=1),
        PrintColumn(
            name="Quantum-Vulnerable", type="integer", json_path=".status.cryptoInventory.quantumVulnerable", priority=1
        ),
        AGE,
    )

    #: The name becomes the default namespace's name, a label value on every child and part of the
    #: key's names (``privatevault-kek-<name>``, Vault ``tenant-<name>``): a DNS label, as namespaces are.
    rules: ClassVar[tuple[dict[str, str], ...]] = (
        cel("size(self.metadata.name) <= 63", NAME_LENGTH_MESSAGE),
        cel(f"self.metadata.name.matches(r'{DNS_LABEL}')", NAME_LABEL_MESSAGE),
        cel(
            "(has(self.spec.namespaces) && size(self.spec.namespaces) > 0)"
            f" || !(self.metadata.name in {cel_list(SYSTEM_NAMESPACES)})",
            NAME_SYSTEM_MESSAGE,
        ),
    )

    spec: TenantSpec
    status: TenantStatus | None = None

    def namespace_names(self) -> list[str]:
        """The namespaces the tenant owns: as declared, else one named after the tenant."""
        return list(self.spec.namespaces) or [str(self.metadata["name"])]
