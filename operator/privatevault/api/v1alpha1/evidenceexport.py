"""EvidenceExport: a signed, reproducible bundle of audit evidence for auditors."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from .common import AGE, DNS_LABEL, Model, PrintColumn, Resource, Status, cel, ready_columns, validations

Include = Literal["Audit", "Approvals", "Policies", "ComplianceResults", "KeyMetadata"]
Signing = Literal["Ed25519", "ML-DSA-65", "ML-DSA-87"]

ALL_INCLUDES: tuple[Include, ...] = ("Audit", "Approvals", "Policies", "ComplianceResults", "KeyMetadata")
DEFAULT_SIGNING: tuple[Signing, ...] = ("Ed25519", "ML-DSA-65")


class Window(Model):
    model_config = Model.model_config | {
        "json_schema_extra": validations(
            cel(
                "timestamp(self.from) < timestamp(self.to)",
                "the evidence window must start before it ends: 'from' has to be earlier than 'to'",
            )
        )
    }

    from_: str = Field(alias="from", json_schema_extra={"format": "date-time"})
    to: str = Field(json_schema_extra={"format": "date-time"})

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if datetime.fromisoformat(self.from_) >= datetime.fromisoformat(self.to):
            raise ValueError("the evidence window must start before it ends")
        return self


class Destination(Model):
    type: Literal["Filesystem", "PersistentVolumeClaim"] = "Filesystem"
    path: str = Field(default="/var/lib/privatevault/evidence", max_length=1024)
    claim_name: str | None = Field(default=None, max_length=253, pattern=DNS_LABEL)


class EvidenceExportSpec(Model):
    tenants: list[str] = Field(
        min_length=1, max_length=64, json_schema_extra={"items": {"type": "string", "maxLength": 253}}
    )
    window: Window
    include: list[Include] = Field(
        default_factory=lambda: list(ALL_INCLUDES),
        max_length=5,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    destination: Destination = Field(default_factory=Destination)
    signing: list[Signing] = Field(
        default_factory=lambda: list(DEFAULT_SIGNING),
        min_length=1,
        max_length=3,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class EvidenceExportStatus(Status):
    digest: str | None = None
    size: int | None = None
    location: str | None = None
    records: int | None = None


class EvidenceExport(Resource):
    kind: ClassVar[str] = "EvidenceExport"
    plural: ClassVar[str] = "evidenceexports"
    short_names: ClassVar[tuple[str, ...]] = ("pvee",)
    description: ClassVar[str] = "A signed, reproducible evidence bundle for auditors."
    columns: ClassVar[tuple[PrintColumn, ...]] = (
        *ready_columns(),
        PrintColumn(name="Records", type="integer", json_path=".status.records"),
        PrintColumn(name="Digest", type="string", json_path=".status.digest", priority=1),
        AGE,
    )

    spec: EvidenceExportSpec
    status: EvidenceExportStatus | None = None
