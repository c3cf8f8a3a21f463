"""The checkpointer signs a checkpoint when the policy says so and an idle tick costs one query; it
never signs over a rewritten history: before signing it proves the tree extends the checkpoint
published outside the database (read only then), the stored one and the one it signed last, and
when it cannot it signs nothing, keeps what is published, raises the alarm on every attempt and
retries on the policy's interval; only records restored or a re-anchor matching what is published
end the incident, which is recorded in the ledger before the next checkpoint covers it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privatevault.errors import ClusterUnavailable
from privatevault.ledger import merkle
from privatevault.ledger.checkpoint import LocalSigner, sign_checkpoint
from privatevault.ledger.checkpointer import Checkpointer, CheckpointRefused, Policy
from privatevault.ledger.integrity import Anchor, Incident, Integrity, Published, Refusal
from privatevault.ledger.store import StoredCheckpoint

from .fakes import MemoryLedger, ledger_event

ORIGIN = "privatevault.io/test"


class ConfigMap:
    """The published checkpoint outside the database, with the app publisher's rule: never a smaller
    size, unless a re-anchor abandons what is there (and publishing removes the anchor)."""

    def __init__(self) -> None:
        self.note: bytes | None = None
        self.anchor: Anchor | None = None
        self.reads = 0
        self.sizes: list[int] = []

    @property
    def size(self) -> int:
        return int(self.note.split(b"\n")[1]) if self.note else -1

    def read(self) -> Published:
        self.reads += 1
        return Published(self.note, self.anchor)

    def publish(self, checkpoint: StoredCheckpoint) -> None:
        abandoned = self.anchor is not None and self.anchor.abandoned.encode() == (self.note or b"")
        if self.size >= checkpoint.size and not abandoned:
            return
        self.note, self.anchor = checkpoint.note, None
        self.sizes.append(checkpoint.size)


class Alarm:
    """Records what the checkpointer raised; writes an incident record as the app's alarm does."""

    def __init__(self, ledger: MemoryLedger) -> None:
        self.ledger = ledger
        self.refusals: list[tuple[Refusal, int]] = []
        self.incidents: list[Incident] = []
        self.signed_sizes: list[int] = []
        self.broken = False

    def refused(self, refusal: Refusal, integrity: Integrity) -> None:
        self.refusals.append((refusal, integrity.attempts))
        if self.broken:
            raise ClusterUnavailable("the API server is down (fake)")

    def resolved(self, incident: Incident) -> None:
        self.incidents.append(incident)
        self.ledger.append(ledger_event(f"operator/incident/{incident.key()}"))

    def signed(self, checkpoint: StoredCheckpoint) -> None:
        self.signed_sizes.append(checkpoint.size)


@dataclasses.dataclass
class Operator:
    ledger: MemoryLedger
    configmap: ConfigMap
    alarm: Alarm
    signer: LocalSigner
    checkpointer: Checkpointer

    def restart(self) -> Operator:
        """A new process over the same database and ConfigMap: it remembers nothing of its own."""
        return operator(self.ledger, self.configmap, self.signer)


