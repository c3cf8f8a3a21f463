"""Verifying the ledger: the chain, every stored Merkle node, and the checkpoints it must reproduce.

One pass over the records recomputes every record hash and link (the checks of
``chain.verify_chain``) and, alongside, the Merkle tree, a batch of records at a time
(``recompute``: compiled, with a pure-Python twin; neither shares code with the writer). Every
perfect node the growing tree completes is compared with the stored one (one byte comparison per
batch, the stored nodes read ahead on a thread of their own), so a wrong node anywhere in the
store is named here, not only one on the right frontier: the store serves inclusion and
consistency proofs, and a wrong node off the frontier would otherwise pass this check and fail
only at an auditor's. The tree head is known at every size on the way, and each checkpoint is
compared with it when its size is reached: every stored checkpoint, the published one, and the
one this verifier remembers from its last run.

A careful attacker who rewrites records and recomputes every hash, node and stored checkpoint is
caught by the published checkpoint, whose signature they cannot make; deleted records are caught
because the published checkpoint covers more records than the table holds. Someone who can also
roll the published checkpoint back to an older one (or replace it by a fork) is caught by a
verifier that remembers (``remembered``, kept by ``ledger.remembered`` between runs, as Go's
sumdb client keeps its latest tree): a published checkpoint older than the remembered one, or
not provably consistent with it, is refused, naming both sizes.

With witness keys, the published checkpoint must also carry a threshold of valid witness
cosignatures (``ledger.cosignature``): a witness cosigns only a checkpoint consistent with every
one it cosigned before, so someone who rewrote the history and had a new checkpoint signed over
it (with the published one rolled back first, and no verifier memory to catch it) still cannot
show the witnesses' lines.

Incremental verification starts from a trusted checkpoint: the stored nodes must reproduce its
root, and only the records (and nodes) after it are read.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from privatevault.errors import IntegrityError, LedgerUnavailable
from privatevault.ledger import merkle, recompute
from privatevault.ledger.chain import GENESIS
from privatevault.ledger.checkpoint import Checkpoint, CheckpointError, NoteVerifier, parse_and_verify
from privatevault.ledger.cosignature import CosignatureVerifier, cosigned_by
from privatevault.ledger.event import Record
from privatevault.ledger.readahead import ReadAhead
from privatevault.ledger.recompute import CopyRows
from privatevault.ledger.store import StoredCheckpoint

Progress = Callable[[int, int], None]

#: Records per batch of the pass: the stored nodes a batch completes are compared in one go.
BATCH = 16384


class LedgerReader(Protocol):
    """What the verifier reads (``ledger.store.Ledger``; an in-memory ledger in unit tests)."""

    def size(self) -> int: ...

    def record(self, seq: int) -> Record | None: ...

    def checkpoints(self) -> list[StoredCheckpoint]: ...

    def nodes(self, keys: Sequence[merkle.NodeKey]) -> dict[merkle.NodeKey, bytes]: ...

    def inclusion_proof(self, seq: int, size: int) -> list[bytes]: ...

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]: ...

    def record_copy(self, start: int, end: int) -> AbstractContextManager[CopyRows]: ...

    def node_runs(self, runs: Sequence[tuple[int, int, int]]) -> bytes: ...


class Frontier:
    """The perfect subtree roots on the tree's right edge: enough for the head at the current size."""

    def __init__(self, size: int = 0, nodes: dict[merkle.NodeKey, bytes] | None = None) -> None:
        self.size = size
        self.stack: list[tuple[int, bytes]] = [
            (level, digest) for (level, _), digest in sorted((nodes or {}).items(), key=lambda item: -item[0][0])
        ]

    def digests(self) -> tuple[bytes, ...]:
        return tuple(digest for _, digest in self.stack)

    def reset(self, size: int, digests: Sequence[bytes]) -> None:
        """The frontier at ``size``: one perfect root per set bit of the size, largest first."""
        levels = [level for level in range(size.bit_length() - 1, -1, -1) if size >> level & 1]
        self.size, self.stack = size, list(zip(levels, digests, strict=True))

    def root(self) -> bytes:
        if not self.stack:
            return merkle.EMPTY_ROOT
        digest = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            digest = merkle.node_hash(left, digest)
        return digest


