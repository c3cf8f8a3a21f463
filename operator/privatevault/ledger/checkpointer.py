"""Issuing checkpoints: every N records or T seconds, and never one over a rewritten history.

Before a tree head is signed, the checkpointer proves (RFC 9162 consistency, from the stored
nodes) that the tree extends every head signed before it that it can see:

* the checkpoint **published outside the database** (the ConfigMap in the operator's namespace),
  read only now, when about to sign, and verified with the operator's own keys;
* the newest checkpoint **stored in the database**;
* the head **this process signed last**, kept in memory.

The database's own checkpoint is no anchor against someone who controls the database: a
PostgreSQL superuser can rewrite a record, recompute every hash and node and delete the stored
checkpoints. The published one is out of their reach, and the remembered one out of everyone's
while the process runs. When any proof fails, the tree is shorter than a signed head, the
published note does not verify, or it is missing while the ledger has signed before, the
checkpointer signs nothing, keeps what is published, and raises the alarm (``Alarm``, built by
the composition root: log, Event, condition, metric and readiness read :class:`Integrity`). It
retries on the policy's interval; nothing it does clears the alarm but a tree that verifies
again (records restored) or an :class:`~privatevault.ledger.integrity.Anchor` a person wrote with
``pvctl audit reanchor``. Either way the incident is recorded in the ledger first, so the next
checkpoint covers it.

An idle tick is one query (the ledger's size); the ConfigMap is read only by :meth:`issue`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from privatevault.errors import IntegrityError, PrivateVaultError
from privatevault.ledger import merkle
from privatevault.ledger.checkpoint import (
    CheckpointError,
    NoteSigner,
    parse_and_verify,
    parse_verifier_key,
    sign_checkpoint,
)
from privatevault.ledger.integrity import Anchor, Incident, Integrity, Published, Refusal
from privatevault.ledger.store import StoredCheckpoint

log = logging.getLogger("privatevault.ledger.checkpointer")


class CheckpointLedger(Protocol):
    """What the checkpointer reads and writes (``ledger.store.Ledger``; memory in unit tests)."""

    def size(self) -> int: ...

    def latest_checkpoint(self) -> StoredCheckpoint | None: ...

    def root(self, size: int) -> bytes: ...

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]: ...

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> bool: ...


class Publication(Protocol):
    """Where checkpoints are published outside the database (the operator's ConfigMap)."""

    def read(self) -> Published:
        """What is published now, read live: never a cached copy."""
        ...

    def publish(self, checkpoint: StoredCheckpoint) -> None: ...


class Cosigners(Protocol):
    """The witnesses (``privatevault.witness.client.Witnesses``): cosignature lines for a new checkpoint."""

    def cosign(self, note: bytes, size: int, proof: Callable[[int], Sequence[bytes]]) -> bytes:
        """The lines of the witnesses that cosigned ``note``, given the consistency proof from any
        old size to ``size``; never raises for a witness's failure (it is logged and counted)."""
        ...


class Alarm(Protocol):
    """Where a refusal is raised and an incident closed (the composition root's alarm)."""

    def refused(self, refusal: Refusal, integrity: Integrity) -> None:
        """No checkpoint was signed; called on every refused attempt (``integrity.attempts`` counts them)."""
        ...

    def resolved(self, incident: Incident) -> None:
        """The tree extends what was signed again, or a person re-anchored it: record the incident
        in the ledger now, before the checkpoint that will cover it is signed."""
        ...

    def signed(self, checkpoint: StoredCheckpoint) -> None:
        """A checkpoint was signed (or the latest re-published): the ledger verifies."""
        ...


class CheckpointRefused(IntegrityError):
    """No checkpoint was signed: the tree cannot be shown to extend a head signed before."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


@dataclass(frozen=True)
class Policy:
    every_records: int = 1000
    every_seconds: float = 60.0

    def due(self, *, size: int, last_size: int, seconds_since_last: float, refusing: bool = False) -> bool:
        """Due when records were added and enough of them, or enough time, passed; while the last
        attempt was refused, again every ``every_seconds`` (the records may have been restored)."""
        if refusing:
            return seconds_since_last >= self.every_seconds
        if size <= last_size:
            return False
        return size - last_size >= self.every_records or seconds_since_last >= self.every_seconds


@dataclass(frozen=True)
class Head:
    """A signed (or vouched-for) tree head the ledger must extend, and where it was found."""

    source: str  # CamelCase, for refusal reasons: Published, Stored, LastSigned, Anchor
    what: str
    size: int
    root: bytes


def judge(
    size: int, root: bytes, heads: Sequence[Head], proofs: dict[tuple[int, int], Sequence[bytes]]
) -> Refusal | None:
    """Whether the tree ``(size, root)`` provably extends every head: None, or why not.

    ``proofs`` holds the RFC 9162 consistency proof from each head's size to ``size``.
    """
    for head in heads:
        if head.size > size:
            return Refusal(
                f"LedgerShorterThan{head.source}",
                f"the ledger holds {size} records, but {head.what} covers {head.size}:"
                f" records {size + 1}..{head.size} are gone",
                size,
            )
        if not merkle.verify_consistency(head.size, size, head.root, root, proofs[(head.size, size)]):
            return Refusal(
                f"InconsistentWith{head.source}",
                f"the tree at size {size} is not consistent with {head.what} at size {head.size}:"
                f" records 1..{head.size} (or their Merkle nodes) changed after they were signed",
                size,
            )
    return None


@dataclass(frozen=True)
class _Verdict:
    """What :meth:`Checkpointer._check` found: the tree's root, or a refusal, and the anchor it used."""

    root: bytes
    refusal: Refusal | None
    anchor: Anchor | None


class Checkpointer:
    def __init__(
        self,
        ledger: CheckpointLedger,
        signers: Sequence[NoteSigner],
        *,
        origin: str,
        publication: Publication,
        alarm: Alarm,
        policy: Policy | None = None,
        witnesses: Cosigners | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._ledger, self.signers, self._origin, self._witnesses = ledger, signers, origin, witnesses
        self._publication, self._alarm, self._clock = publication, alarm, clock
        self._verifiers = [parse_verifier_key(signer.verifier_key) for signer in signers]
        self.policy = policy or Policy()
        self.integrity = Integrity()
        self._last_issued = time.monotonic()
        self._last_size = 0  # of the last checkpoint this process saw; issue() reads the stored one
        self._last_signed: Head | None = None
        self._cosignatures = 0  # witness lines on the last checkpoint cosigned

    # -- gather, then decide ------------------------------------------------------------------

    def _published_head(
        self, published: Published, size: int, stored: StoredCheckpoint | None
    ) -> Head | Refusal | None:
        if published.note is None:
            signed_before = stored or self._last_signed
            if signed_before is None:
                return None  # the first checkpoint of a new ledger
            return Refusal(
                "PublishedCheckpointMissing",
                f"no checkpoint is published, but the ledger signed one at size {signed_before.size} before:"
                " the published checkpoint was deleted",
                size,
            )
        try:
            head = parse_and_verify(published.note, self._verifiers, origin=self._origin)
        except CheckpointError as exc:
            return Refusal(
                "PublishedCheckpointInvalid",
                f"the published checkpoint does not verify with the operator's keys: {exc}",
                size,
            )
        return Head("Published", "the published checkpoint", head.size, head.root)

    def _check(self, size: int, stored: StoredCheckpoint | None, published: Published) -> _Verdict:
        """Read the root and the proofs from every head to ``size``, then :func:`judge`."""
        anchor = published.anchor
        if anchor is not None and anchor.abandoned.encode() != (published.note or b""):
            log.warning("ignoring a re-anchor that abandons a checkpoint other than the one published")
            anchor = None
        heads: list[Head] = []
        if anchor is not None:
            # A person vouched for this head in place of everything signed before it.
            heads.append(Head("Anchor", "the re-anchored head", anchor.size, anchor.root))
            published_size = None
        else:
            found = self._published_head(published, size, stored)
            if isinstance(found, Refusal):
                return _Verdict(b"", found, None)
            if found is not None:
                heads.append(found)
            published_size = None if found is None else found.size
            if self._last_signed is not None:
                heads.append(self._last_signed)
        if stored is not None:
            heads.append(Head("Stored", "the stored checkpoint", stored.size, stored.root))
        try:
            root = self._ledger.root(size)
            proofs: dict[tuple[int, int], Sequence[bytes]] = {
                (head.size, size): self._ledger.consistency_proof(head.size, size)
                for head in heads
                if head.size <= size
            }
        except merkle.MissingNodes as exc:
            return _Verdict(
                b"", Refusal("MerkleNodesMissing", f"the tree at size {size} cannot be read: {exc}", size), None
            )
        refusal = judge(size, root, heads, proofs)
        if refusal is not None:
            refusal = Refusal(refusal.reason, refusal.message, refusal.tree_size, published_size)
        return _Verdict(root, refusal, anchor)

    # -- acting -------------------------------------------------------------------------------

    def issue(self) -> StoredCheckpoint:
        """Sign, store and publish the head at the current size (or re-publish the latest).

        Raises :class:`CheckpointRefused` when the tree cannot be shown to extend what was signed.
        """
        published = self._publication.read()  # the one read outside the database, only when about to sign
        size, stored = self._ledger.size(), self._ledger.latest_checkpoint()
        verdict = self._check(size, stored, published)
        if verdict.refusal is not None:
            self._refuse(verdict.refusal, size)
        if not self.integrity.ok or verdict.anchor is not None:
            integrity = self.integrity
            self._alarm.resolved(Incident(integrity.refusal, integrity.since, integrity.attempts, verdict.anchor, size))
            self.integrity.refusal, self.integrity.since, self.integrity.attempts = None, None, 0
            if verdict.anchor is not None:
                self._last_signed = None  # the anchor replaces every head signed before it
            size, stored = self._ledger.size(), self._ledger.latest_checkpoint()
            verdict = self._check(size, stored, published)  # the incident's records extend the same tree
            if verdict.refusal is not None:
                self._refuse(verdict.refusal, size)
        return self._sign(size, verdict.root, stored)

    def _refuse(self, refusal: Refusal, size: int) -> None:
        integrity = self.integrity
        if integrity.refusal is None:
            integrity.since, integrity.attempts = self._clock(), 0
        integrity.refusal = refusal
        integrity.attempts += 1
        integrity.refused_total += 1
        self._last_issued, self._last_size = time.monotonic(), size  # next attempt when the policy says
        try:
            self._alarm.refused(refusal, integrity)
        except PrivateVaultError as exc:  # the refusal stands even when raising it elsewhere failed
            log.error("ledger integrity: %s; the alarm could not be raised everywhere: %s", refusal.message, exc)
        raise CheckpointRefused(refusal)

    def _sign(self, size: int, root: bytes, stored: StoredCheckpoint | None) -> StoredCheckpoint:
        if stored is not None and stored.size == size and self._signed_by_us(stored):
            checkpoint = stored  # nothing new: make sure the latest is published
        else:
            checkpoint = StoredCheckpoint(size, root, sign_checkpoint(self._origin, size, root, self.signers))
            if not self._ledger.add_checkpoint(checkpoint):
                # Another replica signed this size first; publish what is stored, not ours.
                latest = self._ledger.latest_checkpoint()
                if latest is not None and (latest.size, latest.root) == (size, root) and self._signed_by_us(latest):
                    checkpoint = latest
            checkpoint = self._cosigned(checkpoint)
        self._publication.publish(checkpoint)
        self._last_signed = Head(
            "LastSigned", "the checkpoint this process signed last", checkpoint.size, checkpoint.root
        )
        self._last_issued, self._last_size = time.monotonic(), checkpoint.size
        self.integrity.checkpoint_size = checkpoint.size
        self.integrity.verified_at = self._clock()
        self.integrity.cosignatures = self._cosignatures
        self._alarm.signed(checkpoint)
        return checkpoint

    def _cosigned(self, checkpoint: StoredCheckpoint) -> StoredCheckpoint:
        """The new checkpoint with the witnesses' cosignature lines, to publish (the database keeps
        the log's own note): a witness that fails leaves its line out, never the checkpoint."""
        if self._witnesses is None:
            return checkpoint
        size = checkpoint.size
        lines = self._witnesses.cosign(checkpoint.note, size, lambda old: self._ledger.consistency_proof(old, size))
        self._cosignatures = len(lines.splitlines())
        return replace(checkpoint, note=checkpoint.note + lines)

    def _signed_by_us(self, stored: StoredCheckpoint) -> bool:
        try:
            parse_and_verify(stored.note, self._verifiers, origin=self._origin)
        except CheckpointError:
            return False  # signed with other keys: sign the same head again, with ours
        return True

    def tick(self) -> StoredCheckpoint | None:
        """Issue a checkpoint if the policy says one is due (one query when it is not)."""
        size = self._ledger.size()
        if self.policy.due(
            size=size,
            last_size=self._last_size,
            seconds_since_last=time.monotonic() - self._last_issued,
            refusing=not self.integrity.ok,
        ):
            return self.issue()
        return None

    def run(self, stop: threading.Event, *, poll: float = 1.0, on_error: Callable[[Exception], None]) -> None:
        """Tick until ``stop`` is set; errors are reported and retried on the next tick."""
        while not stop.wait(poll):
            try:
                self.tick()
            except CheckpointRefused:
                continue  # the alarm has raised it
            except PrivateVaultError as exc:
                on_error(exc)
