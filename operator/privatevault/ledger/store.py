"""The PostgreSQL store behind the one append API every part of the operator uses.

Appends are serialised by a transaction-scoped advisory lock on the chain head and guarded by
the primary key on ``seq`` (never by isolation level alone), so that several writer processes
still build one linear chain. A retried append with the same idempotency key returns the record
written the first time. Any database failure becomes :class:`LedgerUnavailable`: audit fails
closed, and the caller must not make the change it was about to record.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from privatevault.errors import LedgerUnavailable

from .chain import GENESIS, record_hash
from .event import Event, Record, canonical

_INSERT = (
    "INSERT INTO audit_records (seq, recorded_at, tenant, actor, action, resource_kind, resource_namespace,"
    " resource_name, resource_uid, outcome, canonical, prev_hash, record_hash, idempotency_key)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_COPY = (
    "COPY audit_records (seq, recorded_at, tenant, actor, action, resource_kind, resource_namespace,"
    " resource_name, resource_uid, outcome, canonical, prev_hash, record_hash, idempotency_key) FROM STDIN"
)
#: Batches at least this large go through COPY; smaller ones through one INSERT each.
COPY_THRESHOLD = 32

#: Key of the advisory lock that guards the chain head ("pvledger" in ASCII).
HEAD_LOCK = 0x70766C6564676572


def _record(row: tuple[int, bytes, bytes, bytes, str]) -> Record:
    seq, body, prev, digest, key = row
    return Record(seq=seq, canonical=bytes(body), prev_hash=bytes(prev), record_hash=bytes(digest), idempotency_key=key)


class _Ticket:
    """Events waiting to be committed, and what became of them."""

    __slots__ = ("done", "error", "events", "records")

    def __init__(self, events: Sequence[Event]) -> None:
        self.events = events
        self.records: list[Record] = []
        self.error: BaseException | None = None
        self.done = False


class Ledger:
    """A connection to the ledger, safe to share between handler threads.

    Group commit: a thread that finds the writer busy queues its events; whoever holds the
    writer next commits everything queued in one transaction. Under low load that is one event
    per transaction, under high load many.
    """

    def __init__(self, dsn: str, *, connect_timeout: float = 5.0) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._lock = threading.Lock()
        self._queue: list[_Ticket] = []
        self._queue_lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._discard()

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._dsn, connect_timeout=int(self._connect_timeout))
        return self._conn

    def append(self, event: Event) -> Record:
        """Write one event at the chain head, or return the record its idempotency key already has."""
        return self.append_many([event])[0]

    def append_many(self, events: Sequence[Event]) -> list[Record]:
        """Write events in order, in one transaction with whatever else is queued; idempotent per key."""
        ticket = _Ticket(events)
        with self._queue_lock:
            self._queue.append(ticket)
        with self._lock:
            if not ticket.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit(batch)
        if ticket.error is not None:
            raise ticket.error
        return ticket.records

    def _commit(self, batch: list[_Ticket]) -> None:
        events = [event for ticket in batch for event in ticket.events]
        try:
            written = self._write(events)
        except psycopg.OperationalError as exc:
            self._discard()
            error: BaseException = LedgerUnavailable(f"the audit ledger cannot be written: {exc}".strip())
            error.__cause__ = exc
            for ticket in batch:
                ticket.error, ticket.done = error, True
            return
        except BaseException as exc:
            self._discard()
            for ticket in batch:
                ticket.error, ticket.done = exc, True
            return
        for ticket in batch:
            ticket.records = [written[event.idempotency_key] for event in ticket.events]
            ticket.done = True

    def _write(self, events: Sequence[Event]) -> dict[str, Record]:
        keys = list(dict.fromkeys(event.idempotency_key for event in events))
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cur:
            found = self._by_keys(cur, keys)
            if len(found) < len(keys):
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (HEAD_LOCK,))
                # Another writer may have appended some of the same events while we waited.
                found = self._by_keys(cur, keys)
                cur.execute("SELECT seq, record_hash FROM audit_records ORDER BY seq DESC LIMIT 1")
                head = cur.fetchone()
                seq, prev = (0, GENESIS) if head is None else (int(head[0]), bytes(head[1]))
                now = datetime.now(UTC)
                rows = []
                for event in events:
                    if event.idempotency_key in found:
                        continue
                    seq += 1
                    body = canonical(event.body(seq=seq, time=now))
                    digest = record_hash(prev, body)
                    rows.append((seq, now, event.tenant, event.actor, event.action, event.resource.kind,
                                 event.resource.namespace, event.resource.name, event.resource.uid,
                                 event.outcome, body, prev, digest, event.idempotency_key))
                    found[event.idempotency_key] = Record(seq=seq, canonical=body, prev_hash=prev,
                                                          record_hash=digest,
                                                          idempotency_key=event.idempotency_key)
                    prev = digest
                if len(rows) < COPY_THRESHOLD:
                    cur.executemany(_INSERT, rows)
                else:
                    with cur.copy(_COPY) as copy:
                        for row in rows:
                            copy.write_row(row)
        return found

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
    def _by_keys(cur: psycopg.Cursor[tuple[Any, ...]], keys: list[str]) -> dict[str, Record]:
        cur.execute(
            "SELECT seq, canonical, prev_hash, record_hash, idempotency_key FROM audit_records"
            " WHERE idempotency_key = ANY(%s)",
            (keys,),
        )
        return {row[4]: _record(row) for row in cur.fetchall()}

    def _discard(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
