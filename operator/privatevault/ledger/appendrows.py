"""The ledger writer's hot loop: chain a batch of records and grow the Merkle tree, as the binary
COPY rows ``writer.Writer`` sends.

:func:`records` chains records after the head: for each, its canonical bytes (what
``Event.canonical`` makes from the event's position-free parts, its sequence number, its place
in its tenant's chain and the batch's time), its record hash, and its row of
``audit_records``. :func:`nodes` adds the record hashes as RFC 9162 leaves to the tree and
returns the rows of ``merkle_nodes`` they complete. Both return rows only: the caller adds the
COPY header and trailer.

Two implementations give identical results (``tests/unit/test_appendrows.py`` holds them to it,
and the bodies to ``Event.canonical``): the C extension ``_append`` (built by ``pip install``)
and the pure-Python :func:`records_py` and :func:`nodes_py` below, used when the extension is not
built. The verifier shares none of this: it checks what the writer wrote with its own code
(``recompute``).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable

from privatevault.ledger.chain import DOMAIN

#: One record to chain: ``(head, tenant member, tenant slot, fixed COPY fields, key field)``.
#: ``head`` and the ``"tenant":…`` member are ``Event.canonical_parts``; the slot indexes the
#: tenants' states (-1: a record of no tenant); the fixed fields are ``tenant`` … ``outcome`` of
#: its COPY row, the key field its last.
Item = tuple[bytes, bytes, int, bytes, bytes]

_RECORD_START = struct.Struct(">hiq")  # 14 fields, seq's length, seq
_LENGTH = struct.Struct(">i").pack
_HASH_FIELD = _LENGTH(32)
_NODE_START = struct.Struct(">hihiqi")  # 3 fields, level's length, level, idx's length, idx, hash's length


def records_py(  # noqa: PLR0917 - positional, as the C function's
    seq: int, prev: bytes, time: bytes, recorded: bytes, items: list[Item], tenants: list[list[object]]
) -> tuple[bytes, list[bytes], list[bytes]]:
    """Chain ``items`` after record ``seq`` (hash ``prev``): their COPY rows, canonical bytes and hashes.

    ``tenants[slot]`` is ``[tenantSeq, record hash]`` of the tenant's newest record, advanced in
    place. ``time`` is the canonical time (``event.canonical_time``), ``recorded`` the binary
    COPY field of ``recorded_at``.
    """
    if len(prev) != 32:
        raise ValueError("prev is not a 32-byte hash")
    rows: list[bytes] = []
    bodies: list[bytes] = []
    digests: list[bytes] = []
    sha256, start = hashlib.sha256, _RECORD_START.pack
    for head, tenant, slot, middle, key in items:
        seq += 1
        state, chained, advanced = None, b"", 0
        if slot >= 0:
            state = tenants[slot]
            if len(state) != 2:
                raise ValueError("a tenant slot is not a [tenantSeq, hash] list")
            tenant_seq, tenant_prev = state
            if not isinstance(tenant_seq, int) or not isinstance(tenant_prev, bytes) or len(tenant_prev) != 32:
                raise ValueError("a tenant slot is not a [tenantSeq, hash] list")
            advanced = tenant_seq + 1
            chained = b',"tenantPrev":"%s","tenantSeq":%d' % (base64.b64encode(tenant_prev), advanced)
        body = b'%s,"seq":%d,%s%s,"time":%s,"v":1}' % (head, seq, tenant, chained, time)
        digest = sha256(DOMAIN + prev + body).digest()
        if state is not None:
            state[0], state[1] = advanced, digest
        rows += (
            start(14, 8, seq),
            recorded,
            middle,
            _LENGTH(len(body)),
            body,
            _HASH_FIELD,
            prev,
            _HASH_FIELD,
            digest,
            key,
        )
        bodies.append(body)
        digests.append(digest)
        prev = digest
    return b"".join(rows), bodies, digests


def nodes_py(size: int, frontier: list[bytes], digests: list[bytes]) -> tuple[bytes, list[bytes]]:
    """Add the record hashes ``digests`` as leaves to the tree of ``size`` leaves whose right
    frontier (perfect subtree roots, largest first) is ``frontier``: the COPY rows of every node
    completed, leaves included, in the order they complete, and the grown tree's frontier."""
    levels = [level for level in range(63, -1, -1) if size >> level & 1]
    if len(frontier) != len(levels):
        raise ValueError(f"a tree of {size} leaves has {len(levels)} frontier nodes, not {len(frontier)}")
    for node in frontier:
        if len(node) != 32:
            raise ValueError("a frontier node is not a 32-byte hash")
    roots = dict(zip(levels, frontier, strict=True))
    rows: list[bytes] = []
    sha256, start = hashlib.sha256, _NODE_START.pack
    for digest in digests:
        if len(digest) != 32:
            raise ValueError("a record hash is not a 32-byte hash")
        node = sha256(b"\x00" + digest).digest()
        level, index = 0, size
        rows += (start(3, 2, 0, 8, index, 32), node)
        while index & 1:
            node = sha256(b"\x01" + roots.pop(level) + node).digest()
            level, index = level + 1, index >> 1
            rows += (start(3, 2, level, 8, index, 32), node)
        roots[level] = node
        size += 1
    return b"".join(rows), [roots[level] for level in sorted(roots, reverse=True)]


RecordsFn = Callable[[int, bytes, bytes, bytes, list[Item], list[list[object]]], tuple[bytes, list[bytes], list[bytes]]]
NodesFn = Callable[[int, list[bytes], list[bytes]], tuple[bytes, list[bytes]]]
#: ``(PGconn *, libpq function addresses, ((query, data or None), …))`` → None or ``(index,
#: sqlstate, message)`` of the statement that failed: statements and COPY data sent with the GIL
#: released (``_append.c``); None when the extension is not built (the writer then uses psycopg).
#: ``(columns, key)`` → an event's fixed binary COPY fields (``writer._fixed_fields_py``, compiled).
FieldsFn = Callable[[tuple[str | None, ...], str], tuple[bytes, bytes]]
SendFn = Callable[[int, tuple[int, ...], tuple[tuple[bytes, bytes | None], ...]], tuple[int, str, str] | None]

try:
    from privatevault.ledger import _append  # type: ignore[attr-defined,unused-ignore]
except ImportError:  # not built: the same results, several times slower
    records: RecordsFn = records_py
    nodes: NodesFn = nodes_py
    send: SendFn | None = None
    fields: FieldsFn | None = None
    ENGINE = "python"
else:
    records = _append.records
    nodes = _append.nodes
    send = _append.send
    fields = _append.fields
    ENGINE = "c"
