"""ComplianceFramework: controls evaluated continuously against tenants."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Final, Literal, get_args

from pydantic import Field, field_validator, model_validator

from .common import (
    AGE,
    DNS_LABEL,
    DURATION,
    LABEL_VALUE,
    FreeForm,
    Model,
    PrintColumn,
    Resource,
    Status,
    cel,
    is_qualified_name,
    labels_problem,
    qualified_name_cel,
    ready_columns,
    validations,
)
from .evidenceexport import TenantNames
from .pending import PendingAction
from .protectionpolicy import duration_seconds

#: Evaluating every control of every tenant more often than this is load, not assurance.
MIN_INTERVAL: Final = "1m"

LABEL_KEY_MESSAGE: Final = (
    "a label key is a name of at most 63 characters with an optional DNS prefix (tier, example.com/tier):"
    " a key no label can have selects no tenant"
)
VALUES_MESSAGE: Final = "operators In and NotIn need values to compare with, and Exists and DoesNotExist take none"
INTERVAL_MESSAGE: Final = f"interval must be at least {MIN_INTERVAL}: controls are evaluated against every tenant"
EXCEPTION_CONTROL_MESSAGE: Final = "an exception must name one of the framework's controls by its id"
ATTESTATION_CONTROL_MESSAGE: Final = (
    "an attestation must name a manual control of the framework by its id (a control whose only check is manual):"
    " other controls are decided by their checks"
)
QUORUM_POLICY_PINNED_MESSAGE: Final = (
    "quorumPolicyRef cannot change or go once set: the policy that approves this framework's exceptions"
    " would otherwise be chosen by whoever edits it; make a new framework to use another policy"
)
QUORUM_POLICY_MESSAGE: Final = (
    "quorumPolicyRef is required with exceptions or attestations: it names the QuorumPolicy that approves them"
)

#: The check library's names (``privatevault.compliance.checks.LIBRARY``; a unit test holds the two
#: equal, since this layer may not import the compliance package).
CheckName = Literal[
    "pod-security-restricted",
    "network-default-deny",
    "owners-defined",
    "quota-set",
    "mcs-level-unique",
    "kek-external-kms",
    "kek-rotated-within",
    "workloads-quantum-safe",
    "cnsa2-algorithms",
    "tls-not-expiring",
    "tls-quantum-risk-below",
    "ledger-verified-within",
    "deletion-quorum",
    "evidence-exported-within",
    "data-residency",
    "personal-data-cryptoshred",
    "manual",
]
CHECK_NAMES: Final[tuple[str, ...]] = get_args(CheckName)


class LabelSelectorRequirement(Model):
    model_config = Model.model_config | {
        "json_schema_extra": validations(
            cel(
                "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
                VALUES_MESSAGE,
                field_path=".values",
            )
        )
    }

    key: str = Field(max_length=317, json_schema_extra=validations(cel(qualified_name_cel("self"), LABEL_KEY_MESSAGE)))
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={"items": {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE}},
    )

    @model_validator(mode="after")
    def _values_fit_the_operator(self) -> LabelSelectorRequirement:
        if not is_qualified_name(self.key):
            raise ValueError(LABEL_KEY_MESSAGE)
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError(VALUES_MESSAGE)
        return self


class LabelSelector(Model):
    match_labels: dict[str, str] = Field(
        default_factory=dict,
        json_schema_extra={
            "maxProperties": 16,
            "additionalProperties": {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE},
            **validations(cel(f"self.all(k, {qualified_name_cel('k')})", LABEL_KEY_MESSAGE)),
        },
    )
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list, max_length=16)

    @field_validator("match_labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        problem = labels_problem(value, LABEL_KEY_MESSAGE)
        if problem:
            raise ValueError(problem)
        return value

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Kubernetes' semantics: every label and expression holds; an empty selector selects all."""
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for e in self.match_expressions:
            value = labels.get(e.key)
            held = {
                "In": value is not None and value in e.values,
                "NotIn": value is None or value not in e.values,
                "Exists": value is not None,
                "DoesNotExist": value is None,
            }[e.operator]
            if not held:
                return False
        return True


class Check(Model):
    name: CheckName = Field(description="A check from the built-in library (docs/compliance-checks.md).")
    params: FreeForm = Field(
        default_factory=dict, description="The check's parameters; refused (Stalled InvalidCheckParams) when wrong."
    )


class Control(Model):
    id: str = Field(max_length=64)
    title: str = Field(max_length=256)
    severity: Literal["Low", "Medium", "High", "Critical"] = "Medium"
    weight: int = Field(default=1, ge=0, le=100)
    checks: list[Check] = Field(min_length=1, max_length=16)


