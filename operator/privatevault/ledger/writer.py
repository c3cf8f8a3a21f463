"""The ledger's writer: group commit, a chainer thread and two lanes (see :class:`Writer`).

Appends are serialised by an advisory lock on the chain head and guarded by the primary key on
``seq`` (never by isolation level alone), so that several writer processes still build one
linear chain. :mod:`privatevault.ledger.store` owns a :class:`Writer` and hands it its appends:
the store reads, this module writes.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import queue
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from privatevault.database import Pool
from privatevault.errors import LedgerUnavailable
from privatevault.ledger import appendrows, libpq, merkle, tenantchain
from privatevault.ledger.chain import GENESIS
from privatevault.ledger.event import Event, Record, canonical_time
from privatevault.ledger.rows import COPY_HEADER, COPY_TRAILER, PgNodes, record_of

_INSERT = (
    "INSERT INTO audit_records (seq, recorded_at, tenant, actor, action, resource_kind, resource_namespace,"
    " resource_name, resource_uid, outcome, canonical, prev_hash, record_hash, idempotency_key)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_COPY = (
    "COPY audit_records (seq, recorded_at, tenant, actor, action, resource_kind, resource_namespace,"
    " resource_name, resource_uid, outcome, canonical, prev_hash, record_hash, idempotency_key)"
    " FROM STDIN (FORMAT BINARY)"
)
_COPY_SQL = _COPY.encode()
_INSERT_NODE = "INSERT INTO merkle_nodes (level, idx, hash) VALUES (%s, %s, %s)"
_COPY_NODES = "COPY merkle_nodes (level, idx, hash) FROM STDIN (FORMAT BINARY)"
_COPY_NODES_SQL = _COPY_NODES.encode()
#: Batches at least this large go through COPY; smaller ones through one INSERT each.
COPY_THRESHOLD = 32

#: Key of the advisory lock that guards the chain head ("pvledger" in ASCII).
HEAD_LOCK = 0x70766C6564676572
#: Transactions the writer has in flight at once, each on a connection of its own (and one more
#: connection holds the head lock). A pool of fewer than 4 connections gets one lane: a second
#: lane waiting for a connection while the first waits for its transaction would stall both.
_LANES = 2
#: Batches chained ahead of the lanes, waiting for one to be free: the next batch is ready the
#: moment a lane is (its chaining off the lanes' path), and whatever is queued meanwhile still
#: makes one larger batch after it.
_AHEAD = 1

#: Microseconds from the Unix epoch to PostgreSQL's (2000-01-01), for a binary timestamptz.
_PG_EPOCH_US = 946_684_800_000_000
_LENGTH = struct.Struct(">i").pack
_NULL = _LENGTH(-1)


def _columns(event: Event) -> tuple[str, str, str, str, str | None, str, str | None, str]:
    """An event's own columns, ``tenant`` … ``outcome``."""
    resource = event.resource
    return (
        event.tenant,
        event.actor,
        event.action,
        resource.kind,
        resource.namespace,
        resource.name,
        resource.uid,
        event.outcome,
    )


def _fixed_fields_py(event: Event) -> tuple[bytes, bytes]:
    """An event's fields of its binary COPY row that do not depend on its position: ``tenant`` …
    ``outcome`` (fields 3 to 10), and ``idempotency_key`` (the last)."""
    middle: list[bytes] = []
    add = middle.append
    for value in _columns(event):
        if value is None:
            add(_NULL)
        else:
            data = value.encode()
            add(_LENGTH(len(data)))
            add(data)
    key = event.idempotency_key.encode()
    return b"".join(middle), _LENGTH(len(key)) + key


def _fixed_fields(event: Event) -> tuple[bytes, bytes]:
    """:func:`_fixed_fields_py`, compiled when the writer's extension is built."""
    if appendrows.fields is None:
        return _fixed_fields_py(event)
    return appendrows.fields(_columns(event), event.idempotency_key)


def _insert_row(now: datetime, record: Record, event: Event) -> tuple[Any, ...]:
    body, prev, digest = record.canonical, record.prev_hash, record.record_hash
    return (record.seq, now, *_columns(event), body, prev, digest, event.idempotency_key)


