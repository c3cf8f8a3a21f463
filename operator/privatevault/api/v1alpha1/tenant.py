"""Tenant: one customer or team, isolated in its own namespaces with its own keys."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from .common import (
    AGE,
    DNS_LABEL,
    Model,
    PrintColumn,
    Quantity,
    Resource,
    Status,
    cel,
    ready_columns,
    validations,
)

REGION = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$"
LOCALE = r"^[a-z]{2,3}(-[A-Z]{2})?$"
MCS_LEVEL = r"^s0:c[0-9]{1,4},c[0-9]{1,4}$"
SUBJECT_NAME = r"^[A-Za-z0-9]([-A-Za-z0-9_.:@]*[A-Za-z0-9])?$"

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

    hard: dict[str, Quantity] = Field(default_factory=dict, json_schema_extra={"maxProperties": 32})


class ContainerLimits(Model):
    """A LimitRange for containers in each tenant namespace."""

    default: dict[str, Quantity] = Field(default_factory=dict, json_schema_extra={"maxProperties": 8})
    default_request: dict[str, Quantity] = Field(default_factory=dict, json_schema_extra={"maxProperties": 8})
    max: dict[str, Quantity] = Field(default_factory=dict, json_schema_extra={"maxProperties": 8})
    min: dict[str, Quantity] = Field(default_factory=dict, json_schema_extra={"maxProperties": 8})


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
        json_schema_extra={"x-kubernetes-list-type": "set", "items": {"type": "string", "maxLength": 43}},
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
        },
    )
    quota: Quota = Field(default_factory=Quota)
    limits: ContainerLimits = Field(default_factory=ContainerLimits)
    network: NetworkIsolation = Field(default_factory=NetworkIsolation)
    protection_policy_ref: str | None = Field(default=None, max_length=253, pattern=DNS_LABEL)
    quorum_policy_ref: str | None = Field(default=None, max_length=253, pattern=DNS_LABEL)
    compliance_framework_refs: list[str] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={"items": {"type": "string", "maxLength": 253, "pattern": DNS_LABEL}},
    )
    kms: KmsRef = Field(default_factory=KmsRef)
    deletion_policy: Literal["Retain", "CryptoShred"] = Field(
        default="Retain",
        description="Retain keeps the tenant's key on deletion; CryptoShred destroys it.",
    )
    mcs_level: str | None = Field(
        default=None,
        max_length=32,
        pattern=MCS_LEVEL,
        description="SELinux MCS level set by hand (s0:cX,cY); allocated when absent. Immutable.",
        json_schema_extra=validations(
            cel("self == oldSelf", "an MCS level cannot change once set: it labels every file the tenant wrote")
        ),
    )


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

    spec: TenantSpec
    status: TenantStatus | None = None

    def namespace_names(self) -> list[str]:
        """The namespaces the tenant owns: as declared, else one named after the tenant."""
        return list(self.spec.namespaces) or [str(self.metadata["name"])]