def operator(
    ledger: MemoryLedger | None = None,
    configmap: ConfigMap | None = None,
    signer: LocalSigner | None = None,
    *,
    every_seconds: float = 3600,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Operator:
    ledger = ledger or MemoryLedger()
    configmap = configmap or ConfigMap()
    signer = signer or LocalSigner(ORIGIN, Ed25519PrivateKey.generate())
    alarm = Alarm(ledger)
    checkpointer = Checkpointer(
        ledger,
        [signer],
        origin=ORIGIN,
        publication=configmap,
        alarm=alarm,
        policy=Policy(every_records=10, every_seconds=every_seconds),
        clock=clock,
    )
    return Operator(ledger, configmap, alarm, signer, checkpointer)


@pytest.fixture
def running() -> Operator:
    """An operator that signed and published checkpoints at 10 and 20."""
    op = operator()
    for _ in range(2):
        op.ledger.add(10)
        op.checkpointer.issue()
    assert op.configmap.sizes == [10, 20]
    return op


def refused(op: Operator) -> Refusal:
    with pytest.raises(CheckpointRefused) as raised:
        op.checkpointer.issue()
    return raised.value.refusal


# -- the cadence --------------------------------------------------------------------------------


def test_issues_every_n_records_and_idles_on_one_query() -> None:
    op = operator()
    op.checkpointer.issue()
    op.ledger.add(9)
    op.ledger.calls.clear()
    reads = op.configmap.reads
    assert op.checkpointer.tick() is None
    assert op.ledger.calls == ["size"]
    assert op.configmap.reads == reads  # the ConfigMap is read only when about to sign
    op.ledger.add(1)
    issued = op.checkpointer.tick()
    assert issued is not None and issued.size == 10
    assert op.configmap.sizes == [0, 10]
    assert op.alarm.refusals == [] and op.checkpointer.integrity.ok


def test_an_idle_ledger_is_verified_again_on_the_policys_interval() -> None:
    policy = Policy(every_records=10, every_seconds=60, verify_every_seconds=3600)
    assert not policy.due(size=5, last_size=5, seconds_since_last=3599)
    assert policy.due(size=5, last_size=5, seconds_since_last=3600)


def test_the_time_of_the_last_verification_is_kept_and_a_refusal_keeps_it() -> None:
    times = iter(datetime(2026, 1, 1, hour, tzinfo=UTC) for hour in range(10))
    op = operator(clock=lambda: next(times))
    assert op.checkpointer.integrity.verified_at is None
    op.ledger.add(10)
    op.checkpointer.issue()
    assert op.checkpointer.integrity.verified_at == datetime(2026, 1, 1, 0, tzinfo=UTC)
    op.checkpointer.issue()  # nothing new: proved consistent again and re-published
    assert op.checkpointer.integrity.verified_at == datetime(2026, 1, 1, 1, tzinfo=UTC)
    op.ledger.rewrite(3)
    refused(op)
    assert op.checkpointer.integrity.verified_at == datetime(2026, 1, 1, 1, tzinfo=UTC)


def test_nothing_new_republishes_the_latest_without_signing_again(running: Operator) -> None:
    running.configmap.note = running.ledger.stored[0].note  # a publication that failed half-way, say
    assert running.checkpointer.issue().size == 20
    assert running.configmap.size == 20 and len(running.ledger.stored) == 2


# -- never over a rewrite ------------------------------------------------------------------------


def test_a_rewritten_history_gets_no_checkpoint(running: Operator) -> None:
    """The careful insider: one record changed, every hash and node recomputed, stored checkpoints dropped."""
    published = running.configmap.note
    running.ledger.rewrite(5)
    running.ledger.add(10)
    for attempt in (1, 2, 3):
        refusal = refused(running)
        assert running.alarm.refusals[-1] == (refusal, attempt)
    assert refusal.reason == "InconsistentWithPublished"
    assert refusal.message.startswith("the tree at size 30 is not consistent with the published checkpoint at size 20")
    assert (refusal.tree_size, refusal.published_size) == (30, 20)
    assert running.configmap.note == published and running.configmap.sizes == [10, 20]
    assert running.ledger.stored == []
    integrity = running.checkpointer.integrity
    assert not integrity.ok and integrity.attempts == 3 and integrity.refused_total == 3
    assert integrity.since is not None
    # A restarted process, which remembers nothing of its own, refuses all the same.
    restarted = running.restart()
    assert refused(restarted).reason == "InconsistentWithPublished"


@pytest.mark.parametrize(
    ("tamper", "reason", "message"),
    [
        (
            lambda op: op.ledger.truncate(15),
            "LedgerShorterThanPublished",
            "the ledger holds 15 records, but the published checkpoint covers 20: records 16..20 are gone",
        ),
        (
            lambda op: setattr(op.configmap, "note", op.configmap.note.replace(b"\n20\n", b"\n21\n")),
            "PublishedCheckpointInvalid",
            "the published checkpoint does not verify with the operator's keys",
        ),
        (
            lambda op: setattr(
                op.configmap,
                "note",
                sign_checkpoint(ORIGIN, 20, op.ledger.root(20), [LocalSigner(ORIGIN, Ed25519PrivateKey.generate())]),
            ),
            "PublishedCheckpointInvalid",
            "the published checkpoint does not verify with the operator's keys",
        ),
        (
            lambda op: setattr(op.configmap, "note", None),
            "PublishedCheckpointMissing",
            "no checkpoint is published, but the ledger signed one at size 20 before",
        ),
        (
            lambda op: op.ledger.tree.pop((2, 4)),  # on the frontier at 20
            "MerkleNodesMissing",
            "the tree at size 20 cannot be read",
        ),
    ],
    ids=["records-deleted", "note-edited", "someone-elses-key", "configmap-deleted", "node-deleted"],
)
def test_what_cannot_be_shown_to_extend_the_published_checkpoint_is_refused(
    running: Operator, tamper: object, reason: str, message: str
) -> None:
    tamper(running)  # type: ignore[operator]
    refusal = refused(running)
    assert (refusal.reason, refusal.message[: len(message)]) == (reason, message)
    assert running.configmap.sizes == [10, 20]


def test_stored_and_last_signed_heads_are_anchors_too(running: Operator) -> None:
    # Someone with access to both rolls the ConfigMap back below the rewritten record.
    running.configmap.note = running.ledger.stored[0].note  # the checkpoint at 10
    running.ledger.rewrite(15, drop_checkpoints=False)
    assert refused(running).reason == "InconsistentWithLastSigned"
    running.ledger.stored = running.ledger.stored[:1]  # ... and drops the stored checkpoint at 20
    assert refused(running).reason == "InconsistentWithLastSigned"  # this process still knows


def test_what_the_checkpointer_alone_cannot_see(running: Operator) -> None:
    """A restarted process behind a ConfigMap rolled back below the rewrite has nothing left that
    the rewrite contradicts: it signs. Verifiers that remember catch this (test_verify), and
    witnesses are to (docs/ledger-threat-model.md)."""
    running.configmap.note = running.ledger.stored[0].note
    running.ledger.rewrite(15)
    running.configmap.sizes.clear()
    assert running.restart().checkpointer.issue().size == 20


def test_a_failing_alarm_does_not_turn_a_refusal_into_a_signature(running: Operator) -> None:
    running.alarm.broken = True
    running.ledger.rewrite(5)
    assert refused(running).reason == "InconsistentWithPublished"
    assert running.ledger.stored == [] and running.configmap.sizes == [10, 20]


# -- while refusing ----------------------------------------------------------------------------


def test_refusals_are_retried_on_the_policys_interval_even_without_new_records() -> None:
    op = operator(every_seconds=0)
    op.ledger.add(10)
    op.checkpointer.issue()
    op.ledger.rewrite(3)
    op.ledger.add(1)
    with pytest.raises(CheckpointRefused):
        op.checkpointer.tick()
    with pytest.raises(CheckpointRefused):
        op.checkpointer.tick()  # no new record, still tried again: the records may have been restored
    assert op.checkpointer.integrity.attempts == 2


def test_restored_records_end_the_incident_and_the_next_checkpoint_covers_its_record(running: Operator) -> None:
    original = list(running.ledger.rows), dict(running.ledger.tree), list(running.ledger.stored)
    running.ledger.rewrite(5)
    refused(running)
    refused(running)
    running.ledger.rows, running.ledger.tree, running.ledger.stored = original  # restored from a backup
    issued = running.checkpointer.issue()
    [incident] = running.alarm.incidents
    assert incident.refusal is not None and incident.refusal.reason == "InconsistentWithPublished"
    assert (incident.attempts, incident.anchor, incident.tree_size) == (2, None, 20)
    assert issued.size == 21  # the incident's record, signed over
    assert running.ledger.rows[-1].idempotency_key == f"operator/incident/{incident.key()}"
    assert running.configmap.sizes == [10, 20, 21]
    assert running.checkpointer.integrity.ok and running.checkpointer.integrity.refused_total == 2


def test_a_reanchor_of_what_is_published_ends_the_incident(running: Operator) -> None:
    running.ledger.rewrite(5)
    running.ledger.add(2)
    refused(running)
    anchor = Anchor(
        abandoned=(running.configmap.note or b"").decode(),
        size=22,
        root=running.ledger.root(22),
        reason="record 5 rewritten by an insider, no backup; incident SEC-1",
        by="alice",
        at="2026-11-30T12:00:00Z",
    )
    running.configmap.anchor = dataclasses.replace(anchor, abandoned="someone else's note")
    assert refused(running).reason == "InconsistentWithPublished"  # an anchor for another note is ignored
    running.configmap.anchor = anchor
    issued = running.checkpointer.issue()
    [incident] = running.alarm.incidents
    assert incident.anchor == anchor and incident.refusal is not None
    assert issued.size == 23 and running.configmap.sizes == [10, 20, 23]
    assert running.configmap.anchor is None  # publishing consumed it
    assert running.checkpointer.integrity.ok
    running.ledger.add(10)
    assert running.checkpointer.issue().size == 33  # from now on, the new head is the anchor


def test_a_reanchor_below_the_published_size_replaces_it(running: Operator) -> None:
    """The database came back from a backup older than the published checkpoint."""
    running.ledger.truncate(12)
    assert refused(running).reason == "LedgerShorterThanPublished"
    running.ledger.stored = running.ledger.stored[:1]
    running.configmap.anchor = Anchor(
        (running.configmap.note or b"").decode(), 12, running.ledger.root(12), "restored from backup", "bob", "t"
    )
    assert running.checkpointer.issue().size == 13
    assert running.configmap.size == 13


def test_a_new_ledger_behind_an_earlier_publication_needs_a_reanchor_at_the_empty_tree(running: Operator) -> None:
    """A cluster kept from an earlier demo (or a database recreated on purpose): `pvctl demo up` re-anchors."""
    fresh = operator(MemoryLedger(), running.configmap, running.signer)
    fresh.ledger.add(2)
    assert refused(fresh).reason == "LedgerShorterThanPublished"
    fresh.configmap.anchor = Anchor(
        (fresh.configmap.note or b"").decode(), 0, merkle.EMPTY_ROOT, "a new demo ledger", "pvctl demo up", "t"
    )
    assert fresh.checkpointer.issue().size == 3  # its two records and the incident's
    assert fresh.configmap.size == 3
