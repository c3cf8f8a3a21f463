"""The PostgreSQL store behind the one append API every part of the operator uses.

Appends are serialised by an advisory lock on the chain head (see the writer) and guarded by
the primary key on ``seq`` (never by isolation level alone), so that several writer processes
still build one linear chain. A retried append with the same idempotency key returns the record
written the first time. Any database failure becomes :class:`LedgerUnavailable`: audit fails
closed, and the caller must not make the change it was about to record. The appends themselves
are :mod:`privatevault.ledger.writer`'s; this module reads.
"""

from __future__ import annotations

import contextlib
import select
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from privatevault.database import Pool, open_pool
from privatevault.errors import LedgerUnavailable
from privatevault.ledger import libpq, merkle
from privatevault.ledger.event import Event, Record
from privatevault.ledger.rows import COPY_SIGNATURE, COPY_TRAILER, PgNodes, record_of
from privatevault.ledger.writer import Writer

T = TypeVar("T")


class CopyOut:
    """``COPY … TO STDOUT (FORMAT BINARY)`` on libpq directly, its rows joined in batches.

    psycopg's own COPY reader costs a few microseconds per row in Python; ``get_copy_data``
    alone costs one call. The header and the trailer are dropped, so each batch is rows only.
    Waiting for data is a ``select`` (the GIL released). If the consumer stops early, the COPY is
    cancelled and drained, so that the connection goes back to the pool clean.
    """

    def __init__(self, conn: psycopg.Connection[Any], query: bytes) -> None:
        self._conn, self._pg = conn, conn.pgconn
        self._pg.send_query(query)
        result = self._pg.get_result()
        if result is None or result.status != psycopg.pq.ExecStatus.COPY_OUT:
            error = self._pg.error_message if result is None else result.error_message
            self._drain_results()
            raise psycopg.OperationalError(error.decode(errors="replace").strip() or "COPY did not start")
        #: The COPY header is still to come (in the first message); the COPY has ended.
        self.header, self.done = True, False
        self._native: tuple[tuple[int, int, int] | None] | None = None

    def row(self, size: int | None = None) -> memoryview | None:
        """The next row (the trailer is one too), waiting for it; None at the end. ``size``: what
        the caller's own ``get_copy_data`` returned instead of a row (0: nothing yet, -1: the end,
        -2: an error), so the end is never asked for twice (libpq: "no COPY in progress")."""
        while True:
            if size is None:
                size, data = self._pg.get_copy_data(1)
                if size > 0:
                    return data
            if size == 0:
                select.select([self._pg.socket], [], [])
                self._pg.consume_input()
                size = None
                continue
            self.done = True
            if size == -2:
                raise psycopg.OperationalError(self._pg.error_message.decode(errors="replace").strip())
            return None

    def _first(self) -> memoryview | None:
        self.header = False
        data = self.row()
        if data is None:
            return None
        if bytes(data[: len(COPY_SIGNATURE)]) != COPY_SIGNATURE:
            raise psycopg.OperationalError("COPY did not start with the binary signature")
        data = data[19 + int.from_bytes(data[15:19], "big") :]  # after the header's extension area
        return None if data == COPY_TRAILER else data

    def batches(self, counts: Iterable[int]) -> Iterator[bytes]:
        get = self._pg.get_copy_data
        try:
            for count in counts:
                rows: list[bytes | memoryview] = []
                add = rows.append
                if self.header and count and (data := self._first()) is not None:
                    add(data)
                # The hot loop: one libpq call per row while rows are buffered, row() otherwise.
                left = count - len(rows)
                while left and not self.done:
                    size, data = get(1)
                    if size <= 0:
                        data = self.row(size)
                        if data is None:
                            break
                        size = len(data)
                    if size == 2 and data == COPY_TRAILER:
                        continue
                    add(data)
                    left -= 1
                yield b"".join(rows)
            self.finish()
        finally:
            self.close()

    def native(self) -> tuple[int, int, int] | None:
        """``(PGconn *, PQgetCopyData, PQfreemem)`` as addresses, for compiled code that takes the
        rows itself (``recompute.recompute_copy``); None when psycopg's libpq is not found."""
        if self._native is None:
            self._native = (libpq.copy_functions(self._conn),)
        return self._native[0]

    def error(self) -> str:
        """libpq's last error on the connection."""
        return self._pg.error_message.decode(errors="replace").strip()

    def finish(self) -> None:
        """Read the end of the COPY (after the rows asked for: the trailer)."""
        while not self.done:
            self.row()

    def close(self) -> None:
        """Stopped early (a broken chain, an error): cancel, not read the rest; then leave the
        connection clean for the pool."""
        try:
            if not self.done:
                self._conn.cancel_safe()
                with contextlib.suppress(psycopg.Error):
                    self.finish()
        finally:
            self._drain_results()

    def _drain_results(self) -> None:
        while self._pg.get_result() is not None:
            pass


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: bytes


