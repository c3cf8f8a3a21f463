"""The verifier's hot loop: recompute the hash chain and the Merkle tree over a batch of records.

:func:`recompute` takes a batch of records as rows of PostgreSQL's binary COPY format, as
``store.CopyOut.batches`` joins them (one ``bytes`` per batch, so a batch costs the pass one call
instead of a tuple per record; :func:`pack` makes the same from tuples), and the pass's state:
the next sequence number, the previous record hash and the tree's right frontier. For every record, in order, it
checks the sequence number, the link, the record hash and the sequence number inside the
canonical bytes, exactly as ``chain.verify_chain`` does, then adds the record hash as an RFC 9162
leaf and collects every perfect node the leaf completes. It returns the new state, those nodes
(by level, then index: what ``Ledger.node_runs`` returns for the same sizes) and the first
problem, if any.

Two implementations give identical results (``tests/unit/test_recompute.py`` holds them to it,
on tampered batches too): the C extension ``_recompute`` (built by ``pip install``, several times
faster, with the GIL released) and the pure-Python :func:`recompute_py` below, used when the
extension is not built. The extension also takes the rows from libpq itself
(:data:`recompute_copy`: on the connection of a COPY in progress, ``store.CopyOut``, with
psycopg's own libpq, ``ledger.libpq``), as they arrive, parsing them exactly as it parses the
same messages joined: the verifier's whole row loop in C, no Python per row. The tests hold that
path to the same answers through a fake libpq, with the messages cut anywhere. Neither shares
code with the writer (``store.Ledger._write`` and ``merkle._grow``): the verifier must not
trust the code whose output it checks.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple, Protocol

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


class CopyRows(Protocol):
    """A binary ``COPY … TO STDOUT`` of ``(seq, canonical, prev_hash, record_hash)`` rows in
    progress on libpq (``store.CopyOut``), where :func:`recompute_copy` takes the rows itself."""

    #: The COPY header is still to come; the COPY has ended.
    header: bool
    done: bool

    def native(self) -> tuple[int, int, int] | None:
        """``(PGconn *, PQgetCopyData, PQfreemem)`` as addresses; None when they are not known."""
        ...

    def error(self) -> str:
        """libpq's last error on the connection."""
        ...

    def finish(self) -> None:
        """Read the end of the COPY (what is left after the rows asked for: the trailer)."""
        ...

    def batches(self, counts: Iterable[int]) -> Iterator[bytes]:
        """The next ``counts[i]`` messages joined, batch after batch: the rows read in Python."""
        ...


class CopyFailed(Exception):
    """The COPY the compiled pass read from failed (libpq's error), or was not a binary one."""


#: ``recompute_copy(rows, count, next_seq, prev, frontier)``: see :func:`_compiled`.
RecomputeCopy = Callable[[CopyRows, int, int, bytes, tuple[bytes, ...]], Result]


def _result(state: tuple[int, bytes, tuple[bytes, ...], bytes, tuple[int, int, int] | None]) -> Result:
    next_seq, prev, stack, nodes, problem = state
    return Result(next_seq, prev, stack, nodes, None if problem is None else Problem(*problem))


def _compiled() -> tuple[Recompute, RecomputeCopy] | tuple[None, None]:
    try:
        from privatevault.ledger import _recompute  # type: ignore[attr-defined]  # noqa: PLC0415
    except ImportError:
        return None, None

    def recompute_c(data: bytes, next_seq: int, prev: bytes, frontier: tuple[bytes, ...]) -> Result:
        return _result(_recompute.recompute(data, next_seq, prev, frontier))

    def recompute_copy(rows: CopyRows, count: int, next_seq: int, prev: bytes, frontier: tuple[bytes, ...]) -> Result:
        """The pass over the next ``count`` messages of ``rows``, taken from libpq as they arrive and
        parsed exactly as ``recompute_c`` parses the same messages joined (``CopyOut.batches``
        joins them): the row loop in C too, with the GIL released, no Python per row."""
        native = rows.native()
        if native is None:
            raise CopyFailed("libpq's functions are not known for this connection")
        state, status = _recompute.recompute_copy(*native, count, rows.header, next_seq, prev, frontier)
        if count:
            rows.header = False
        if status == _ENDED:
            rows.done = True
        elif status == _FAILED:
            rows.done = True  # libpq's COPY is over: PQgetCopyData returned -2
            raise CopyFailed(rows.error() or "the COPY failed")
        elif status == _NOT_BINARY:
            raise CopyFailed("COPY did not start with the binary signature")
        return _result(state)

    return recompute_c, recompute_copy


#: ``_recompute.recompute_copy``'s status: the COPY ended; libpq failed; not a binary COPY.
_ENDED, _FAILED, _NOT_BINARY = 1, -2, -3

#: The C implementation when it is built, else None.
recompute_c, recompute_copy_c = _compiled()
#: The compiled pass that reads the rows from libpq itself (with ``recompute_c``), else None.
recompute_copy: RecomputeCopy | None = recompute_copy_c
#: What the verifier runs: the C implementation when built, else the pure-Python one.
recompute: Recompute = recompute_c or recompute_py
#: Which one that is, for reports and benchmarks.
ENGINE = "c" if recompute_c is not None else "python"
