"""The read API's responses: the models are the API, and ``openapi.json`` is generated from them.

Field names are camelCase on the wire, as in Kubernetes. Hashes are standard base64 (as in the
C2SP checkpoint and RFC 9162 proofs); records are their canonical bytes verbatim (RFC 8785 JSON).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")

    def wire(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True)


class Problem(Model):
    """An error: the HTTP status, a CamelCase reason and what to do about it."""

    status: int
    reason: str
    message: str


class Health(Model):
    ok: bool
    checks: dict[str, str] = Field(default_factory=dict, description="Each readiness check and its finding.")


class AuditRecord(Model):
    """One ledger record as stored: the canonical JSON verbatim and the chain's hashes."""

    seq: int = Field(ge=1)
    canonical: str = Field(description="The record's RFC 8785 bytes, verbatim (UTF-8).")
    prev_hash: str = Field(description="base64 SHA-256 of the previous record (zeros before the first).")
    record_hash: str = Field(description="base64 SHA-256 over prevHash and canonical.")
    leaf_hash: str = Field(description="base64 RFC 9162 leaf hash (0x00 || recordHash) in the Merkle tree.")


class AuditPage(Model):
    records: list[AuditRecord]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page; null at the end.")


class Checkpoint(Model):
    """The published checkpoint: a C2SP signed note with the operator's signatures and witnesses' cosignatures."""

    origin: str
    size: int = Field(ge=0)
    root_hash: str
    note: str = Field(description="The signed note verbatim.")


class InclusionProof(Model):
    """RFC 9162 inclusion proof of record ``seq`` (leaf ``seq - 1``) in the tree of the checkpoint."""

    seq: int = Field(ge=1)
    leaf_index: int = Field(ge=0)
    tree_size: int = Field(ge=1)
    leaf_hash: str
    hashes: list[str] = Field(description="base64 sibling hashes, leaf to root.")
    checkpoint: Checkpoint


class KeyView(Model):
    provider: str
    key_name: str
    latest_version: int


class PendingView(Model):
    action: str
    approvals: str
    message: str


class TenantView(Model):
    name: str
    ready: str = Field(description="The Ready condition's status (True/False/Unknown).")
    reason: str
    region: str | None = None
    level: str | None = Field(default=None, description="The tenant's SELinux MCS level.")
    namespaces: list[str] = Field(default_factory=list)
    key: KeyView | None = None
    protection_policy: str | None = None
    quorum_policy: str | None = None
    pending: list[PendingView] = Field(default_factory=list)


class LedgerView(Model):
    size: int = Field(ge=0)
    integrity_ok: bool | None = Field(default=None, description="The checkpointer's last finding (null: unknown).")
    integrity_reason: str | None = None
    last_verified_size: int | None = Field(default=None, description="Size of the last checkpoint verified and signed.")


class Status(Model):
    """The installation at a glance."""

    operator: dict[str, str] = Field(description="Namespace, version, leader identity when known.")
    ledger: LedgerView
    checkpoint: Checkpoint | None = None
    cosignatures: list[str] = Field(default_factory=list, description="Names of the witnesses that cosigned it.")
    kms: dict[str, str] = Field(default_factory=dict, description="Each KMS provider and whether it answers.")
    tenants_by_condition: dict[str, int] = Field(default_factory=dict)
    awaiting_quorum: list[str] = Field(default_factory=list, description="`tenant/<name>: action n/m` lines.")


class TenantList(Model):
    tenants: list[TenantView]


#: Every response model, by the name the OpenAPI document gives it.
MODELS: tuple[type[Model], ...] = (
    Problem,
    Health,
    AuditRecord,
    AuditPage,
    Checkpoint,
    InclusionProof,
    TenantView,
    TenantList,
    Status,
)
