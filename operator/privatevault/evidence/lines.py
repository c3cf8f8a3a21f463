"""A batch of records as the lines of a section's two files: the hot loop of an export.

A batch arrives as rows of PostgreSQL's binary COPY format (``seq, canonical, prev_hash,
record_hash``: what the ledger's COPY reader hands over, or ``recompute.pack`` of tuples) and
leaves as the ``records.jsonl`` and ``proofs.jsonl`` bytes of those records, every record with its
RFC 9162 inclusion proof at the anchor's size, in the bytes ``layout.ProofLine.to_bytes`` gives.

Why it is cheap. A leaf's inclusion path is its siblings inside the perfect block of the size's
tiling that holds it (stored nodes), then the subtrees above that block, the same for every leaf
of the block (:func:`merkle.block_paths`, once per section). The siblings of a batch are read as
a few runs of consecutive stored nodes per level (:func:`plan`; one query, one value, never a
tuple per node), and a path's JSON is built from the top down and shared: the part of it from
level ``l`` up depends only on the leaf's ancestor at level ``l``, so neighbouring records share
it and a record costs about two new base64 strings, not twenty.

Two implementations give identical results (``tests/unit/test_evidence_lines.py`` holds them to
it, on malformed batches too): the C extension ``_lines`` (built by ``pip install``, many times
faster; it releases the GIL while it renders, so the reading threads fetch the next batches) and
the pure-Python :func:`plan_py` and :func:`render_py` below, used when the extension is not built.
"""

from __future__ import annotations

import binascii
import bisect
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

#: ``(level, lo, hi)``: the stored nodes ``(level, lo)`` … ``(level, hi - 1)``.
Run = tuple[int, int, int]
#: ``(seq, canonical bytes, previous hash, record hash)``.
Row = tuple[int, bytes, bytes, bytes]

#: Runs of one level this close (in nodes) are read as one: a kilobyte more beats another scan.
GAP = 32
_HEAD = struct.Struct(">hiqi")  # field count, seq's length, seq, canonical's length
_HASHES = struct.Struct(">i32si32s")  # prev_hash and record_hash, 32 bytes each


class Lines(NamedTuple):
    records: bytes
    proofs: bytes
    #: How many records.
    total: int


def rows(data: bytes) -> list[Row]:
    """The rows of a batch, in order; ValueError when one is cut short or not four non-NULL
    fields with an 8-byte seq and 32-byte hashes."""
    out: list[Row] = []
    at, end, head, hashes = 0, len(data), _HEAD.size, _HASHES.size
    while at < end:
        after = f"the row after {out[-1][0] if out else 'the start'} is malformed"
        if end - at < head:
            raise ValueError(after)
        fields, seq_length, seq, length = _HEAD.unpack_from(data, at)
        start = at + head
        at = start + length + hashes
        if fields != 4 or seq_length != 8 or length < 0 or at > end:
            raise ValueError(after)
        prev_length, prev, digest_length, digest = _HASHES.unpack_from(data, start + length)
        if prev_length != 32 or digest_length != 32:
            raise ValueError(after)
        out.append((seq, data[start : start + length], prev, digest))
    return out


def _checked(data: bytes, size: int) -> list[Row]:
    batch = rows(data)
    for seq, *_ in batch:
        if not 1 <= seq <= size:
            raise ValueError(f"record {seq} is not in the tree of size {size}")
    return batch


def block_level(leaf: int, size: int) -> int:
    """The level of the perfect block of ``size``'s tiling that holds ``leaf`` (``leaf < size``):
    the highest bit where the two differ (there ``size`` has a 1, ``leaf`` a 0)."""
    return (leaf ^ size).bit_length() - 1


def plan_py(data: bytes, size: int) -> list[Run]:
    """The runs of stored nodes holding every sibling below its block of the batch's leaves, by
    level, then index: leaves close together (within :data:`GAP`, in one block) share runs."""
    spans: list[list[int]] = []  # [first leaf, last leaf, block level]
    for seq, *_ in _checked(data, size):
        leaf = seq - 1
        level = block_level(leaf, size)
        if spans and leaf - spans[-1][1] <= GAP and spans[-1][2] == level:
            spans[-1][1] = leaf
        else:
            spans.append([leaf, leaf, level])
    by_level: dict[int, list[list[int]]] = {}
    for first, last, top in spans:
        for level in range(top):
            lo, hi = (first >> level) & ~1, ((last >> level) | 1) + 1
            runs = by_level.setdefault(level, [])
            if runs and lo - runs[-1][1] <= GAP:
                runs[-1][1] = max(runs[-1][1], hi)
            else:
                runs.append([lo, hi])
    return [(level, lo, hi) for level in sorted(by_level) for lo, hi in by_level[level]]


