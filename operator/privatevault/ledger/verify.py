"""Verifying the ledger: the chain, the Merkle tree, the stored and the published checkpoints.

One pass over the records recomputes every record hash and link (``chain.verify_chain``) and,
alongside, the Merkle tree's right frontier, so the tree head is known at every size on the way:
each stored checkpoint and the published one are compared with it when their size is reached.
A careful attacker who rewrites records and recomputes every hash, node and stored checkpoint is
caught by the published checkpoint, whose signature they cannot make; deleted records are caught
because the published checkpoint covers more records than the table holds.

Incremental verification starts from a trusted checkpoint: the stored nodes must reproduce its
root, and only the records after it are read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Sequence
from contextlib import closing
from dataclasses import dataclass, field

from privatevault.errors import IntegrityError
from privatevault.ledger import merkle
from privatevault.ledger.chain import GENESIS, verify_chain
from privatevault.ledger.checkpoint import Checkpoint, CheckpointError, NoteVerifier, parse_and_verify
from privatevault.ledger.store import Ledger

Progress = Callable[[int, int], None]


class Frontier:
    """The perfect subtree roots on the tree's right edge: enough for the head at the current size."""

    def __init__(self, size: int = 0, nodes: dict[merkle.NodeKey, bytes] | None = None) -> None:
        self.size = size
        self._stack: list[tuple[int, bytes]] = [
            (level, digest) for (level, _), digest in sorted((nodes or {}).items(), key=lambda item: -item[0][0])
        ]

    def add(self, leaf: bytes) -> None:
        level, digest, index = 0, leaf, self.size
        while index & 1:
            digest = merkle.node_hash(self._stack.pop()[1], digest)
            level, index = level + 1, index >> 1
        self._stack.append((level, digest))
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return merkle.EMPTY_ROOT
        digest = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            digest = merkle.node_hash(left, digest)
        return digest


@dataclass
class Report:
    records: int = 0
    verified_from: int = 1
    checkpoints: int = 0
    published_size: int | None = None
    first_bad_seq: int | None = None
    problem: str | None = None
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
    ledger: Ledger, verifiers: Sequence[NoteVerifier], published: bytes | None, total: int, report: Report
) -> Targets:
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
    if published is not None:
        try:
            head = _open(published, verifiers, "the published checkpoint")
        except IntegrityError as exc:
            report.fail(str(exc), None)
            return targets
        report.published_size = head.size
        if head.size > total:
            report.fail(
                f"records {total + 1}..{head.size} are missing: the published checkpoint covers"
                f" {head.size} records, the ledger holds {total}",
                total + 1,
            )
        targets.setdefault(head.size, []).append(("the published checkpoint", head.root))
    return targets


def _resume(ledger: Ledger, trusted: Checkpoint, report: Report) -> tuple[Frontier, bytes] | None:
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


def verify(
    ledger: Ledger,
    *,
    verifiers: Sequence[NoteVerifier],
    published: bytes | None = None,
    trusted: Checkpoint | None = None,
    progress: Progress | None = None,
) -> Report:
    """Check everything; the report names the first bad sequence number and what is wrong."""
    report = Report()
    total = report.records = ledger.size()
    targets = _checkpoint_targets(ledger, verifiers, published, total, report)
    frontier, prev = Frontier(), GENESIS
    if trusted is not None:
        resumed = _resume(ledger, trusted, report)
        if resumed is None:
            return report
        frontier, prev = resumed
    start = report.verified_from = frontier.size + 1
    last_good = 0

    def check_targets() -> None:
        nonlocal last_good
        for what, root in targets.get(frontier.size, []):
            if frontier.root() != root:
                report.fail(f"records {last_good + 1}..{frontier.size} do not match {what}", last_good + 1)
            else:
                last_good = frontier.size

    def tapped() -> Generator[tuple[int, bytes, bytes, bytes]]:
        check_targets()
        add, sha256 = frontier.add, hashlib.sha256
        for row in ledger.stream(start=start):
            yield row
            add(sha256(b"\x00" + row[3]).digest())  # merkle.leaf_hash(), inlined: the hot loop
            if frontier.size in targets:
                check_targets()
            if progress is not None and not row[0] % 50_000:
                progress(row[0], total)

    with closing(tapped()) as records:  # closing the stream releases the ledger for the reads below
        broken = verify_chain(records, start_hash=prev, start_seq=start)
    if broken is not None:
        report.fail(broken.problem, broken.seq)
    elif frontier.size == total and ledger.root(total) != frontier.root():
        report.fail("the stored Merkle nodes do not match the records: proofs served from them would be wrong", None)
    if progress is not None:
        progress(total, total)
    return report
