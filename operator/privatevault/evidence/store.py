"""The ledger as an evidence bundle reads it: records of a window streamed from PostgreSQL.

Kept beside the ledger's own store (``ledger.store``) rather than in it, so the bundle's reads
change nothing on the ledger's write path. Records stream through binary COPY, parsed in blocks
(:func:`binary_rows`): memory stays flat however large the window. Node reads and checkpoints go
through the ledger's store.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from privatevault.compliance import history
from privatevault.database import Pool
from privatevault.errors import LedgerUnavailable
from privatevault.evidence.writer import Row, SignedHead
from privatevault.ledger import merkle
from privatevault.ledger.store import Ledger

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_SHORT = struct.Struct("!h")
_INT = struct.Struct("!i")
_ROW = struct.Struct("!hiq")  # field count, length of seq (8), seq


def binary_rows(blocks: Iterable[bytes]) -> Iterator[Row]:
    """``(seq, canonical, prev_hash, record_hash)`` rows of a binary COPY stream, parsed in blocks.

    psycopg parses binary COPY row by row with a wait per row; reading the raw blocks and
    unpacking the four fields here is several times faster, and an export reads millions.
    """
    buffer, at, started = b"", 0, False
    stream = iter(blocks)
    for block in stream:
        buffer = buffer[at:] + block
        at = 0
        if not started:
            if len(buffer) < 19:
                continue
            if not buffer.startswith(_SIGNATURE):
                raise LedgerUnavailable("the ledger answered with a COPY stream that is not PostgreSQL's binary format")
            at = 19 + _INT.unpack_from(buffer, 15)[0]
            started = True
        while True:
            if len(buffer) - at < 2:
                break
            if _SHORT.unpack_from(buffer, at)[0] == -1:
                for _ in stream:  # the COPY must be read to its end before the connection is free
                    pass
                return
            if len(buffer) - at < _ROW.size:
                break
            _, _, seq = _ROW.unpack_from(buffer, at)
            cursor, fields = at + _ROW.size, []
            for _ in range(3):
                if len(buffer) - cursor < 4:
                    break
                size = _INT.unpack_from(buffer, cursor)[0]
                if len(buffer) - cursor - 4 < size:
                    break
                fields.append(buffer[cursor + 4 : cursor + 4 + size])
                cursor += 4 + size
            if len(fields) < 3:
                break
            yield seq, fields[0], fields[1], fields[2]
            at = cursor


class PgEvidenceSource:
    """``evidence.writer.EvidenceSource`` over the ledger's tables."""

    def __init__(self, pool: Pool, ledger: Ledger) -> None:
        self._pool = pool
        self._ledger = ledger

    def _stream(self, where: str, params: tuple[Any, ...]) -> Iterator[Row]:
        try:
            with (
                self._pool.connection() as conn,
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(
                    sql.SQL(
                        "COPY (SELECT seq, canonical, prev_hash, record_hash FROM audit_records WHERE {} ORDER BY seq)"
                        " TO STDOUT (FORMAT BINARY)"
                    ).format(sql.SQL(where)),
                    params,
                ) as copy,
            ):
                yield from binary_rows(bytes(block) for block in copy)
        except psycopg.OperationalError as exc:
            raise LedgerUnavailable(f"the audit ledger cannot be read: {exc}".strip()) from exc

    def tenant_records(self, tenant: str, start: datetime, end: datetime) -> Iterator[Row]:
        return self._stream("tenant = %s AND recorded_at >= %s AND recorded_at < %s", (tenant, start, end))

    def action_records(
        self, actions: Sequence[str], tenants: Sequence[str], start: datetime, end: datetime
    ) -> Iterator[Row]:
        return self._stream(
            "action = ANY(%s) AND (tenant = ANY(%s) OR tenant = '') AND recorded_at >= %s AND recorded_at < %s",
            (list(actions), list(tenants), start, end),
        )

    def in_force_records(self, actions: Sequence[str], start: datetime, end: datetime) -> Iterator[Row]:
        return self._stream(
            "action = ANY(%s) AND ((recorded_at >= %s AND recorded_at < %s) OR seq IN ("
            " SELECT DISTINCT ON (action, resource_name, resource_uid) seq FROM audit_records"
            " WHERE action = ANY(%s) AND recorded_at < %s ORDER BY action, resource_name, resource_uid, seq DESC))",
            (list(actions), start, end, list(actions), start),
        )

    def boundaries(self, tenant: str, start: datetime, end: datetime) -> Iterator[Row]:
        return self._stream(
            "seq IN ((SELECT seq FROM audit_records WHERE tenant = %s AND recorded_at < %s ORDER BY seq DESC LIMIT 1)"
            " UNION ALL (SELECT seq FROM audit_records WHERE tenant = %s AND recorded_at >= %s ORDER BY seq LIMIT 1))",
            (tenant, start, tenant, end),
        )

    def compliance_before(self, tenants: Sequence[str], start: datetime) -> Iterator[Row]:
        # The key-prefix index (migration 0004) finds the compliance records; few: one per change.
        return self._stream(
            "seq IN (SELECT DISTINCT ON (resource_uid, tenant) seq FROM audit_records"
            " WHERE idempotency_key LIKE %s AND action = %s"
            " AND tenant = ANY(%s) AND recorded_at < %s ORDER BY resource_uid, tenant, seq DESC)",
            ("complianceframework/%", history.ACTION, list(tenants), start),
        )

    def last_seq_before(self, end: datetime) -> int:
        try:
            with self._pool.connection() as conn, conn.cursor() as cur:
                cur.execute("SELECT coalesce(max(seq), 0) FROM audit_records WHERE recorded_at < %s", (end,))
                row = cur.fetchone()
                return int(row[0]) if row else 0
        except psycopg.OperationalError as exc:
            raise LedgerUnavailable(f"the audit ledger cannot be read: {exc}".strip()) from exc

    def signed_heads(self) -> list[SignedHead]:
        return [SignedHead(c.size, c.root, c.note) for c in self._ledger.checkpoints()]

    def nodes(self, keys: Sequence[merkle.NodeKey]) -> dict[merkle.NodeKey, bytes]:
        return self._ledger.nodes(keys)