class _Nodes:
    """The nodes of ``runs`` (concatenated in the runs' order) by ``(level, index)``."""

    def __init__(self, runs: Sequence[Run], data: bytes) -> None:
        self._starts: dict[int, list[int]] = {}
        self._runs: dict[int, list[tuple[int, int]]] = {}  # level -> (hi, offset of the node lo - 0)
        offset = 0
        for level, lo, hi in runs:
            if not 0 <= level < 64 or hi < lo:
                raise ValueError("a run is not (level, lo, hi) with lo <= hi")
            if self._runs.get(level) and self._runs[level][-1][0] > lo:
                raise ValueError("the runs of a level are not in order")
            self._starts.setdefault(level, []).append(lo)
            self._runs.setdefault(level, []).append((hi, offset - 32 * lo))
            offset += 32 * (hi - lo)
        if len(data) != offset:
            raise ValueError(f"{len(data)} bytes of nodes for runs of {offset // 32} nodes")
        self._data = data

    def get(self, level: int, index: int) -> bytes:
        at = bisect.bisect_right(self._starts.get(level, []), index) - 1
        if at < 0 or index >= self._runs[level][at][0]:
            raise ValueError(f"node (level {level}, index {index}) is not in the runs read")
        offset = self._runs[level][at][1] + 32 * index
        return self._data[offset : offset + 32]


def quoted(hashes: Sequence[bytes]) -> bytes:
    """Hashes as the items of a JSON list of standard base64 strings."""
    return b",".join(b'"' + binascii.b2a_base64(h, newline=False) + b'"' for h in hashes)


def render_py(data: bytes, size: int, runs: Sequence[Run], nodes: bytes, uppers: Mapping[int, bytes]) -> Lines:
    """The two files' lines of the batch ``data``: ``nodes`` is the read of :func:`plan_py`'s
    runs, ``uppers`` the :func:`quoted` path above each block of ``size``'s tiling, by the block's
    level."""
    batch = _checked(data, size)
    stored = _Nodes(runs, nodes)
    for seq, *_ in batch:
        if block_level(seq - 1, size) not in uppers:
            raise ValueError(f"no path above the block of level {block_level(seq - 1, size)}")
    b64 = binascii.b2a_base64
    # (level, index of the leaf's ancestor at that level) -> the path's JSON items from that level up
    above: dict[tuple[int, int], bytes] = {}
    proofs: list[bytes] = []
    for seq, _, prev, digest in batch:
        leaf = seq - 1
        top = block_level(leaf, size)
        level, missing = 0, []
        while level < top and (level, leaf >> level) not in above:
            missing.append(level)
            level += 1
        path = above[(level, leaf >> level)] if level < top else uppers[top]
        for level in reversed(missing):
            sibling = b'"' + b64(stored.get(level, (leaf >> level) ^ 1), newline=False) + b'"'
            path = sibling + b"," + path if path else sibling
            above[(level, leaf >> level)] = path
        proofs.append(
            b'{"prevHash":"%s","proof":[%s],"recordHash":"%s","seq":%d}\n'
            % (b64(prev, newline=False), path, b64(digest, newline=False), seq)
        )
    records = b"".join(body + b"\n" for _, body, _, _ in batch)
    return Lines(records, b"".join(proofs), len(batch))


Plan = Callable[[bytes, int], list[Run]]
Render = Callable[[bytes, int, Sequence[Run], bytes, Mapping[int, bytes]], Lines]


def _compiled() -> tuple[Plan, Render] | None:
    try:
        from privatevault.evidence import _lines  # type: ignore[attr-defined]  # noqa: PLC0415
    except ImportError:
        return None

    def render_c(data: bytes, size: int, runs: Sequence[Run], nodes: bytes, uppers: Mapping[int, bytes]) -> Lines:
        return Lines(*_lines.render(data, size, runs, nodes, uppers))

    plan_c: Plan = _lines.plan
    return plan_c, render_c


_c = _compiled()
#: The C implementations when the extension is built, else None.
plan_c: Plan | None = _c[0] if _c else None
render_c: Render | None = _c[1] if _c else None
#: What the writer runs: C when built, else pure Python.
plan: Plan = plan_c or plan_py
render: Render = render_c or render_py
#: Which one that is, for reports and benchmarks.
ENGINE = "c" if _c else "python"