def _chain(
    known: _Head,
    events: Sequence[Event],
    fields: Sequence[tuple[bytes, bytes]],
    found: dict[str, Record],
    *,
    seq: int,
    prev: bytes,
    now: datetime,
) -> tuple[list[tuple[Record, Event]], bytes]:
    """Chain the events whose key is not in ``found`` after record ``seq`` (hash ``prev``), each
    key once, at ``now``; add them to ``found`` and advance the tenant heads of ``known``.
    Returns the records with their events, and the records' binary COPY rows."""
    tenants = sorted({event.tenant for event in events if event.tenant and event.idempotency_key not in found})
    slots = {tenant: slot for slot, tenant in enumerate(tenants)}
    states: list[list[object]] = [list(known.heads.get(tenant)) for tenant in tenants]
    items: list[appendrows.Item] = []
    chained: list[Event] = []
    for event, fixed in zip(events, fields, strict=True):
        if event.idempotency_key in found:
            continue
        found[event.idempotency_key] = Record(0, b"", b"", b"")  # a key twice in a batch: once
        head, member = event.canonical_parts
        items.append((head, member, slots.get(event.tenant, -1), *fixed))
        chained.append(event)
    stream, bodies, digests = appendrows.records(seq, prev, canonical_time(now), _recorded(now), items, states)
    for tenant, (tenant_seq, digest) in zip(tenants, states, strict=True):
        assert isinstance(tenant_seq, int) and isinstance(digest, bytes)
        known.heads.set(tenant, tenant_seq, digest)
    written = []
    for offset, event in enumerate(chained):
        record = Record(
            seq + 1 + offset,
            bodies[offset],
            digests[offset - 1] if offset else prev,
            digests[offset],
            event.idempotency_key,
        )
        found[event.idempotency_key] = record
        written.append((record, event))
    return written, stream


def _recorded(now: datetime) -> bytes:
    """``now`` as a binary COPY field of type timestamptz (microseconds since 2000-01-01 UTC)."""
    delta = now - datetime(1970, 1, 1, tzinfo=UTC)
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds - _PG_EPOCH_US
    return struct.pack(">iq", 8, micros)


@dataclass
class _Head:
    """The chain head after the last batch the chainer chained (committed or still in flight):
    the tree's size and head hash, its Merkle frontier, and the heads of the tenants it has
    looked up (``tenants``; those absent from ``heads`` have no record). Trusted at the start of
    a burst only if the stored head is that record, and dropped when a batch fails."""

    size: int
    record_hash: bytes
    frontier: dict[merkle.NodeKey, bytes]
    heads: tenantchain.Heads
    tenants: set[str]


class _Ticket:
    """Events waiting to be committed, and what became of them."""

    __slots__ = ("alone", "error", "events", "fields", "finished", "look_up", "records")

    def __init__(self, events: Sequence[Event]) -> None:
        self.events = events
        # Made here, in the caller's thread, while the writer's threads wait on the database.
        for event in events:
            event.canonical_parts  # noqa: B018
        self.fields = [_fixed_fields(event) for event in events]
        self.records: list[Record] = []
        self.error: BaseException | None = None
        #: Written again after a key of the batch was found written: look the keys up first.
        self.look_up = False
        #: Its events were in a batch refused for what one caller sent: they go in a batch alone.
        self.alone = False
        self.finished = threading.Event()

    def answer(self, found: dict[str, Record]) -> None:
        self.records = [found[event.idempotency_key] for event in self.events]
        self.finished.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.finished.set()


def _unavailable(exc: BaseException) -> BaseException:
    if isinstance(exc, psycopg.OperationalError):
        error = LedgerUnavailable(f"the audit ledger cannot be written: {exc}".strip())
        error.__cause__ = exc
        return error
    return exc


class _Rows:
    """A batch chained after a head: its records and Merkle nodes as they are written (binary
    COPY data, or INSERT rows for a small batch) and the records by key."""

    __slots__ = ("found", "nodes", "records")

    def __init__(self, found: dict[str, Record], records: Any, nodes: Any) -> None:
        self.found, self.records, self.nodes = found, records, nodes

    def write(self, cur: psycopg.Cursor[tuple[Any, ...]]) -> None:
        if isinstance(self.records, bytes):
            with cur.copy(_COPY) as copy:
                copy.write(self.records)
            with cur.copy(_COPY_NODES) as copy:
                copy.write(self.nodes)
        elif self.records:
            cur.executemany(_INSERT, self.records)
            cur.executemany(_INSERT_NODE, self.nodes)


