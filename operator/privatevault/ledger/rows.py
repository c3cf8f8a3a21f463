"""The ledger's rows as PostgreSQL returns them, shared by the store's reads and the writer.

A record from its row, the Merkle tree's stored nodes read by key, and the framing of a binary
COPY stream: apart from both :mod:`privatevault.ledger.store` and
:mod:`privatevault.ledger.writer` so that the store can import the writer without a cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from privatevault.ledger import merkle
from privatevault.ledger.event import Record


def record_of(row: tuple[int, bytes, bytes, bytes, str]) -> Record:
    seq, body, prev, digest, key = row
    return Record(seq=seq, canonical=bytes(body), prev_hash=bytes(prev), record_hash=bytes(digest), idempotency_key=key)


COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
COPY_TRAILER = b"\xff\xff"
#: A binary COPY stream's start: the signature, no flags, no header extension.
COPY_HEADER = COPY_SIGNATURE + bytes(8)


class PgNodes:
    """The Merkle tree's perfect nodes in ``merkle_nodes``, read in one query per batch of keys."""

    def __init__(self, cur: psycopg.Cursor[tuple[Any, ...]]) -> None:
        self._cur = cur

    def get_many(self, keys: Sequence[merkle.NodeKey]) -> dict[merkle.NodeKey, bytes]:
        if not keys:
            return {}
        self._cur.execute(
            "SELECT n.level, n.idx, n.hash FROM merkle_nodes n"
            " JOIN unnest(%s::smallint[], %s::bigint[]) AS k(level, idx) ON n.level = k.level AND n.idx = k.idx",
            ([level for level, _ in keys], [index for _, index in keys]),
        )
        return {(int(level), int(index)): bytes(digest) for level, index, digest in self._cur.fetchall()}
