"""QuorumPolicy: who must sign, and how many, before a dangerous action goes ahead."""

from __future__ import annotations

import base64
import binascii
from typing import Any, ClassVar, Final, Literal

from pydantic import Field, field_validator, model_validator

from .common import (
    AGE,
    DNS_LABEL,
    DURATION,
    REGION,
    Model,
    PrintColumn,
    Resource,
    Status,
    cel,
    ready_columns,
    validations,
)
from .pending import GatedAction, PendingAction
from .protectionpolicy import duration_seconds

#: Public key sizes in bytes, and so the length of their padded base64.
ED25519_PUBLIC_KEY: Final = 32
ML_DSA_65_PUBLIC_KEY: Final = 1952


def _base64_length(size: int) -> int:
    return 4 * ((size + 2) // 3)


ED25519_MESSAGE: Final = (
    f"ed25519 must be an Ed25519 public key in base64: {ED25519_PUBLIC_KEY} bytes, written as"
    f" {_base64_length(ED25519_PUBLIC_KEY)} characters ending in '='"
)
ML_DSA_65_MESSAGE: Final = (
    f"mlDsa65 must be an ML-DSA-65 public key in base64: {ML_DSA_65_PUBLIC_KEY} bytes, written as"
    f" {_base64_length(ML_DSA_65_PUBLIC_KEY)} characters ending in '='"
)
NO_KEY_MESSAGE: Final = "an approver needs a public key to sign with: give ed25519, mlDsa65 or both"
TTL_MESSAGE: Final = "ttl must be longer than 0s: an approval that expires at once can never count"
REQUIRED_ROLES_MESSAGE: Final = (
    "every role in a rule's requiredRoles must be held by at least one approver, otherwise the rule can never be met"
)
TOO_MANY_APPROVALS_MESSAGE: Final = "a rule cannot require more approvals than the policy has approvers"
DISTINCT_REGIONS_MESSAGE: Final = (
    "a rule's minDistinctRegions cannot exceed the number of approvers, nor the number of allowedRegions"
    " when those are listed: the rule could never be met"
)
HYBRID_MESSAGE: Final = (
    "signatureMode hybrid-required needs at least minApprovals approvers holding both an ed25519 and an"
    " mlDsa65 key, otherwise the rule can never be met"
)


def _base64_of(value: str, size: int) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == size and len(value) == _base64_length(size)
    except binascii.Error:
        return False


def _base64_rule(size: int, message: str) -> dict[str, str]:
    """CEL: padded base64 of exactly ``size`` bytes (RE2 repeats stop at 1000, so the length is checked apart)."""
    padding = "=" * (-size % 3)
    return cel(f"size(self) == {_base64_length(size)} && self.matches(r'^[A-Za-z0-9+/]+{padding}$')", message)


class ApproverKeys(Model):
    model_config = Model.model_config | {
        "json_schema_extra": validations(cel("has(self.ed25519) || has(self.mlDsa65)", NO_KEY_MESSAGE))
    }

    ed25519: str | None = Field(
        default=None,
        max_length=128,
        description="Base64 Ed25519 public key.",
        json_schema_extra=validations(_base64_rule(ED25519_PUBLIC_KEY, ED25519_MESSAGE)),
    )
    ml_dsa65: str | None = Field(
        default=None,
        max_length=4096,
        description="Base64 ML-DSA-65 public key.",
        json_schema_extra=validations(_base64_rule(ML_DSA_65_PUBLIC_KEY, ML_DSA_65_MESSAGE)),
    )

    @field_validator("ed25519")
    @classmethod
    def _an_ed25519_key(cls, value: str | None) -> str | None:
        if value is not None and not _base64_of(value, ED25519_PUBLIC_KEY):
            raise ValueError(ED25519_MESSAGE)
        return value

    @field_validator("ml_dsa65")
    @classmethod
    def _an_ml_dsa_65_key(cls, value: str | None) -> str | None:
        if value is not None and not _base64_of(value, ML_DSA_65_PUBLIC_KEY):
            raise ValueError(ML_DSA_65_MESSAGE)
        return value

    @model_validator(mode="after")
    def _at_least_one(self) -> ApproverKeys:
        if self.ed25519 is None and self.ml_dsa65 is None:
            raise ValueError(NO_KEY_MESSAGE)
        return self

    @property
    def hybrid(self) -> bool:
        return self.ed25519 is not None and self.ml_dsa65 is not None


def _set_of(max_length: int, pattern: str | None = None) -> dict[str, Any]:
    items: dict[str, Any] = {"type": "string", "maxLength": max_length}
    if pattern:
        items["pattern"] = pattern
    return {"x-kubernetes-list-type": "set", "items": items}


class Approver(Model):
    name: str = Field(max_length=63, pattern=DNS_LABEL)
    roles: list[str] = Field(default_factory=list, max_length=16, json_schema_extra=_set_of(63))
    region: str | None = Field(default=None, max_length=32, pattern=REGION)
    users: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="The Kubernetes user names this approver acts as: a request made by one of them is this"
        " approver's own, which the rule may forbid them to approve.",
        json_schema_extra=_set_of(253),
    )
    public_keys: ApproverKeys