def _chain_rows(
    known: _Head,
    events: Sequence[Event],
    fields: Sequence[tuple[bytes, bytes]],
    found: dict[str, Record],
    read_heads: Callable[[list[str]], list[tuple[str, bytes, bytes]]],
) -> _Rows:
    """Chain the events not in ``found`` after ``known``, which advances to the new head (size,
    hash, frontier, tenant heads); ``read_heads`` reads the heads of tenants it has not seen."""
    size, prev = known.size, known.record_hash
    tenants = {e.tenant for e in events if e.idempotency_key not in found and e.tenant}
    if missing := tenants - known.tenants:
        known.heads.update(read_heads(sorted(missing)))
        known.tenants |= missing
    now = datetime.now(UTC)
    chained, stream = _chain(known, events, fields, found, seq=size, prev=prev, now=now)
    if not chained:
        return _Rows(found, [], [])
    digests = [record.record_hash for record, _ in chained]
    records: Any
    nodes: Any
    if len(chained) < COPY_THRESHOLD and appendrows.send is None:
        # Without the compiled send a few INSERTs cost less than two COPYs through psycopg.
        records = [_insert_row(now, record, event) for record, event in chained]
        nodes = merkle.grow(size, known.frontier, [merkle.leaf_hash(d) for d in digests])
    else:
        # Binary COPY, its rows made here: no escaping, no per-value adaptation.
        frontier = [known.frontier[key] for key in merkle.root_keys(size)]
        node_rows, frontier = appendrows.nodes(size, frontier, digests)
        known.frontier = dict(zip(merkle.root_keys(size + len(digests)), frontier, strict=True))
        records = b"".join((COPY_HEADER, stream, COPY_TRAILER))
        nodes = b"".join((COPY_HEADER, node_rows, COPY_TRAILER))
    known.size, known.record_hash = chained[-1][0].seq, chained[-1][0].record_hash
    return _Rows(found, records, nodes)


class _Behind(Exception):
    """The transaction before this one did not commit: this one must not either."""


class _Work:
    """One batch's transaction, handed from the chainer to a lane: its rows, the transaction
    before it (which must commit first), and what became of it."""

    __slots__ = ("done", "error", "keys", "previous", "rows", "tickets")

    def __init__(self, tickets: list[_Ticket], keys: set[str], rows: _Rows, previous: _Work | None) -> None:
        self.tickets, self.keys, self.rows, self.previous = tickets, keys, rows, previous
        #: None once committed; _Behind if rolled back because the one before did not commit.
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self, conn: psycopg.Connection[Any]) -> None:
        """Write the rows, wait for the transaction before, commit only if it committed."""
        try:
            send = _compiled_send(conn) if isinstance(self.rows.records, bytes) else None
            if send is not None:
                # One call, the GIL released throughout: a lane that had to take the GIL back
                # after every chunk of its COPY would wait for the chainer and the callers each time.
                send(((b"BEGIN", None), (_COPY_SQL, self.rows.records), (_COPY_NODES_SQL, self.rows.nodes)))
            else:
                with conn.cursor() as cur:
                    self.rows.write(cur)
            if self.previous is not None:
                self.previous.done.wait()
                if self.previous.error is not None:
                    raise _Behind
            if send is not None:
                send(((b"COMMIT", None),))
            else:
                conn.commit()
        except BaseException as exc:
            self.error = exc
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
        else:
            for ticket in self.tickets:
                ticket.answer(self.rows.found)


def _compiled_send(conn: psycopg.Connection[Any]) -> Callable[[tuple[tuple[bytes, bytes | None], ...]], None] | None:
    """``appendrows.send`` on ``conn``, raising psycopg's error for a statement that fails; None
    without the extension or psycopg's libpq."""
    send = appendrows.send
    native = libpq.send_functions(conn) if send is not None else None
    if send is None or native is None:
        return None
    pointer, functions = native

    def run(statements: tuple[tuple[bytes, bytes | None], ...]) -> None:
        failed = send(pointer, functions, statements)
        if failed is not None:
            _, sqlstate, message = failed
            error: type[psycopg.Error] = psycopg.OperationalError
            with contextlib.suppress(KeyError):
                error = psycopg.errors.lookup(sqlstate) if sqlstate else error
            raise error(message.strip() or "the ledger's write failed")

    return run