class Ledger:
    """A connection to the ledger, safe to share between handler threads.

    Appends go to the ledger's :class:`~privatevault.ledger.writer.Writer` (group commit).
    """

    def __init__(self, dsn: str | None = None, *, pool: Pool | None = None, connect_timeout: float = 5.0) -> None:
        """On the process's shared ``pool`` (the operator), or on a pool of its own for ``dsn`` (the CLI)."""
        if pool is None:
            if dsn is None:
                raise ValueError("a ledger needs a database URL or a connection pool")
            pool = open_pool(dsn, max_size=4, timeout=connect_timeout, name="privatevault-ledger")
            self._owns_pool = True
        else:
            self._owns_pool = False
        self._pool = pool
        self._writer = Writer(pool)

    def close(self) -> None:
        self._writer.close()
        if self._owns_pool:
            self._pool.close()

    def append(self, event: Event) -> Record:
        """Write one event at the chain head, or return the record its idempotency key already has."""
        return self.append_many([event])[0]

    def append_many(self, events: Sequence[Event]) -> list[Record]:
        """Write events in order, in one transaction with whatever else is queued; idempotent per key."""
        return self._writer.append_many(events)

    def _read(self, query: Callable[[psycopg.Cursor[tuple[Any, ...]]], T]) -> T:
        """Run a read in its own transaction; database failures become LedgerUnavailable."""
        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor(binary=True) as cur:
                return query(cur)
        except psycopg.OperationalError as exc:
            raise LedgerUnavailable(f"the audit ledger cannot be read: {exc}".strip()) from exc

    def size(self) -> int:
        """How many records the ledger holds (the tree size)."""

        def query(cur: psycopg.Cursor[tuple[Any, ...]]) -> int:
            cur.execute("SELECT coalesce(max(seq), 0) FROM audit_records")
            row = cur.fetchone()
            return int(row[0]) if row else 0

        return self._read(query)

    def record(self, seq: int) -> Record | None:
        def query(cur: psycopg.Cursor[tuple[Any, ...]]) -> Record | None:
            cur.execute(
                "SELECT seq, canonical, prev_hash, record_hash, idempotency_key FROM audit_records WHERE seq = %s",
                (seq,),
            )
            row = cur.fetchone()
            return None if row is None else record_of(row)

        return self._read(query)

    def root(self, size: int) -> bytes:
        """The Merkle tree head at ``size`` records, from O(log n) stored nodes."""
        return self._read(lambda cur: merkle.tree_root(size, PgNodes(cur)))

    def inclusion_proof(self, seq: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of record ``seq`` (leaf ``seq - 1``) in the tree of ``size``."""
        return self._read(lambda cur: merkle.inclusion_proof(seq - 1, size, PgNodes(cur)))

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        return self._read(lambda cur: merkle.consistency_proof(old_size, new_size, PgNodes(cur)))

    def nodes(self, keys: Sequence[merkle.NodeKey]) -> dict[merkle.NodeKey, bytes]:
        return self._read(lambda cur: PgNodes(cur).get_many(keys))

    def checkpoints(self) -> list[StoredCheckpoint]:
        def query(cur: psycopg.Cursor[tuple[Any, ...]]) -> list[StoredCheckpoint]:
            cur.execute("SELECT tree_size, root_hash, note FROM checkpoints ORDER BY tree_size")
            return [StoredCheckpoint(int(size), bytes(root), bytes(note)) for size, root, note in cur.fetchall()]

        return self._read(query)

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        def query(cur: psycopg.Cursor[tuple[Any, ...]]) -> StoredCheckpoint | None:
            cur.execute("SELECT tree_size, root_hash, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1")
            row = cur.fetchone()
            return None if row is None else StoredCheckpoint(int(row[0]), bytes(row[1]), bytes(row[2]))

        return self._read(query)

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        """Store a signed checkpoint; False when one of that size exists already (it is kept)."""

        def query(cur: psycopg.Cursor[tuple[Any, ...]]) -> bool:
            cur.execute(
                "INSERT INTO checkpoints (tree_size, root_hash, note) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (checkpoint.size, checkpoint.root, checkpoint.note),
            )
            return cur.rowcount == 1

        return self._read(query)

    @contextlib.contextmanager
    def record_copy(self, start: int, end: int) -> Iterator[CopyOut]:
        """Records ``start`` … ``end`` in order: one ``COPY … TO STDOUT (FORMAT BINARY)`` of
        ``(seq, canonical, prev_hash, record_hash)`` rows, in progress, read by the caller (the
        verifier's compiled pass takes them from libpq itself). Cancelled on the way out unless
        read to its end."""
        try:
            with self._pool.connection() as conn, conn.transaction():
                # The plan is a range scan of the primary key; compiling it (JIT: the cost passes
                # jit_above_cost at a few hundred thousand rows) would cost more than it saves.
                conn.execute("SET LOCAL jit = off")
                query = sql.SQL(
                    "COPY (SELECT seq, canonical, prev_hash, record_hash FROM audit_records"
                    " WHERE seq >= {} AND seq <= {} ORDER BY seq) TO STDOUT (FORMAT BINARY)"
                ).format(start, end)
                copy = CopyOut(conn, query.as_bytes(conn))
                try:
                    yield copy
                finally:
                    copy.close()
        except psycopg.OperationalError as exc:
            raise LedgerUnavailable(f"the audit ledger cannot be read: {exc}".strip()) from exc

    def node_runs(self, runs: Sequence[tuple[int, int, int]], *, ordered: bool = False) -> bytes:
        """The hashes of the stored nodes in ``runs``, concatenated by level, then index.

        Each run ``(level, start, end)`` names nodes ``(level, start)`` … ``(level, end - 1)``. The
        verifier's read of the node table: the server concatenates a few runs into one value, so
        a pass over millions of nodes costs Python one byte comparison per batch, not a tuple per
        node. A missing node makes the result shorter than 32 bytes per node asked for.

        ``ordered``: in the runs' order (several runs of a level too), every run sorted
        explicitly: what an evidence export needs, which builds proofs from the bytes and has no
        comparison after it to catch a node out of place.
        """
        if not runs:
            return b""
        # LATERAL: one index range scan per run (a plain join plans a scan of the whole table).
        # Unordered, the run is aggregated in the index's order rather than sorted again (a third
        # faster): were the order ever different, the verifier's comparison would fail and its
        # node-by-node look-up (``nodes``) would find every node in place.
        statement = (
            "SELECT coalesce(string_agg(s.run, ''::bytea ORDER BY r.n), ''::bytea)"
            " FROM unnest(%s::smallint[], %s::bigint[], %s::bigint[]) WITH ORDINALITY AS r(level, lo, hi, n)"
            " CROSS JOIN LATERAL (SELECT string_agg(n.hash, ''::bytea ORDER BY n.idx) AS run"
            " FROM merkle_nodes n WHERE level = r.level AND idx >= r.lo AND idx < r.hi) s"
            if ordered
            else "SELECT coalesce(string_agg(s.run, ''::bytea ORDER BY r.level), ''::bytea)"
            " FROM unnest(%s::smallint[], %s::bigint[], %s::bigint[]) AS r(level, lo, hi)"
            " CROSS JOIN LATERAL (SELECT string_agg(n.hash, ''::bytea) AS run FROM (SELECT idx, hash"
            " FROM merkle_nodes WHERE level = r.level AND idx >= r.lo AND idx < r.hi ORDER BY idx) n) s"
        )

        def query(cur: psycopg.Cursor[tuple[Any, ...]]) -> bytes:
            # With the bounds as parameters the planner expects a few hundred rows per run and
            # picks a bitmap scan, whose rows then need a sort; a run is thousands of rows in the
            # index's order: a plain index range scan costs PostgreSQL a third less CPU.
            cur.execute("SET LOCAL enable_bitmapscan = off")
            cur.execute(statement, ([run[0] for run in runs], [run[1] for run in runs], [run[2] for run in runs]))
            row = cur.fetchone()
            return bytes(row[0]) if row else b""

        return self._read(query)

    def records(self, *, tenant: str | None = None, start: int = 1, batch: int = 10_000) -> Iterator[Record]:
        """Records from ``start`` on, in sequence order (of one tenant when given), read in batches."""
        after = start - 1
        while True:

            def query(cur: psycopg.Cursor[tuple[Any, ...]], after: int = after) -> list[Record]:
                if tenant is None:
                    cur.execute(
                        "SELECT seq, canonical, prev_hash, record_hash, idempotency_key FROM audit_records"
                        " WHERE seq > %s ORDER BY seq LIMIT %s",
                        (after, batch),
                    )
                else:
                    cur.execute(
                        "SELECT seq, canonical, prev_hash, record_hash, idempotency_key FROM audit_records"
                        " WHERE tenant = %s AND seq > %s ORDER BY seq LIMIT %s",
                        (tenant, after, batch),
                    )
                return [record_of(row) for row in cur.fetchall()]

            rows = self._read(query)
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1].seq

    def find(self, prefix: str, *, limit: int = 1000) -> list[Record]:
        """Records whose idempotency key starts with ``prefix``, oldest first (at most ``limit``, newest kept)."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"

        def query(cur: psycopg.Cursor[tuple[Any, ...]]) -> list[Record]:
            cur.execute(
                "SELECT seq, canonical, prev_hash, record_hash, idempotency_key FROM audit_records"
                " WHERE idempotency_key LIKE %s ORDER BY seq DESC LIMIT %s",
                (pattern, limit),
            )
            return [record_of(row) for row in reversed(cur.fetchall())]

        return self._read(query)

    def latest_per_resource(self, prefix: str, action: str, *, until: datetime | None = None) -> list[Record]:
        """The newest record of ``action`` per (resource uid, tenant) among the records whose
        idempotency key starts with ``prefix`` (recorded at or before ``until``), in seq order.

        The key index (migration 0005, `text_pattern_ops`) finds the candidates; the newest per pair is kept
        in the database, so the reply is one record per pair however long the history.
        """
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"

        def query(cur: psycopg.Cursor[tuple[Any, ...]]) -> list[Record]:
            cur.execute(
                "SELECT seq, canonical, prev_hash, record_hash, idempotency_key FROM ("
                " SELECT DISTINCT ON (resource_uid, tenant) seq, canonical, prev_hash, record_hash, idempotency_key"
                " FROM audit_records WHERE idempotency_key LIKE %s AND action = %s"
                " AND (%s::timestamptz IS NULL OR recorded_at <= %s::timestamptz)"
                " ORDER BY resource_uid, tenant, seq DESC) latest ORDER BY seq",
                (pattern, action, until, until),
            )
            return [record_of(row) for row in cur.fetchall()]

        return self._read(query)