class ComplianceException(Model):
    """A control waived for some tenants until ``expires``, once the framework's quorum approves it."""

    control: str = Field(max_length=64)
    tenants: TenantNames = Field(
        default_factory=list,
        max_length=64,
        description="The tenants it waives the control for; empty means every selected tenant.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    reason: str = Field(max_length=1024)
    expires: str = Field(json_schema_extra={"format": "date-time"})


class Attestation(Model):
    """A person's statement that a manual control holds, until ``expires``, once the quorum approves it."""

    control: str = Field(max_length=64)
    statement: str = Field(max_length=1024)
    expires: str = Field(json_schema_extra={"format": "date-time"})


class ComplianceFrameworkSpec(Model):
    model_config = Model.model_config | {
        "json_schema_extra": validations(
            cel(
                "!has(self.exceptions) || self.exceptions.all(e, self.controls.exists(c, c.id == e.control))",
                EXCEPTION_CONTROL_MESSAGE,
                field_path=".exceptions",
            ),
            cel(
                "!has(self.attestations) || self.attestations.all(a, self.controls.exists(c, c.id == a.control"
                " && c.checks.all(k, k.name == 'manual')))",
                ATTESTATION_CONTROL_MESSAGE,
                field_path=".attestations",
            ),
            cel(
                "has(self.quorumPolicyRef)"
                " || ((!has(self.exceptions) || size(self.exceptions) == 0)"
                " && (!has(self.attestations) || size(self.attestations) == 0))",
                QUORUM_POLICY_MESSAGE,
                field_path=".quorumPolicyRef",
            ),
            cel(
                "!has(oldSelf.quorumPolicyRef)"
                " || (has(self.quorumPolicyRef) && self.quorumPolicyRef == oldSelf.quorumPolicyRef)",
                QUORUM_POLICY_PINNED_MESSAGE,
                field_path=".quorumPolicyRef",
            ),
        )
    }

    framework: str = Field(max_length=64)
    version: str = Field(max_length=32)
    tenant_selector: LabelSelector = Field(default_factory=LabelSelector)
    interval: str = Field(
        default="1h",
        max_length=32,
        pattern=DURATION,
        json_schema_extra=validations(cel(f"duration(self) >= duration('{MIN_INTERVAL}')", INTERVAL_MESSAGE)),
    )
    controls: list[Control] = Field(
        min_length=1,
        max_length=256,
        description="The controls, each with a unique id.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"]},
    )
    exceptions: list[ComplianceException] = Field(
        default_factory=list,
        max_length=64,
        description="At most one exception per control.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["control"]},
    )
    attestations: list[Attestation] = Field(
        default_factory=list,
        max_length=64,
        description="Statements that manual controls hold; at most one per control.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["control"]},
    )
    quorum_policy_ref: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_LABEL,
        description="The QuorumPolicy whose rules approve the exceptions and attestations.",
    )

    @field_validator("interval")
    @classmethod
    def _not_too_often(cls, value: str) -> str:
        if duration_seconds(value) < duration_seconds(MIN_INTERVAL):
            raise ValueError(INTERVAL_MESSAGE)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ComplianceFrameworkSpec:
        ids = [c.id for c in self.controls]
        problems = ["control ids must be unique"] if len(set(ids)) != len(ids) else []
        excepted = [e.control for e in self.exceptions]
        if len(set(excepted)) != len(excepted):
            problems.append("at most one exception per control")
        if not set(excepted) <= set(ids):
            problems.append(EXCEPTION_CONTROL_MESSAGE)
        attested = [a.control for a in self.attestations]
        if len(set(attested)) != len(attested):
            problems.append("at most one attestation per control")
        manual = {c.id for c in self.controls if all(k.name == "manual" for k in c.checks)}
        if not set(attested) <= manual:
            problems.append(ATTESTATION_CONTROL_MESSAGE)
        if (excepted or attested) and self.quorum_policy_ref is None:
            problems.append(QUORUM_POLICY_MESSAGE)
        if problems:
            raise ValueError("; ".join(problems))
        return self


WaiverState = Literal["AwaitingQuorum", "Active", "Expired", "Refused"]


class StateCounts(Model):
    """Tenant-by-control results counted by state."""

    pass_: int = Field(default=0, ge=0, alias="pass")
    fail: int = Field(default=0, ge=0)
    unknown: int = Field(default=0, ge=0)
    not_applicable: int = Field(default=0, ge=0)
    excepted: int = Field(default=0, ge=0)


class LowestTenant(Model):
    tenant: str = Field(max_length=253)
    score: int | None = Field(default=None, ge=0, le=100)
    failing: list[str] = Field(
        default_factory=list, max_length=5, json_schema_extra={"items": {"type": "string", "maxLength": 64}}
    )


class WaiverStatus(Model):
    """Where an exception or attestation stands: only Active ones change results."""

    control: str = Field(max_length=64)
    state: WaiverState
    message: str = Field(default="", max_length=1024)
    expires: str = Field(json_schema_extra={"format": "date-time"})


class ComplianceFrameworkStatus(Status):
    score: int | None = Field(default=None, ge=0, le=100)
    tenants: int | None = Field(default=None, ge=0)
    summary: StateCounts | None = None
    lowest: list[LowestTenant] = Field(default_factory=list, max_length=10)
    exceptions: list[WaiverStatus] = Field(default_factory=list, max_length=64)
    attestations: list[WaiverStatus] = Field(default_factory=list, max_length=64)
    last_evaluated: str | None = Field(
        default=None,
        description="The last evaluation of every selected tenant.",
        json_schema_extra={"format": "date-time"},
    )
    pending: list[PendingAction] = Field(
        default_factory=list,
        max_length=128,  # up to 64 exceptions and 64 attestations
        description="Exceptions and attestations waiting for approvals (what `pvctl approvals create` signs).",
    )


class ComplianceFramework(Resource):
    kind: ClassVar[str] = "ComplianceFramework"
    plural: ClassVar[str] = "complianceframeworks"
    short_names: ClassVar[tuple[str, ...]] = ("pvcf",)
    description: ClassVar[str] = "Controls evaluated continuously against tenants."
    columns: ClassVar[tuple[PrintColumn, ...]] = (
        *ready_columns(),
        PrintColumn(name="Framework", type="string", json_path=".spec.framework"),
        PrintColumn(name="Version", type="string", json_path=".spec.version"),
        PrintColumn(name="Score", type="integer", json_path=".status.score"),
        PrintColumn(name="Tenants", type="integer", json_path=".status.tenants"),
        PrintColumn(name="Failing", type="integer", json_path=".status.summary.fail", priority=1),
        AGE,
    )

    spec: ComplianceFrameworkSpec
    status: ComplianceFrameworkStatus | None = None
