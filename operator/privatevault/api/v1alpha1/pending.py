"""What a gated action looks like while it waits: the actions a QuorumPolicy can gate, and the
``pending`` entry the gated object's status shows (what to sign, and what is still missing)."""

from __future__ import annotations

from typing import Final, Literal, get_args

from pydantic import Field

from .common import Model

GatedAction = Literal[
    "DeleteTenant",
    "CryptoShred",
    "WeakenProtectionPolicy",
    "CreateEvidenceExport",
    "RotateKeyOutOfSchedule",
    "DestroyKey",
    "AddComplianceException",
    "AttestComplianceControl",
    "ChangeQuorumGate",
    "WeakenQuorumPolicy",
]

#: Every gated action, in the order the docs list them.
GATED_ACTIONS: Final[tuple[str, ...]] = get_args(GatedAction)


class Target(Model):
    """The object a gated action changes, at the generation the change was seen."""

    kind: str = Field(max_length=64)
    name: str = Field(max_length=253)
    uid: str = Field(max_length=64)
    generation: int = Field(ge=0)


class PendingAction(Model):
    """A gated action held until a quorum approves it: what to sign, and what is still missing."""

    action: GatedAction
    policy: str = Field(max_length=253)
    policy_generation: int = Field(ge=0)
    target: Target
    change_digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$", max_length=71)
    state: Literal["Pending", "Approved", "Refused", "Expired"]
    approvals: str = Field(max_length=16, description="Counted approvals over those needed, as n/m.")
    message: str = Field(max_length=1024)
    requester: str | None = Field(default=None, max_length=253)
    sign_with: str = Field(max_length=512, description="The command that shows and signs the statement.")