class Rule(Model):
    action: GatedAction
    min_approvals: int = Field(ge=1, le=64)
    required_roles: list[str] = Field(default_factory=list, max_length=16, json_schema_extra=_set_of(63))
    min_distinct_regions: int = Field(default=1, ge=1, le=16)
    allowed_regions: list[str] = Field(default_factory=list, max_length=16, json_schema_extra=_set_of(32, REGION))
    allow_self_approval: bool = False
    signature_mode: Literal["any", "hybrid-required"] = "any"
    ttl: str = Field(
        default="24h",
        max_length=32,
        pattern=DURATION,
        json_schema_extra=validations(cel("duration(self) > duration('0s')", TTL_MESSAGE)),
    )

    @field_validator("ttl")
    @classmethod
    def _positive(cls, value: str) -> str:
        if duration_seconds(value) <= 0:
            raise ValueError(TTL_MESSAGE)
        return value


class QuorumPolicySpec(Model):
    model_config = Model.model_config | {
        "json_schema_extra": validations(
            cel(
                "self.rules.all(r, r.minApprovals <= size(self.approvers))",
                TOO_MANY_APPROVALS_MESSAGE,
                field_path=".rules",
            ),
            cel(
                "self.rules.all(r, !has(r.requiredRoles)"
                " || r.requiredRoles.all(role, self.approvers.exists(a, has(a.roles) && role in a.roles)))",
                REQUIRED_ROLES_MESSAGE,
                field_path=".rules",
            ),
            cel(
                "self.rules.all(r, !has(r.minDistinctRegions) || (r.minDistinctRegions <= size(self.approvers)"
                " && (!has(r.allowedRegions) || size(r.allowedRegions) == 0"
                " || r.minDistinctRegions <= size(r.allowedRegions))))",
                DISTINCT_REGIONS_MESSAGE,
                field_path=".rules",
            ),
            cel(
                "self.rules.all(r, !has(r.signatureMode) || r.signatureMode != 'hybrid-required'"
                " || self.approvers.filter(a, has(a.publicKeys.ed25519) && has(a.publicKeys.mlDsa65)).size()"
                " >= r.minApprovals)",
                HYBRID_MESSAGE,
                field_path=".rules",
            ),
        )
    }

    approvers: list[Approver] = Field(
        min_length=1,
        max_length=64,
        description="Who may approve; names are unique.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    rules: list[Rule] = Field(
        min_length=1,
        max_length=16,
        description="One rule per gated action.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["action"]},
    )

    @model_validator(mode="after")
    def _satisfiable(self) -> QuorumPolicySpec:
        problems = []
        names = [a.name for a in self.approvers]
        if len(set(names)) != len(names):
            problems.append("approver names must be unique")
        actions = [r.action for r in self.rules]
        if len(set(actions)) != len(actions):
            problems.append("one rule per gated action")
        held = {role for a in self.approvers for role in a.roles}
        hybrid = sum(a.public_keys.hybrid for a in self.approvers)
        for rule in self.rules:
            if rule.min_approvals > len(self.approvers):
                problems.append(
                    f"rule {rule.action} requires {rule.min_approvals} approvals"
                    f" but the policy has {len(self.approvers)} approvers"
                )
            if not set(rule.required_roles) <= held:
                problems.append(f"rule {rule.action}: {REQUIRED_ROLES_MESSAGE}")
            if rule.min_distinct_regions > len(self.approvers) or (
                rule.allowed_regions and rule.min_distinct_regions > len(rule.allowed_regions)
            ):
                problems.append(f"rule {rule.action}: {DISTINCT_REGIONS_MESSAGE}")
            if rule.signature_mode == "hybrid-required" and hybrid < rule.min_approvals:
                problems.append(f"rule {rule.action}: {HYBRID_MESSAGE}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class RuleSummary(Model):
    action: GatedAction
    needs: str = Field(max_length=512)


class QuorumPolicyStatus(Status):
    rules: list[RuleSummary] = Field(default_factory=list, max_length=16)
    in_force_generation: int | None = Field(
        default=None, description="The generation whose rules decide today: a weakening waits for approval."
    )
    pending: list[PendingAction] = Field(default_factory=list, max_length=4)


class QuorumPolicy(Resource):
    kind: ClassVar[str] = "QuorumPolicy"
    plural: ClassVar[str] = "quorumpolicies"
    short_names: ClassVar[tuple[str, ...]] = ("pvqp",)
    description: ClassVar[str] = "M-of-N signed approvals required before gated actions."
    columns: ClassVar[tuple[PrintColumn, ...]] = (*ready_columns(), AGE)

    spec: QuorumPolicySpec
    status: QuorumPolicyStatus | None = None
