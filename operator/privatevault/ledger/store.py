"""The PostgreSQL store behind the one append API every part of the operator uses.

Appends are serialised by a transaction-scoped advisory lock on the chain head and guarded by
the primary key on ``seq`` (never by isolation level alone), so that several writer processes
still build one linear chain. A retried append with the same idempotency key returns the record
written the first time. Any database failure becomes :class:`LedgerUnavailable`: audit fails
closed, and the caller must not make the change it was about to record.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg

from privatevault.errors import LedgerUnavailable

from .chain import GENESIS, record_hash
from .event import Event, Record, canonical

#: Key of the advisory lock that guards the chain head ("pvledger" in ASCII).
HEAD_LOCK = 0x70766C6564676572


def _record(row: tuple[int, bytes, bytes, bytes, str]) -> Record:
    seq, body, prev, digest, key = row
    return Record(seq=seq, canonical=bytes(body), prev_hash=bytes(prev), record_hash=bytes(digest), idempotency_key=key)


class Ledger:
    """A connection to the ledger, safe to share between handler threads."""

    def __init__(self, dsn: str, *, connect_timeout: float = 5.0) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._dsn, connect_timeout=int(self._connect_timeout))
        return self._conn

    def append(self, event: Event) -> Record:
        """Write one event at the chain head, or return the record its idempotency key already has."""
        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction(), conn.cursor() as cur:
                    found = self._by_key(cur, event.idempotency_key)
                    if found is not None:
                        return found
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (HEAD_LOCK,))
                    # Another writer may have appended the same event while we waited.
                    found = self._by_key(cur, event.idempotency_key)
                    if found is not None:
                        return found
                    cur.execute("SELECT seq, record_hash FROM audit_records ORDER BY seq DESC LIMIT 1")
                    head = cur.fetchone()
                    seq = 1 if head is None else int(head[0]) + 1
                    prev = GENESIS if head is None else bytes(head[1])
                    now = datetime.now(UTC)
                    body = canonical(event.body(seq=seq, time=now))
                    digest = record_hash(prev, body)
                    cur.execute(
                        "INSERT INTO audit_records (seq, recorded_at, tenant, actor, action, resource_kind,"
                        " resource_namespace, resource_name, resource_uid, outcome, canonical, prev_hash,"
                        " record_hash, idempotency_key)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        (
                            seq,
                            now,
                            event.tenant,
                            event.actor,
                            event.action,
                            event.resource.kind,
                            event.resource.namespace,
                            event.resource.name,
                            event.resource.uid,
                            event.outcome,
                            body,
                            prev,
                            digest,
                            event.idempotency_key,
                        ),
                    )
                    return Record(
                        seq=seq,
                        canonical=body,
                        prev_hash=prev,
                        record_hash=digest,
                        idempotency_key=event.idempotency_key,
                    )
            except psycopg.OperationalError as exc:
                self._discard()
                raise LedgerUnavailable(f"the audit ledger cannot be written: {exc}".strip()) from exc

    def records(self, *, tenant: str | None = None, batch: int = 10_000) -> Iterator[Record]:
        """Every record in sequence order (of one tenant when given), read in batches."""
        after = 0
        while True:
            with self._lock:
                try:
                    conn = self._connection()
                    with conn.transaction(), conn.cursor() as cur:
                        if tenant is None:
                            cur.execute(
                                "SELECT seq, canonical, prev_hash, record_hash, idempotency_key FROM audit_records"
                                " WHERE seq > %s ORDER BY seq LIMIT %s",
                                (after, batch),
                            )
                        else:
                            cur.execute(
                                "SELECT seq, canonical, prev_hash, record_hash, idempotency_key FROM audit_records"
                                " WHERE tenant = %s AND seq > %s"
                                " ORDER BY seq LIMIT %s",
                                (tenant, after, batch),
                            )
                        rows = [_record(row) for row in cur.fetchall()]
                except psycopg.OperationalError as exc:
                    self._discard()
                    raise LedgerUnavailable(f"the audit ledger cannot be read: {exc}".strip()) from exc
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1].seq

    @staticmethod
    def _by_key(cur: psycopg.Cursor[tuple[Any, ...]], key: str) -> Record | None:
        cur.execute(
            "SELECT seq, canonical, prev_hash, record_hash, idempotency_key FROM audit_records"
            " WHERE idempotency_key = %s",
            (key,),
        )
        row = cur.fetchone()
        return None if row is None else _record(row)

    def _discard(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
