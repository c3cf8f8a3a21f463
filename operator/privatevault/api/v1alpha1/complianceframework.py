"""ComplianceFramework: controls evaluated continuously against tenants."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .common import AGE, DNS_LABEL, DURATION, FreeForm, Model, PrintColumn, Resource, Status, ready_columns


class LabelSelectorRequirement(Model):
    key: str = Field(max_length=317)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(
        default_factory=list, max_length=32, json_schema_extra={"items": {"type": "string", "maxLength": 63}}
    )


class LabelSelector(Model):
    match_labels: dict[str, str] = Field(default_factory=dict, json_schema_extra={"maxProperties": 16})
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list, max_length=16)


class Check(Model):
    name: str = Field(max_length=128, description="A check from the built-in library.")
    params: FreeForm = Field(default_factory=dict)


class Control(Model):
    id: str = Field(max_length=64)
    title: str = Field(max_length=256)
    severity: Literal["Low", "Medium", "High", "Critical"] = "Medium"
    weight: int = Field(default=1, ge=0, le=100)
    checks: list[Check] = Field(min_length=1, max_length=16)


class ComplianceException(Model):
    control: str = Field(max_length=64)
    reason: str = Field(max_length=1024)
    expires: str = Field(json_schema_extra={"format": "date-time"})
    approval_ref: str = Field(max_length=253, pattern=DNS_LABEL)


class ComplianceFrameworkSpec(Model):
    framework: str = Field(max_length=64)
    version: str = Field(max_length=32)
    tenant_selector: LabelSelector = Field(default_factory=LabelSelector)
    interval: str = Field(default="1h", max_length=32, pattern=DURATION)
    controls: list[Control] = Field(min_length=1, max_length=256)
    exceptions: list[ComplianceException] = Field(default_factory=list, max_length=64)


class ComplianceFrameworkStatus(Status):
    score: int | None = None


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
        AGE,
    )

    spec: ComplianceFrameworkSpec
    status: ComplianceFrameworkStatus | None = None
