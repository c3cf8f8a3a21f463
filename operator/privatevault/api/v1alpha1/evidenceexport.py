"""EvidenceExport: a signed, reproducible bundle of audit evidence for auditors."""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated, ClassVar, Final, Literal

from pydantic import AfterValidator, Field, model_validator

from .common import AGE, DNS_LABEL, Model, PrintColumn, Resource, Status, cel, ready_columns, validations
from .pending import PendingAction

Include = Literal["Audit", "Approvals", "Policies", "ComplianceResults", "KeyMetadata"]
Signing = Literal["Ed25519", "ML-DSA-65", "ML-DSA-87"]

ALL_INCLUDES: tuple[Include, ...] = ("Audit", "Approvals", "Policies", "ComplianceResults", "KeyMetadata")
DEFAULT_SIGNING: tuple[Signing, ...] = ("Ed25519", "ML-DSA-65")

#: A Tenant's name: a DNS label (the Tenant CRD refuses any other).
TenantName = Annotated[str, Field(max_length=63, pattern=DNS_LABEL)]


def _each_once(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("name each tenant once")
    return value


#: Tenants named each once (a ``set`` list on the API server).
TenantNames = Annotated[list[TenantName], AfterValidator(_each_once)]

CLAIM_MESSAGE: Final = (
    "destination type PersistentVolumeClaim needs claimName, and only that type takes one: a Filesystem"
    " destination is a path on the operator's own volume"
)
PATH_MESSAGE: Final = "destination.path must be an absolute path (starting with '/') without '..' segments"


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
    model_config = Model.model_config | {
        "json_schema_extra": validations(
            cel(
                "(has(self.type) && self.type == 'PersistentVolumeClaim') == has(self.claimName)",
                CLAIM_MESSAGE,
                field_path=".claimName",
            )
        )
    }

    type: Literal["Filesystem", "PersistentVolumeClaim"] = "Filesystem"
    path: str = Field(
        default="/var/lib/privatevault/evidence",
        max_length=1024,
        json_schema_extra=validations(
            cel("self.startsWith('/') && !self.split('/').exists(part, part == '..')", PATH_MESSAGE)
        ),
    )
    claim_name: str | None = Field(default=None, max_length=253, pattern=DNS_LABEL)

    @model_validator(mode="after")
    def _claim_for_a_claim(self) -> Destination:
        if (self.type == "PersistentVolumeClaim") != (self.claim_name is not None):
            raise ValueError(CLAIM_MESSAGE)
        path = PurePosixPath(self.path)
        if not path.is_absolute() or ".." in path.parts:
            raise ValueError(PATH_MESSAGE)
        return self


class EvidenceExportSpec(Model):
    tenants: TenantNames = Field(
        min_length=1,
        max_length=64,
        description="Names of the tenants whose evidence goes into the bundle.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
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
    digest: str | None = Field(default=None, description="sha256:<hex> of the bundle's bytes.")
    size: int | None = Field(default=None, description="The bundle's size in bytes.")
    location: str | None = Field(default=None, description="Where the bundle is, on the destination.")
    records: int | None = Field(default=None, description="Ledger records in the bundle, every section.")
    approvals: int | None = None
    decisions: int | None = None
    policies: int | None = Field(default=None, description="Policy versions in force during the window.")
    checkpoint: int | None = Field(default=None, description="Size of the checkpoint every proof is against.")
    checkpoint_root: str | None = Field(default=None, description="Its root hash (base64).")
    latest_checkpoint: int | None = Field(
        default=None, description="The checkpoint the consistency proof reaches; a rebuild uses it again."
    )
    pending: list[PendingAction] = Field(
        default_factory=list, max_length=8, description="The creation, while it waits for approvals."
    )


class EvidenceExport(Resource):
    kind: ClassVar[str] = "EvidenceExport"
    plural: ClassVar[str] = "evidenceexports"
    short_names: ClassVar[tuple[str, ...]] = ("pvee",)
    description: ClassVar[str] = "A signed, reproducible evidence bundle for auditors."
    columns: ClassVar[tuple[PrintColumn, ...]] = (
        *ready_columns(),
        PrintColumn(name="Records", type="integer", json_path=".status.records"),
        PrintColumn(name="Checkpoint", type="integer", json_path=".status.checkpoint"),
        PrintColumn(name="Digest", type="string", json_path=".status.digest", priority=1),
        AGE,
    )

    spec: EvidenceExportSpec
    status: EvidenceExportStatus | None = None
