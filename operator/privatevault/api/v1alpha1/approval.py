"""Approval: one approver's signed consent to one exact change. Immutable once created.

The consent is the DSSE envelope: an in-toto Statement v1 signed with the approver's Ed25519 and/or
ML-DSA-65 key (see ``privatevault.quorum``). The other fields repeat what the statement says so
that people and the operator can select Approvals without decoding every envelope; the operator
refuses an Approval whose fields and statement disagree.
"""

from __future__ import annotations

from typing import ClassVar, Final, Literal

from pydantic import Field, model_validator

from .common import AGE, DNS_LABEL, Model, PrintColumn, Resource, Status, cel, ready_columns, validations
from .pending import GatedAction

PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"
IMMUTABLE_MESSAGE: Final = "an Approval is immutable once created; create a new Approval instead"


class ApprovedAction(Model):
    verb: GatedAction
    kind: str = Field(max_length=64)
    name: str = Field(max_length=253)
    uid: str = Field(max_length=64, description="The uid of the object the change is made to.")
    generation: int = Field(ge=0, description="The object's generation when the change was held.")
    digest: str = Field(
        pattern=r"^sha256:[0-9a-f]{64}$", max_length=71, description="Digest of the exact change approved."
    )


class EnvelopeSignature(Model):
    keyid: str = Field(max_length=128, description="ed25519:<hex> or ml-dsa-65:<hex>: SHA-256 of the public key.")
    sig: str = Field(max_length=8192, description="Base64 signature over the DSSE pre-authentication encoding.")


class Envelope(Model):
    """A DSSE envelope, as the DSSE specification writes it (field names included)."""

    payload_type: Literal["application/vnd.in-toto+json"]
    payload: str = Field(max_length=16384, description="Base64 of the in-toto Statement's bytes.")
    signatures: list[EnvelopeSignature] = Field(
        min_length=1,
        max_length=2,
        description="At most one signature per algorithm: an approver holds one key of each.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["keyid"]},
    )

    @model_validator(mode="after")
    def _one_signature_per_key(self) -> Envelope:
        keyids = [s.keyid for s in self.signatures]
        if len(set(keyids)) != len(keyids):
            raise ValueError("an envelope carries at most one signature per key")
        return self


class ApprovalSpec(Model):
    policy: str = Field(max_length=253, pattern=DNS_LABEL, description="The QuorumPolicy the approval is given under.")
    approver: str = Field(max_length=63, pattern=DNS_LABEL)
    action: ApprovedAction
    expires: str = Field(json_schema_extra={"format": "date-time"}, description="The statement's notAfter.")
    envelope: Envelope


class ApprovalStatus(Status):
    verdict: Literal["Valid", "Invalid", "Expired"] | None = None
    reason: str | None = Field(default=None, max_length=1024)
    statement_digest: str | None = Field(default=None, max_length=71)


class Approval(Resource):
    kind: ClassVar[str] = "Approval"
    plural: ClassVar[str] = "approvals"
    short_names: ClassVar[tuple[str, ...]] = ("pva",)
    description: ClassVar[str] = "One approver's signed consent to one exact change."
    columns: ClassVar[tuple[PrintColumn, ...]] = (
        *ready_columns(),
        PrintColumn(name="Verdict", type="string", json_path=".status.verdict"),
        PrintColumn(name="Approver", type="string", json_path=".spec.approver"),
        PrintColumn(name="Action", type="string", json_path=".spec.action.verb"),
        PrintColumn(name="Kind", type="string", json_path=".spec.action.kind"),
        PrintColumn(name="Target", type="string", json_path=".spec.action.name"),
        PrintColumn(name="Expires", type="date", json_path=".spec.expires"),
        AGE,
    )

    spec: ApprovalSpec = Field(json_schema_extra=validations(cel("self == oldSelf", IMMUTABLE_MESSAGE)))
    status: ApprovalStatus | None = None
