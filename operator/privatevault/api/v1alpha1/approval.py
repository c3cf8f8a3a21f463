"""Approval: one approver's signed consent to one exact change. Immutable once created."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from .common import AGE, DNS_LABEL, Model, PrintColumn, Resource, Status, cel, ready_columns, validations
from .quorumpolicy import GatedAction


class ApprovedAction(Model):
    verb: GatedAction
    kind: str = Field(max_length=64)
    name: str = Field(max_length=253)
    uid: str | None = Field(default=None, max_length=64)
    digest: str = Field(
        pattern=r"^sha256:[0-9a-f]{64}$", max_length=71, description="Digest of the exact change approved."
    )


class ApprovalSignature(Model):
    algorithm: Literal["Ed25519", "ML-DSA-65"]
    key_id: str = Field(max_length=128)
    signature: str = Field(max_length=8192, description="Base64 signature over the DSSE pre-authentication encoding.")


class ApprovalSpec(Model):
    action: ApprovedAction
    approver: str = Field(max_length=253, pattern=DNS_LABEL)
    signatures: list[ApprovalSignature] = Field(
        min_length=1,
        max_length=2,
        description="At most one signature per algorithm: an approver holds one key of each.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["algorithm"]},
    )
    expires: str = Field(json_schema_extra={"format": "date-time"})

    @model_validator(mode="after")
    def _one_signature_per_algorithm(self) -> ApprovalSpec:
        algorithms = [s.algorithm for s in self.signatures]
        if len(set(algorithms)) != len(algorithms):
            raise ValueError("an Approval carries at most one signature per algorithm")
        return self


class ApprovalStatus(Status):
    valid: bool | None = None


class Approval(Resource):
    kind: ClassVar[str] = "Approval"
    plural: ClassVar[str] = "approvals"
    short_names: ClassVar[tuple[str, ...]] = ("pva",)
    description: ClassVar[str] = "One approver's signed consent to one exact change."
    columns: ClassVar[tuple[PrintColumn, ...]] = (
        *ready_columns(),
        PrintColumn(name="Approver", type="string", json_path=".spec.approver"),
        PrintColumn(name="Action", type="string", json_path=".spec.action.verb"),
        PrintColumn(name="Target", type="string", json_path=".spec.action.name"),
        AGE,
    )

    spec: ApprovalSpec = Field(
        json_schema_extra=validations(
            cel("self == oldSelf", "an Approval is immutable once created; create a new Approval instead")
        )
    )
    status: ApprovalStatus | None = None
