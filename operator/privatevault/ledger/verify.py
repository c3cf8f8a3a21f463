"""Verifying the ledger: the chain, every stored Merkle node, and the checkpoints it must reproduce.

One pass over the records recomputes every record hash and link (``chain.verify_chain``) and,
alongside, the Merkle tree. Every perfect node the growing tree completes is compared with the
stored one (:class:`_NodeCheck`, a batch per level at a time), so a wrong node anywhere in the
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

import hashlib
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Protocol

from privatevault.errors import IntegrityError
from privatevault.ledger import merkle
from privatevault.ledger.chain import GENESIS, verify_chain
from privatevault.ledger.checkpoint import Checkpoint, CheckpointError, NoteVerifier, parse_and_verify
from privatevault.ledger.cosignature import CosignatureVerifier, cosigned_by
from privatevault.ledger.event import Record
from privatevault.ledger.store import StoredCheckpoint

Progress = Callable[[int, int], None]


class LedgerReader(Protocol):
    """What the verifier reads (``ledger.store.Ledger``; an in-memory ledger in unit tests)."""

    def size(self) -> int: ...

    def record(self, seq: int) -> Record | None: ...

    def checkpoints(self) -> list[StoredCheckpoint]: ...

    def nodes(self, keys: Sequence[merkle.NodeKey]) -> dict[merkle.NodeKey, bytes]: ...

    def inclusion_proof(self, seq: int, size: int) -> list[bytes]: ...

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]: ...

    def stream(self, *, start: int = 1, end: int | None = None) -> Iterator[tuple[int, bytes, bytes, bytes]]: ...

    def node_runs(self, runs: Sequence[tuple[int, int, int]]) -> bytes: ...


class Frontier:
    """The perfect subtree roots on the tree's right edge: enough for the head at the current size."""

    def __init__(self, size: int = 0, nodes: dict[merkle.NodeKey, bytes] | None = None) -> None:
        self.size = size
        self.stack: list[tuple[int, bytes]] = [
            (level, digest) for (level, _), digest in sorted((nodes or {}).items(), key=lambda item: -item[0][0])
        ]

    def add(self, leaf: bytes) -> None:
        level, digest, index = 0, leaf, self.size
        while index & 1:
            digest = merkle.node_hash(self.stack.pop()[1], digest)
            level, index = level + 1, index >> 1
        self.stack.append((level, digest))
        self.size += 1

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


class _NodeCheck:
    """Compares every perfect node the pass completes with the stored one, a batch of leaves at a time.

    The pass appends each completed node's hash to ``completed[level]``; every :attr:`BATCH`
    leaves (and at the end) the stored nodes completed meanwhile are read as one value (the
    server concatenates them, :meth:`Ledger.node_runs`) and compared with the computed ones
    joined, so a node costs the pass a list append and a share of one byte comparison. Which
    nodes each batch completes depends only on the sizes, so a thread reads the next batch's
    stored nodes while the pass hashes this one's records.
    """

    BATCH = 16384

    def __init__(self, ledger: LedgerReader, start: int, end: int, report: Report) -> None:
        self._ledger, self._report, self._done = ledger, report, start
        self.completed: list[list[bytes]] = [[] for _ in range(end.bit_length() + 1)]
        points = [*range(start + self.BATCH, end, self.BATCH), end] if end > start else []
        self._stored: queue.Queue[bytes | Exception] = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._reader = threading.Thread(
            target=self._read_ahead, args=(start, points), name="privatevault-verify-nodes", daemon=True
        )
        self._reader.start()

    def _read_ahead(self, start: int, points: list[int]) -> None:
        before = start
        for after in points:
            item: bytes | Exception
            try:
                item = self._ledger.node_runs(_runs(before, after))
            except Exception as exc:  # handed to the pass, which raises it
                item = exc
            while not self._stop.is_set():
                try:
                    self._stored.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set() or isinstance(item, Exception):
                return
            before = after

    def close(self) -> None:
        self._stop.set()
        self._reader.join()

    def flush(self) -> None:
        """Compare the nodes completed since the last flush (every BATCH leaves, and at the end)."""
        after = self._done + len(self.completed[0])
        if after == self._done:
            return
        if self._report.ok:  # after the first problem, the rest is not worth reading
            stored = self._stored.get()
            if isinstance(stored, Exception):
                raise stored
            computed = b"".join(map(b"".join, self.completed))
            if stored != computed:
                self._name_first_bad(_runs(self._done, after))
            self._report.nodes += len(computed) // merkle.HASH_SIZE
        for level in self.completed:
            level.clear()
        self._done = after

    def _name_first_bad(self, runs: list[tuple[int, int, int]]) -> None:
        stored = self._ledger.nodes([(level, index) for level, first, end in runs for index in range(first, end)])
        for (level, first, _), computed in zip(runs, self.completed, strict=False):
            for index, digest in enumerate(computed, start=first):
                found = stored.get((level, index))
                if found != digest:
                    what = "is missing" if found is None else "does not match the records"
                    node = f"stored Merkle node (level {level}, index {index})"
                    records = f"records {(index << level) + 1}..{(index + 1) << level}"
                    self._report.fail(f"{node} over {records} {what}: proofs served from it would be wrong", None)
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
    """Records ``frontier.size + 1`` … ``total``: chain, every node they complete, the targets on the way."""
    start, last_good = frontier.size + 1, 0

    def check_targets() -> None:
        nonlocal last_good
        for what, root in targets.get(frontier.size, []):
            if frontier.root() != root:
                report.fail(f"records {last_good + 1}..{frontier.size} do not match {what}", last_good + 1)
            else:
                last_good = frontier.size

    nodes = _NodeCheck(ledger, frontier.size, total, report)

    def tapped() -> Generator[tuple[int, bytes, bytes, bytes]]:
        # Frontier.add(), merkle.leaf_hash() and node_hash() inlined: this is the hot loop.
        check_targets()
        stack, sha256, completed, batch = frontier.stack, hashlib.sha256, nodes.completed, nodes.BATCH
        leaves, size = completed[0], frontier.size
        try:
            for row in ledger.stream(start=start, end=total):
                yield row
                digest = sha256(b"\x00" + row[3]).digest()
                leaves.append(digest)
                index, level = size, 0
                while index & 1:
                    digest = sha256(b"\x01" + stack.pop()[1] + digest).digest()
                    index, level = index >> 1, level + 1
                    completed[level].append(digest)
                stack.append((level, digest))
                size += 1
                if size in targets:
                    frontier.size = size
                    check_targets()
                if len(leaves) >= batch:
                    nodes.flush()
                if progress is not None and not size % 50_000:
                    progress(size, total)
        finally:
            frontier.size = size

    # Closing the stream releases its connection; closing the node check stops its reader thread.
    with closing(nodes), closing(tapped()) as records:
        broken = verify_chain(records, start_hash=prev, start_seq=start)
        if broken is not None:
            report.fail(broken.problem, broken.seq)
        elif frontier.size < total:
            report.fail(f"records {frontier.size + 1}..{total} are missing", frontier.size + 1)
        else:
            nodes.flush()