@dataclass
class Report:
    records: int = 0
    verified_from: int = 1
    checkpoints: int = 0
    nodes: int = 0
    published_size: int | None = None
    remembered_size: int | None = None
    #: The witnesses whose cosignatures on the published checkpoint verified (when keys were given).
    cosigned_by: list[str] = field(default_factory=list)
    first_bad_seq: int | None = None
    problem: str | None = None
    #: The newest signed checkpoint the records reproduce (the published one, else the newest
    #: stored one): what a verifier that remembers keeps once the report is ok.
    latest: bytes | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def fail(self, problem: str, seq: int | None) -> None:
        if self.problem is None:
            self.problem, self.first_bad_seq = problem, seq


def _open(note: bytes, verifiers: Sequence[NoteVerifier], what: str) -> Checkpoint:
    try:
        return parse_and_verify(note, verifiers)
    except CheckpointError as exc:
        raise IntegrityError(f"{what} does not verify: {exc}") from exc


Targets = dict[int, list[tuple[str, bytes]]]


def _checkpoint_targets(
    ledger: LedgerReader, verifiers: Sequence[NoteVerifier], published: bytes | None, total: int, report: Report
) -> tuple[Targets, Checkpoint | None]:
    """The roots the recomputed tree must have at given sizes: every stored and the published checkpoint."""
    targets: Targets = {}
    stored = ledger.checkpoints()
    report.checkpoints = len(stored)
    for row in stored:
        what = f"stored checkpoint at size {row.size}"
        try:
            head = _open(row.note, verifiers, what)
        except IntegrityError as exc:
            report.fail(str(exc), row.size or None)
            continue
        if (head.size, head.root) != (row.size, row.root):
            report.fail(f"{what} does not match its own signed note", row.size or None)
        targets.setdefault(row.size, []).append((what, row.root))
        report.latest = row.note
    if published is None:
        return targets, None
    try:
        head = _open(published, verifiers, "the published checkpoint")
    except IntegrityError as exc:
        report.fail(str(exc), None)
        return targets, None
    report.published_size, report.latest = head.size, published
    if head.size > total:
        report.fail(
            f"records {total + 1}..{head.size} are missing: the published checkpoint covers"
            f" {head.size} records, the ledger holds {total}",
            total + 1,
        )
    targets.setdefault(head.size, []).append(("the published checkpoint", head.root))
    return targets, head


def _check_witnesses(
    published: bytes | None, witnesses: Sequence[CosignatureVerifier], threshold: int | None, report: Report
) -> None:
    needed = len(witnesses) if threshold is None else threshold
    if not 1 <= needed <= len(witnesses):
        raise IntegrityError(f"a witness threshold of {needed} with {len(witnesses)} witness key(s) cannot be met")
    if published is None:
        report.fail(f"no verified published checkpoint to find the cosignatures of {needed} witness(es) on", None)
        return
    signed, missing = cosigned_by(published, witnesses)
    report.cosigned_by = signed
    if len(signed) < needed:
        report.fail(
            f"the published checkpoint at size {report.published_size} is cosigned by {len(signed)} of the"
            f" {needed} witness(es) required; missing: {'; '.join(missing)}",
            None,
        )


def _provably_consistent(ledger: LedgerReader, older: Checkpoint, newer: Checkpoint) -> bool:
    """RFC 9162 consistency of two signed heads, with the proof made from the stored nodes."""
    try:
        proof = ledger.consistency_proof(older.size, newer.size)
    except merkle.MissingNodes:
        return False
    return merkle.verify_consistency(older.size, newer.size, older.root, newer.root, proof)


def _check_remembered(
    ledger: LedgerReader, remembered: Checkpoint, published: Checkpoint | None, total: int, report: Report
) -> None:
    """A published checkpoint older than the remembered one is a rollback; one not consistent with it, a fork."""
    size = report.remembered_size = remembered.size
    mine = f"the checkpoint at size {size} this verifier remembers"
    if size > total:
        report.fail(
            f"records {total + 1}..{size} are missing: {mine} covers {size} records, the ledger holds {total}",
            total + 1,
        )
    if published is None:
        return
    if published.origin != remembered.origin:
        report.fail(f"the published checkpoint is of {published.origin!r}, {mine} of {remembered.origin!r}", None)
    elif published.size < size:
        report.fail(f"the published checkpoint at size {published.size} is older than {mine}: a rollback", None)
    elif not _provably_consistent(ledger, remembered, published):
        report.fail(
            f"the published checkpoint at size {published.size} is not provably consistent with {mine}:"
            " a fork (or the stored Merkle tree was rewritten)",
            None,
        )