class Writer:
    """The ledger's appends, safe to share between handler threads.

    Group commit: appends queue their events; everything queued while the writer was busy
    becomes one transaction. Under low load that is one event per transaction, under high load
    many. The writer's threads start on demand and stop after 30 s idle:

    - the **chainer** takes the head lock (session-level, on a connection of its own) for as
      long as it has batches in flight (a burst), reads the head when a burst starts, and chains
      each batch after the one before: record hashes, tenant links, Merkle nodes, the rows as
      they are sent;
    - two **lanes** each write a batch's rows in a transaction of their own, so that PostgreSQL
      inserts one batch while the other commits or is still inserting; a lane commits only
      after the transaction of the batch before has committed, and rolls back if it did not.

    Callers are answered when their own transaction has committed. Any failure (a key written
    before, the database gone) rolls back every batch chained after it; the chainer then reads
    the head again, writes the batch with a key written before once more with its keys looked up
    (returning the records written the first time), and fails the others' callers only for an
    error of their own.
    """

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._lanes = _LANES if pool.max_size >= _LANES + 2 else 1
        self._queue: list[_Ticket] = []
        self._pending = threading.Condition()
        self._committer: threading.Thread | None = None
        self._closed = False
        # The chainer's own: the connection holding the head lock through a burst, the head the
        # last batch chained leaves (None: read it again), and the keys of the batches in flight.
        self._holder: psycopg.Connection[Any] | None = None
        self._head: _Head | None = None
        self._flying: set[str] = set()

    def close(self) -> None:
        with self._pending:
            self._closed = True
            self._pending.notify()

    def append_many(self, events: Sequence[Event]) -> list[Record]:
        """Write events in order, in one transaction with whatever else is queued; idempotent per key."""
        ticket = _Ticket(events)
        with self._pending:
            self._closed = False
            self._queue.append(ticket)
            if self._committer is None or not self._committer.is_alive():
                self._committer = threading.Thread(target=self._commit_loop, name="privatevault-ledger", daemon=True)
                self._committer.start()
            self._pending.notify()
        ticket.finished.wait()
        if ticket.error is not None:
            raise ticket.error
        return ticket.records

    # -- the chainer -------------------------------------------------------------------------

    def _commit_loop(self) -> None:
        lanes: list[queue.SimpleQueue[_Work | None]] = [queue.SimpleQueue() for _ in range(self._lanes)]
        threads = [
            threading.Thread(target=self._lane, args=(lane,), name=f"privatevault-ledger-{n}", daemon=True)
            for n, lane in enumerate(lanes, 1)
        ]
        for thread in threads:
            thread.start()
        flying: collections.deque[_Work] = collections.deque()
        try:
            turns = itertools.count()
            while True:
                batch = self._next_batch(flying)
                if batch is None:
                    return
                batch = self._landed(flying) + batch
                for alone in [[ticket] for ticket in batch if ticket.alone]:
                    self._send(alone, flying, lanes[next(turns) % len(lanes)])
                if batch := [ticket for ticket in batch if not ticket.alone]:
                    self._send(batch, flying, lanes[next(turns) % len(lanes)])
                elif not flying:
                    self._end_burst()
        finally:
            for lane in lanes:
                lane.put(None)
            for thread in threads:
                thread.join()
            self._end_burst()

    def _next_batch(self, flying: collections.deque[_Work]) -> list[_Ticket] | None:
        """What is queued, once there is something to do: tickets and room for them (a lane free,
        or ``_AHEAD`` batches waiting for one), a batch landed, or the burst to end (an empty list);
        None when the writer stops (closed, or 30 s idle). Without room, tickets wait: they become
        one larger batch."""
        with self._pending:
            room = self._lanes + _AHEAD
            while not (flying and flying[0].done.is_set()) and not (self._queue and len(flying) < room):
                if flying:
                    self._pending.wait()  # a lane notifies when a batch lands
                elif self._holder is not None:
                    break
                elif self._closed or not self._pending.wait(timeout=30):
                    self._committer = None
                    return None
            batch, self._queue = self._queue, []
        return batch

    def _landed(self, flying: collections.deque[_Work]) -> list[_Ticket]:
        """Take the batches that have landed, in order; the tickets to send again (a failure
        rolls back every batch after it, which then all land before this returns)."""
        again: list[_Ticket] = []
        failed = False
        while flying and (flying[0].done.is_set() or failed):
            work = flying.popleft()
            work.done.wait()
            self._flying -= work.keys
            if work.error is None:
                continue
            failed = True
            if isinstance(work.error, _Behind):
                again += work.tickets
            elif isinstance(work.error, psycopg.errors.UniqueViolation) and not any(t.look_up for t in work.tickets):
                for ticket in work.tickets:
                    ticket.look_up = True
                again += work.tickets
            elif len(work.tickets) > 1 and not isinstance(work.error, psycopg.OperationalError):
                # Refused for what one caller sent (a NUL in a text, say): each caller's events
                # go again on their own, so that only the one who sent it is told.
                for ticket in work.tickets:
                    ticket.alone = True
                again += work.tickets
            else:
                error = _unavailable(work.error)
                for ticket in work.tickets:
                    ticket.fail(error)
        if failed:
            self._head = None
            self._end_burst()
        return again

    def _send(
        self, batch: list[_Ticket], flying: collections.deque[_Work], lane: queue.SimpleQueue[_Work | None]
    ) -> None:
        """Chain ``batch`` after the batches in flight and hand it to ``lane``."""
        events = [event for ticket in batch for event in ticket.events]
        fields = [row for ticket in batch for row in ticket.fields]
        keys = {event.idempotency_key for event in events}
        if not keys.isdisjoint(self._flying):
            # A key twice in flight: the second insert would wait on the first's transaction,
            # which may be waiting for the second's to land. Let everything land first.
            for work in flying:
                work.done.wait()
            batch = self._landed(flying) + batch
            return self._send(batch, flying, lane)
        try:
            if self._holder is None:
                self._start_burst()
            assert self._holder is not None and self._head is not None
            with self._holder.cursor() as cur:
                found = self._by_keys(cur, sorted(keys)) if any(t.look_up for t in batch) else {}
                rows = _chain_rows(self._head, events, fields, found, lambda tenants: self._tenant_heads(cur, tenants))
        except BaseException as exc:
            for work in flying:  # the lock is kept until nothing chained under it is in flight
                work.done.wait()
            self._head = None
            self._end_burst()
            error = _unavailable(exc)
            for ticket in batch:
                ticket.fail(error)
            return None
        if not rows.records:  # every key written before
            for ticket in batch:
                ticket.answer(found)
            return None
        work = _Work(batch, keys, rows, flying[-1] if flying else None)
        flying.append(work)
        self._flying |= keys
        lane.put(work)
        return None

    def _start_burst(self) -> None:
        """Take the head lock; read the head unless it is the one the chainer left."""
        conn = self._pool.getconn()
        self._holder = conn
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (HEAD_LOCK,))
            cur.execute("SELECT seq, record_hash FROM audit_records ORDER BY seq DESC LIMIT 1")
            head = cur.fetchone()
            size, prev = (0, GENESIS) if head is None else (int(head[0]), bytes(head[1]))
            known = self._head
            if known is None or known.size != size or known.record_hash != prev:
                # Another writer appended since (or this one never did, or failed): read it all.
                self._head = _Head(size, prev, merkle.frontier(size, PgNodes(cur)), tenantchain.Heads(), set())

    def _end_burst(self) -> None:
        """Give up the head lock (nothing of the burst in flight any more)."""
        conn, self._holder = self._holder, None
        if conn is None:
            return
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", (HEAD_LOCK,))
            conn.autocommit = False
        except BaseException:
            self._head = None
            conn.close()  # the server ends the session, and its lock with it
        self._pool.putconn(conn)

    # -- the lanes ---------------------------------------------------------------------------

    def _lane(self, lane: queue.SimpleQueue[_Work | None]) -> None:
        while (work := lane.get()) is not None:
            try:
                with self._pool.connection() as conn:
                    work.run(conn)
            except BaseException as exc:  # no connection
                work.error = exc
            with self._pending:
                work.done.set()
                self._pending.notify()

    @staticmethod
    def _tenant_heads(cur: psycopg.Cursor[tuple[Any, ...]], tenants: list[str]) -> list[tuple[str, bytes, bytes]]:
        """Each tenant's newest record (read under the append lock), as ``(tenant, canonical,
        record hash)``: where its chain goes on. Tenants with no record have no row."""
        cur.execute(
            # LATERAL: one backward scan of the (tenant, seq) index per tenant, however long its history.
            "SELECT t.tenant, r.canonical, r.record_hash FROM unnest(%s::text[]) AS t(tenant)"
            " CROSS JOIN LATERAL (SELECT canonical, record_hash FROM audit_records WHERE tenant = t.tenant"
            " ORDER BY seq DESC LIMIT 1) r",
            (tenants,),
        )
        return [(str(t), bytes(c), bytes(h)) for t, c, h in cur.fetchall()]

    @staticmethod
    def _by_keys(cur: psycopg.Cursor[tuple[Any, ...]], keys: list[str]) -> dict[str, Record]:
        cur.execute(
            "SELECT seq, canonical, prev_hash, record_hash, idempotency_key FROM audit_records"
            " WHERE idempotency_key = ANY(%s)",
            (keys,),
        )
        return {row[4]: record_of(row) for row in cur.fetchall()}
