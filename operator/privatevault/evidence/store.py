"""The ledger as an evidence bundle reads it: records of a window streamed from PostgreSQL.

Kept beside the ledger's own store (``ledger.store``) rather than in it, so the bundle's reads
change nothing on the ledger's write path. A section's records stream through one binary COPY,
taken from libpq in batches of raw rows as the ledger's verifier reads them (``CopyOut``: one
call a row, no tuple), which the writer turns into lines without parsing them in Python; memory
stays flat however large the window. The nodes a batch's proofs need are read as runs, one value
per batch (:meth:`PgEvidenceSource.node_runs`); checkpoints go through the ledger's store.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Iterator, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from privatevault.compliance import history
from privatevault.database import Pool
from privatevault.errors import LedgerUnavailable
from privatevault.evidence import lines
from privatevault.evidence.writer import Row, SignedHead
from privatevault.ledger import merkle
from privatevault.ledger.store import CopyOut, Ledger

#: Rows of a section per batch: enough to keep the per-batch costs small, few enough that the
#: batches in flight (read ahead, being written) stay a few megabytes.
BATCH = 4096


class CopyRows:
    """A section's records as one binary COPY, handed over as batches of raw rows
    (``writer.RowBatches``: the writer's fast path) or parsed into tuples when iterated. The COPY
    starts on the first of either."""

    def __init__(self, pool: Pool, query: sql.Composable) -> None:
        self._pool = pool
        self._query = query
        self._parsed: Generator[Row] | None = None

    def batches(self) -> Iterator[bytes]:
        try:
            with self._pool.connection() as conn, conn.transaction():
                for batch in CopyOut(conn, self._query.as_bytes(conn)).batches(itertools.repeat(BATCH)):
                    if not batch:  # the COPY has ended
                        return
                    yield batch
        except psycopg.OperationalError as exc:
            raise LedgerUnavailable(f"the audit ledger cannot be read: {exc}".strip()) from exc

    def _rows(self) -> Generator[Row]:
        for batch in self.batches():
            yield from lines.rows(batch)

    def __iter__(self) -> CopyRows:
        return self

    def __next__(self) -> Row:
        if self._parsed is None:
            self._parsed = self._rows()
        return next(self._parsed)

    def close(self) -> None:
        """Stop reading (the COPY is cancelled and the connection goes back to the pool)."""
        if self._parsed is not None:
            self._parsed.close()


class PgEvidenceSource:
    """``evidence.writer.EvidenceSource`` over the ledger's tables."""

    def __init__(self, pool: Pool, ledger: Ledger) -> None:
        self._pool = pool
        self._ledger = ledger

    def _stream(self, where: str, params: tuple[Any, ...]) -> CopyRows:
        query = sql.SQL(
            "COPY (SELECT seq, canonical, prev_hash, record_hash FROM audit_records WHERE {} ORDER BY seq)"
            " TO STDOUT (FORMAT BINARY)"
        ).format(sql.SQL(where).format(*(sql.Literal(param) for param in params)))
        return CopyRows(self._pool, query)

    def tenant_records(self, tenant: str, start: datetime, end: datetime) -> Iterator[Row]:
        return self._stream("tenant = {} AND recorded_at >= {} AND recorded_at < {}", (tenant, start, end))

    def action_records(
        self, actions: Sequence[str], tenants: Sequence[str], start: datetime, end: datetime
    ) -> Iterator[Row]:
        return self._stream(
            "action = ANY({}) AND (tenant = ANY({}) OR tenant = '') AND recorded_at >= {} AND recorded_at < {}",
            (list(actions), list(tenants), start, end),
        )

    def in_force_records(self, actions: Sequence[str], start: datetime, end: datetime) -> Iterator[Row]:
        return self._stream(
            "action = ANY({}) AND ((recorded_at >= {} AND recorded_at < {}) OR seq IN ("
            " SELECT DISTINCT ON (action, resource_name, resource_uid) seq FROM audit_records"
            " WHERE action = ANY({}) AND recorded_at < {} ORDER BY action, resource_name, resource_uid, seq DESC))",
            (list(actions), start, end, list(actions), start),
        )

    def boundaries(self, tenant: str, start: datetime, end: datetime) -> Iterator[Row]:
        return self._stream(
            "seq IN ((SELECT seq FROM audit_records WHERE tenant = {} AND recorded_at < {} ORDER BY seq DESC LIMIT 1)"
            " UNION ALL (SELECT seq FROM audit_records WHERE tenant = {} AND recorded_at >= {} ORDER BY seq LIMIT 1))",
            (tenant, start, tenant, end),
        )

    def compliance_before(self, tenants: Sequence[str], start: datetime) -> Iterator[Row]:
        # The key index (migration 0005) finds the compliance records by prefix; few: one per change.
        return self._stream(
            "seq IN (SELECT DISTINCT ON (resource_uid, tenant) seq FROM audit_records"
            " WHERE idempotency_key LIKE {} AND action = {}"
            " AND tenant = ANY({}) AND recorded_at < {} ORDER BY resource_uid, tenant, seq DESC)",
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

    def node_runs(self, runs: Sequence[lines.Run]) -> bytes:
        """The hashes of the nodes of ``runs``, in the order given, 32 bytes each, in one value.

        Sorted explicitly (``Ledger.node_runs(ordered=True)``): a proof built from a node out of
        place would be wrong, and nothing after the export would notice. A missing node is
        named (:class:`merkle.MissingNodes`), found by reading the runs key by key.
        """
        found = self._ledger.node_runs(runs, ordered=True)
        if len(found) != 32 * sum(hi - lo for _, lo, hi in runs):
            keys = [(level, index) for level, lo, hi in runs for index in range(lo, hi)]
            stored = self.nodes(keys)
            raise merkle.MissingNodes(key for key in keys if key not in stored)
        return found