def _resume(ledger: LedgerReader, trusted: Checkpoint, report: Report) -> tuple[Frontier, bytes] | None:
    """The frontier and chain head at a trusted checkpoint, checked against it; None when they do not match."""
    frontier = Frontier(trusted.size, ledger.nodes(merkle.root_keys(trusted.size)))
    if frontier.root() != trusted.root:
        report.fail(f"the stored tree does not reproduce the trusted checkpoint at size {trusted.size}", trusted.size)
        return None
    anchor = ledger.record(trusted.size) if trusted.size else None
    if anchor is None:
        return frontier, GENESIS
    proof = ledger.inclusion_proof(trusted.size, trusted.size)
    if not merkle.verify_inclusion(
        merkle.leaf_hash(anchor.record_hash), trusted.size - 1, trusted.size, proof, trusted.root
    ):
        report.fail(f"record {trusted.size} is not the last record of the trusted checkpoint", trusted.size)
        return None
    return frontier, anchor.record_hash


def _runs(before: int, after: int) -> list[tuple[int, int, int]]:
    """The perfect nodes completed while the tree grows from ``before`` to ``after`` leaves, as
    ``(level, first index, end index)`` per level: at level ``L``, ``[before >> L, after >> L)``."""
    return [
        (level, before >> level, after >> level)
        for level in range(after.bit_length())
        if after >> level > before >> level
    ]


def _points(start: int, total: int, targets: Targets, batch: int) -> list[tuple[int, int]]:
    """The batches ``(before, after)`` from ``start`` to ``total`` leaves: every ``batch`` leaves,
    and at each checkpoint's size, so that the tree head is known there."""
    ends = {*range(start + batch, total, batch), *(size for size in targets if start < size < total)}
    if total > start:
        ends.add(total)
    return list(itertools.pairwise([start, *sorted(ends)]))  # none when there is nothing after ``start``


def _name_first_bad(ledger: LedgerReader, before: int, after: int, computed: bytes, report: Report) -> None:
    """Name the first stored node of a batch that differs from the computed one."""
    runs = _runs(before, after)
    stored = ledger.nodes([(level, index) for level, first, end in runs for index in range(first, end)])
    offset = 0
    for level, first, end in runs:
        for index in range(first, end):
            digest, offset = computed[offset : offset + merkle.HASH_SIZE], offset + merkle.HASH_SIZE
            found = stored.get((level, index))
            if found != digest:
                what = "is missing" if found is None else "does not match the records"
                node = f"stored Merkle node (level {level}, index {index})"
                records = f"records {(index << level) + 1}..{(index + 1) << level}"
                report.fail(f"{node} over {records} {what}: proofs served from it would be wrong", None)
                return


def verify(
    ledger: LedgerReader,
    *,
    verifiers: Sequence[NoteVerifier],
    published: bytes | None = None,
    trusted: Checkpoint | None = None,
    remembered: Checkpoint | None = None,
    witnesses: Sequence[CosignatureVerifier] = (),
    witness_threshold: int | None = None,
    progress: Progress | None = None,
) -> Report:
    """Check everything; the report names the first bad sequence number (or node) and what is wrong.

    ``remembered`` is the checkpoint this verifier accepted last time (already verified against
    ``verifiers``): the published checkpoint must not be older, and must be provably consistent
    with it, and the records must reproduce it. ``witnesses``: at least ``witness_threshold`` of
    them (default: all) must have cosigned the published checkpoint.
    """
    report = Report()
    total = report.records = ledger.size()
    targets, published_head = _checkpoint_targets(ledger, verifiers, published, total, report)
    if witnesses:
        _check_witnesses(published if published_head is not None else None, witnesses, witness_threshold, report)
    if remembered is not None:
        _check_remembered(ledger, remembered, published_head, total, report)
    frontier, prev = Frontier(), GENESIS
    if trusted is not None:
        resumed = _resume(ledger, trusted, report)
        if resumed is None:
            return report
        frontier, prev = resumed
        if (
            remembered is not None
            and remembered.size < trusted.size
            and not _provably_consistent(ledger, remembered, trusted)
        ):
            report.fail(
                f"the trusted checkpoint at size {trusted.size} is not provably consistent with the checkpoint"
                f" at size {remembered.size} this verifier remembers: a fork",
                None,
            )
    if remembered is not None and remembered.size >= frontier.size:
        targets.setdefault(remembered.size, []).append(
            (f"the checkpoint at size {remembered.size} this verifier remembers", remembered.root)
        )
    report.verified_from = frontier.size + 1
    _one_pass(ledger, frontier, prev=prev, targets=targets, total=total, report=report, progress=progress)
    if progress is not None:
        progress(total, total)
    return report


