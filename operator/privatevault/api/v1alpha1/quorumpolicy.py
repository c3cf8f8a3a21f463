"""QuorumPolicy: who must sign, and how many, before a dangerous action goes ahead."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from .common import AGE, DNS_LABEL, DURATION, Model, PrintColumn, Resource, Status, cel, ready_columns, validations

GatedAction = Literal[
    "DeleteTenant",
    "CryptoShred",
    "WeakenProtectionPolicy",
    "CreateEvidenceExport",
    "RotateKeyOutOfSchedule",
    "DestroyKey",
    "AddComplianceException",
]


class ApproverKeys(Model):
    ed25519: str | None = Field(default=None, max_length=128, description="Base64 Ed25519 public key.")
    ml_dsa65: str | None = Field(default=None, max_length=4096, description="Base64 ML-DSA-65 public key.")


class Approver(Model):
    name: str = Field(max_length=253, pattern=DNS_LABEL)
    roles: list[str] = Field(
        default_factory=list, max_length=16, json_schema_extra={"items": {"type": "string", "maxLength": 63}}
    )
    region: str | None = Field(default=None, max_length=32)
    public_keys: ApproverKeys


class Rule(Model):
    action: GatedAction
    min_approvals: int = Field(ge=1, le=64)
    required_roles: list[str] = Field(
        default_factory=list, max_length=16, json_schema_extra={"items": {"type": "string", "maxLength": 63}}
    )
    min_distinct_regions: int = Field(default=1, ge=1, le=16)
    allowed_regions: list[str] = Field(
        default_factory=list, max_length=16, json_schema_extra={"items": {"type": "string", "maxLength": 32}}
    )
    allow_self_approval: bool = False
    signature_mode: Literal["any", "hybrid-required"] = "any"
    ttl: str = Field(default="24h", max_length=32, pattern=DURATION)


class QuorumPolicySpec(Model):
    model_config = Model.model_config | {
        "json_schema_extra": validations(
            cel(
                "self.rules.all(r, r.minApprovals <= size(self.approvers))",
                "a rule cannot require more approvals than the policy has approvers",
                field_path=".rules",
            ),
        )
    }

    approvers: list[Approver] = Field(min_length=1, max_length=64)
    rules: list[Rule] = Field(min_length=1, max_length=16)

    @model_validator(mode="after")
    def _satisfiable(self) -> QuorumPolicySpec:
        for rule in self.rules:
            if rule.min_approvals > len(self.approvers):
                raise ValueError(
                    f"rule {rule.action} requires {rule.min_approvals} approvals"
                    f" but the policy has {len(self.approvers)} approvers"
                )
        return self


class QuorumPolicy(Resource):
    kind: ClassVar[str] = "QuorumPolicy"
    plural: ClassVar[str] = "quorumpolicies"
    short_names: ClassVar[tuple[str, ...]] = ("pvqp",)
    description: ClassVar[str] = "M-of-N signed approvals required before gated actions."
    columns: ClassVar[tuple[PrintColumn, ...]] = (*ready_columns(), AGE)

    spec: QuorumPolicySpec
    status: Status | None = None
