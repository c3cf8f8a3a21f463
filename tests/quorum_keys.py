"""Real approver key pairs and signed Approval manifests, for every test tier.

``ApproverKeys.generate("alice")`` makes an Ed25519 and an ML-DSA-65 key pair;
``approver(keys, roles=…, region=…)`` is the QuorumPolicy approver holding their public halves;
``signed_approval(name, pending, "alice", keys)`` signs one entry of a gated object's
``status.pending`` (as the API returns it, camelCase) the way ``pvctl approvals create`` does and
returns the Approval manifest to create. Key generation is the slow part (ML-DSA-65): make the
keys once per module and reuse them.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from privatevault.api.v1alpha1.pending import PendingAction
from privatevault.crypto import ED25519, ML_DSA_65
from privatevault.quorum import consent, dsse
from tests import builders

KeyPair = tuple[bytes, bytes]


@dataclass(frozen=True)
class ApproverKeys:
    """An approver's key pairs, ``(private, public)`` per algorithm; either may be absent."""

    ed25519: KeyPair | None
    ml_dsa65: KeyPair | None

    @classmethod
    def generate(cls, *, ed25519: bool = True, ml_dsa65: bool = True) -> ApproverKeys:
        return cls(ED25519.generate() if ed25519 else None, ML_DSA_65.generate() if ml_dsa65 else None)

    def signing(self, algorithms: Sequence[dsse.Algorithm] | None = None) -> dict[dsse.Algorithm, KeyPair]:
        """The pairs ``dsse.sign`` takes, restricted to ``algorithms`` when given."""
        held: dict[dsse.Algorithm, KeyPair] = {}
        if self.ed25519:
            held["Ed25519"] = self.ed25519
        if self.ml_dsa65:
            held["ML-DSA-65"] = self.ml_dsa65
        return {alg: pair for alg, pair in held.items() if algorithms is None or alg in algorithms}

    def public_keys(self) -> dict[str, str]:
        """``publicKeys`` of a QuorumPolicy approver, in wire form."""
        out = {}
        if self.ed25519:
            out["ed25519"] = base64.b64encode(self.ed25519[1]).decode()
        if self.ml_dsa65:
            out["mlDsa65"] = base64.b64encode(self.ml_dsa65[1]).decode()
        return out


def approver(
    name: str,
    keys: ApproverKeys,
    *,
    roles: Sequence[str] | None = None,
    region: str | None = None,
    users: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A QuorumPolicy approver holding the public halves of ``keys``."""
    public = keys.public_keys()
    return builders.approver(
        name,
        ed25519=public.get("ed25519"),
        ml_dsa65=public.get("mlDsa65"),
        roles=roles,
        region=region,
        users=users,
    )


def signed_approval(
    name: str | None,
    pending: Mapping[str, Any],
    approver: str,
    keys: ApproverKeys,
    *,
    not_after: datetime | str | None = None,
    policy: str | None = None,
    algorithms: Sequence[dsse.Algorithm] | None = None,
) -> dict[str, Any]:
    """The Approval of ``pending`` (one ``status.pending`` entry) by ``approver``, signed with ``keys``.

    ``not_after`` defaults to an hour from now; ``policy`` replaces the pending entry's policy
    (an approval given under another policy); ``algorithms`` signs with only those keys. ``name``
    ``None`` names it as ``pvctl`` does.
    """
    entry = PendingAction.model_validate(dict(pending))
    if policy is not None:
        entry = entry.model_copy(update={"policy": policy})
    if not_after is None:
        not_after = datetime.now(UTC) + timedelta(hours=1)
    elif isinstance(not_after, str):
        not_after = datetime.fromisoformat(not_after.replace("Z", "+00:00"))
    statement = consent.statement_for(entry, approver, not_after)
    envelope = dsse.sign(statement.payload(), keys.signing(algorithms))
    return consent.approval_manifest(statement, envelope, name=name)
