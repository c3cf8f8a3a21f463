"""The verifier's hot loop: recompute the hash chain and the Merkle tree over a batch of records.

:func:`recompute` takes a batch of records as rows of PostgreSQL's binary COPY format, as
``Ledger.record_batches`` reads them (one ``bytes`` per batch, so a batch costs the pass one call
instead of a tuple per record; :func:`pack` makes the same from tuples), and the pass's state: the next sequence
number, the previous record hash and the tree's right frontier. For every record, in order, it
checks the sequence number, the link, the record hash and the sequence number inside the
canonical bytes, exactly as ``chain.verify_chain`` does, then adds the record hash as an RFC 9162
leaf and collects every perfect node the leaf completes. It returns the new state, those nodes
(by level, then index: what ``Ledger.node_runs`` returns for the same sizes) and the first
problem, if any.

Two implementations give identical results (``tests/unit/test_recompute.py`` holds them to it,
on tampered batches too): the C extension ``_recompute`` (built by ``pip install``, several times
faster, and it releases the GIL so the reader thread fetches the next batch meanwhile) and the
pure-Python :func:`recompute_py` below, used when the extension is not built. Neither shares
code with the writer (``store.Ledger._write`` and ``merkle._grow``): the verifier must not
trust the code whose output it checks.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

#: The record-hash domain tag (``chain.DOMAIN``), written out again on purpose: see above.
_DOMAIN = b"privatevault/ledger/record/v1\x00"
_ROW = struct.Struct(">hiqi")  # field count, seq's length, seq, canonical's length
_LENGTH = struct.Struct(">i")
_SEQ = struct.Struct(">q")
_HASH = 32

#: Problem codes, shared with ``_recompute.c``.
GAP, PREV, DIGEST, INNER_SEQ, MALFORMED = 1, 2, 3, 4, 5


class Problem(NamedTuple):
    code: int
    #: The first record that does not verify (for a gap: the sequence number expected).
    seq: int
    #: The sequence number found where ``seq`` was expected (a gap); else ``seq``.
    found: int

    def describe(self) -> str:
        """The words ``chain.verify_chain`` uses for the same problem."""
        if self.code == GAP:
            return f"sequence gap: expected {self.seq}, found {self.found}"
        if self.code == PREV:
            return "previous hash does not match the record before it"
        if self.code == DIGEST:
            return "record hash does not match its bytes"
        if self.code == INNER_SEQ:
            return "sequence number inside the record differs from its position"
        return f"the ledger's read of record {self.seq} on is malformed (truncated)"


class Result(NamedTuple):
    next_seq: int
    prev: bytes
    #: The tree's right frontier after the records that verified, largest subtree first.
    frontier: tuple[bytes, ...]
    #: Every perfect node those records completed, by level, then index, 32 bytes each.
    nodes: bytes
    problem: Problem | None


Recompute = Callable[[bytes, int, bytes, tuple[bytes, ...]], Result]


def pack(rows: Iterable[tuple[int, bytes, bytes, bytes]]) -> bytes:
    """``(seq, canonical, prev_hash, record_hash)`` rows as PostgreSQL's binary COPY sends them."""
    return b"".join(
        _ROW.pack(4, 8, seq, len(body)) + body + _LENGTH.pack(len(prev)) + prev + _LENGTH.pack(len(digest)) + digest
        for seq, body, prev, digest in rows
    )


def _rows(data: bytes) -> Iterator[tuple[int, bytes, bytes, bytes] | None]:
    """The rows :func:`pack` packs; None for one that is cut short or not four non-NULL fields."""
    view, offset, end = memoryview(data), 0, len(data)
    while offset < end:
        fields: list[bytes] = []
        if end - offset < 2 or data[offset : offset + 2] != b"\x00\x04":
            yield None
            return
        offset += 2
        for i in range(4):
            if end - offset < 4:
                yield None
                return
            (length,) = _LENGTH.unpack_from(view, offset)
            offset += 4
            if length < 0 or end - offset < length or (i == 0 and length != 8):
                yield None
                return
            fields.append(data[offset : offset + length])
            offset += length
        yield _SEQ.unpack(fields[0])[0], fields[1], fields[2], fields[3]


def recompute_py(data: bytes, next_seq: int, prev: bytes, frontier: tuple[bytes, ...]) -> Result:
    """The pure-Python implementation (see the module docstring); ``_recompute.recompute`` in C."""
    size = next_seq - 1
    if next_seq < 1 or len(prev) != _HASH:
        raise ValueError("next_seq must be >= 1 and prev 32 bytes")
    if len(frontier) != size.bit_count() or any(len(node) != _HASH for node in frontier):
        raise ValueError(f"a frontier at size {size} has {size.bit_count()} nodes of 32 bytes")
    stack, levels, sha256 = list(frontier), [bytearray() for _ in range(64)], hashlib.sha256
    problem = None
    for row in _rows(data):
        if row is None:
            problem = Problem(MALFORMED, next_seq, next_seq)
            break
        seq, body, stored_prev, digest = row
        if seq != next_seq:
            problem = Problem(GAP, next_seq, seq)
            break
        if stored_prev != prev:
            problem = Problem(PREV, seq, seq)
            break
        computed = sha256(_DOMAIN + prev + body).digest()
        if digest != computed:
            problem = Problem(DIGEST, seq, seq)
            break
        if b'"seq":%d,' % seq not in body:
            problem = Problem(INNER_SEQ, seq, seq)
            break
        prev, next_seq = computed, seq + 1
        node = sha256(b"\x00" + computed).digest()
        levels[0] += node
        index, level = size, 0
        while index & 1:
            node = sha256(b"\x01" + stack.pop() + node).digest()
            index, level = index >> 1, level + 1
            levels[level] += node
        stack.append(node)
        size += 1
    return Result(next_seq, prev, tuple(stack), b"".join(levels), problem)


def _compiled() -> Recompute | None:
    try:
        from privatevault.ledger import _recompute  # type: ignore[attr-defined]  # noqa: PLC0415
    except ImportError:
        return None

    def recompute_c(data: bytes, next_seq: int, prev: bytes, frontier: tuple[bytes, ...]) -> Result:
        next_seq, prev, stack, nodes, problem = _recompute.recompute(data, next_seq, prev, frontier)
        return Result(next_seq, prev, stack, nodes, None if problem is None else Problem(*problem))

    return recompute_c


#: The C implementation when it is built, else None.
recompute_c: Recompute | None = _compiled()
#: What the verifier runs: the C implementation when built, else the pure-Python one.
recompute: Recompute = recompute_c or recompute_py
#: Which one that is, for reports and benchmarks.
ENGINE = "c" if recompute_c is not None else "python"
