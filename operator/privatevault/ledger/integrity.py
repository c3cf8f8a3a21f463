"""Whether the ledger still extends what it signed: the checkpointer's findings, as plain values.

The checkpointer (``ledger.checkpointer``) signs a tree head only when the tree provably extends
every head signed before it that it can see: the one published outside the database, the newest
one stored in it, and the one this process signed last. When it cannot show that, it signs
nothing and says why in a :class:`Refusal`; :class:`Integrity` is what the metrics, the
readiness probe and the alarm read. Once the ledger extends those heads again (the records were
restored), or a person vouched for a new head in an :class:`Anchor` (``pvctl audit reanchor``),
the :class:`Incident` is recorded in the ledger before the next checkpoint is signed, so the
checkpoint covers it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime

from privatevault.errors import IntegrityError


@dataclass(frozen=True)
class Anchor:
    """A tree head a person vouched for in place of a published checkpoint the ledger no longer extends.

    ``pvctl audit reanchor`` writes it beside the published checkpoint, only with explicit flags.
    The checkpointer honours it only while ``abandoned`` is still the note published (verbatim,
    ``""`` when none is), proves consistency from it instead, records it in the ledger, and the
    next publication removes it. It is as strong as the right to write the ConfigMap: remembering
    verifiers see the fork it makes, and the quorum issue is to gate it behind approvals.
    """

    abandoned: str
    size: int
    root: bytes
    reason: str
    by: str
    at: str

    def to_json(self) -> str:
        fields = asdict(self) | {"root": base64.b64encode(self.root).decode()}
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Anchor:
        try:
            fields = json.loads(text)
            anchor = cls(
                abandoned=str(fields["abandoned"]),
                size=int(fields["size"]),
                root=base64.b64decode(fields["root"], validate=True),
                reason=str(fields["reason"]),
                by=str(fields["by"]),
                at=str(fields["at"]),
            )
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise IntegrityError(f"the re-anchor beside the published checkpoint is malformed: {exc}") from exc
        if anchor.size < 0 or len(anchor.root) != 32 or not anchor.reason.strip():
            raise IntegrityError(
                "the re-anchor beside the published checkpoint needs a size, a 32-byte root and a reason"
            )
        return anchor

    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()


@dataclass(frozen=True)
class Published:
    """What is published outside the database: the checkpoint note and, after a re-anchor, the anchor."""

    note: bytes | None
    anchor: Anchor | None = None


@dataclass(frozen=True)
class Refusal:
    """Why no checkpoint was signed. ``reason`` is CamelCase, for the Event and the condition."""

    reason: str
    message: str
    tree_size: int
    published_size: int | None = None


@dataclass
class Integrity:
    """The checkpointer's latest finding; the metrics and the readiness probe read it."""

    refusal: Refusal | None = None
    #: When the current refusal began, and how many attempts were refused since.
    since: datetime | None = None
    attempts: int = 0
    #: Every refused attempt since the process started (a Prometheus counter).
    refused_total: int = 0
    #: The size of the last checkpoint this process signed or published.
    checkpoint_size: int | None = None
    #: When that checkpoint was proven to extend the published, stored and last signed ones
    #: (the compliance check ``ledger-verified-within`` reads it), and how many witnesses cosigned it.
    verified_at: datetime | None = None
    cosignatures: int = 0

    @property
    def ok(self) -> bool:
        return self.refusal is None


@dataclass(frozen=True)
class Incident:
    """What the ledger records before the first checkpoint after a refusal, or when an anchor is used."""

    refusal: Refusal | None
    since: datetime | None
    attempts: int
    anchor: Anchor | None
    tree_size: int

    def key(self) -> str:
        """What makes this incident this one, for the ledger records' idempotency keys."""
        facts = [self.since.isoformat() if self.since else "", self.refusal.message if self.refusal else ""]
        return hashlib.sha256("\n".join(facts).encode()).hexdigest()[:16]