def _one_pass(
    ledger: LedgerReader,
    frontier: Frontier,
    *,
    prev: bytes,
    targets: Targets,
    total: int,
    report: Report,
    progress: Progress | None,
) -> None:
    """Records ``frontier.size + 1`` … ``total``: chain, every node they complete, the targets on the way.

    A batch of :data:`BATCH` records at a time, read and recomputed by :func:`_passes` (in C from
    libpq's rows, or joined on a reader thread and recomputed): the chain as
    ``chain.verify_chain`` checks it, the leaves, and every perfect node, compared with the
    stored ones the batch completes in one byte comparison per batch.
    """
    last_good = 0

    def check_targets() -> None:
        nonlocal last_good
        for what, root in targets.get(frontier.size, []):
            if frontier.root() != root:
                report.fail(f"records {last_good + 1}..{frontier.size} do not match {what}", last_good + 1)
            else:
                last_good = frontier.size

    check_targets()
    points = _points(frontier.size, total, targets, BATCH)
    if not points:  # nothing after the trusted checkpoint
        return
    nodes = ReadAhead((ledger.node_runs(_runs(*point)) for point in points), "privatevault-verify-nodes")
    # Closing the readers stops their threads (and releases their connections).
    with (
        ledger.record_copy(frontier.size + 1, total) as rows,
        _passes(rows, [after - before for before, after in points]) as recomputed,
        closing(nodes),
    ):
        for (before, after), stored in zip(points, nodes, strict=True):
            result = recomputed(after - before, frontier.size + 1, prev, frontier.digests())
            frontier.reset(result.next_seq - 1, result.frontier)
            prev = result.prev
            if result.problem is not None:
                report.fail(result.problem.describe(), result.problem.seq)
                return
            if frontier.size < after:  # the table ends before ``total``: the rest is missing
                break
            check_targets()
            if report.ok:  # after the first problem, the nodes are not worth comparing
                if stored != result.nodes:
                    _name_first_bad(ledger, before, after, result.nodes, report)
                report.nodes += len(result.nodes) // merkle.HASH_SIZE
            if progress is not None:
                progress(frontier.size, total)
    if frontier.size < total:
        report.fail(f"records {frontier.size + 1}..{total} are missing", frontier.size + 1)


Recomputed = Callable[[int, int, bytes, tuple[bytes, ...]], recompute.Result]


@contextmanager
def _passes(rows: CopyRows, counts: list[int]) -> Iterator[Recomputed]:
    """The pass over the next ``count`` records of ``rows``, batch after batch (``counts``).

    Compiled, the rows are taken from libpq by the C pass itself as PostgreSQL sends them
    (``recompute.recompute_copy``), no Python per row; otherwise they are joined per batch on a
    thread of their own, a batch or two ahead, and recomputed by :func:`recompute.recompute`.
    """
    streamed = recompute.recompute_copy
    if streamed is not None and rows.native() is not None:
        left = sum(counts)

        def from_libpq(count: int, next_seq: int, prev: bytes, frontier: tuple[bytes, ...]) -> recompute.Result:
            nonlocal left
            try:
                result = streamed(rows, count, next_seq, prev, frontier)
            except recompute.CopyFailed as exc:
                raise LedgerUnavailable(f"the audit ledger cannot be read: {exc}") from exc
            left -= count
            if not left and result.problem is None:
                rows.finish()  # the trailer: the COPY ends here, not cancelled
            return result

        yield from_libpq
        return
    batches = ReadAhead(rows.batches(counts), "privatevault-verify-records")
    with closing(batches):
        joined = iter(batches)

        def from_batches(count: int, next_seq: int, prev: bytes, frontier: tuple[bytes, ...]) -> recompute.Result:
            del count  # the batch holds it
            return recompute.recompute(next(joined, b""), next_seq, prev, frontier)

        yield from_batches
