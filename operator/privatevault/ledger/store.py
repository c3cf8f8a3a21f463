"""The PostgreSQL store behind the one append API every part of the operator uses.

Appends are serialised by a transaction-scoped advisory lock on the chain head and guarded by
the primary key on ``seq`` (never by isolation level alone), so that several writer processes
still build one linear chain. A retried append with the same idempotency key returns the record
written the first time. Any database failure becomes :class:`LedgerUnavailable`: audit fails
closed, and the caller must not make the change it was about to record.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import queue
import select
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from privatevault.database import Pool, open_pool
from privatevault.errors import LedgerUnavailable
from privatevault.ledger import appendrows, libpq, merkle, tenantchain
from privatevault.ledger.chain import GENESIS
from privatevault.ledger.event import Event, Record, canonical_time

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

T = TypeVar("T")

#: Key of the advisory lock that guards the chain head ("pvledger" in ASCII).
HEAD_LOCK = 0x70766C6564676572
#: Transactions the writer has in flight at once, each on a connection of its own (and one more
#: connection holds the head lock). A pool of fewer than 4 connections gets one lane: a second
#: lane waiting for a connection while the first waits for its transaction would stall both.
_LANES = 2


def _record(row: tuple[int, bytes, bytes, bytes, str]) -> Record:
    seq, body, prev, digest, key = row
    return Record(seq=seq, canonical=bytes(body), prev_hash=bytes(prev), record_hash=bytes(digest), idempotency_key=key)


_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_COPY_TRAILER = b"\xff\xff"
#: A binary COPY stream's start: the signature, no flags, no header extension.
_COPY_HEADER = _COPY_SIGNATURE + bytes(8)
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
        if bytes(data[: len(_COPY_SIGNATURE)]) != _COPY_SIGNATURE:
            raise psycopg.OperationalError("COPY did not start with the binary signature")
        data = data[19 + int.from_bytes(data[15:19], "big") :]  # after the header's extension area
        return None if data == _COPY_TRAILER else data

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
                    if size == 2 and data == _COPY_TRAILER:
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


class _PgNodes:
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
    """What the writer knows of the chain head after its last commit: the tree's size and head
    hash, its Merkle frontier, and the heads of the tenants it has looked up (``tenants``; those
    absent from ``heads`` have no record). Valid while the stored head is that record."""

    size: int
    record_hash: bytes
    frontier: dict[merkle.NodeKey, bytes]
    heads: tenantchain.Heads
    tenants: set[str]


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: bytes


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
        records = b"".join((_COPY_HEADER, stream, _COPY_TRAILER))
        nodes = b"".join((_COPY_HEADER, node_rows, _COPY_TRAILER))
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


class Ledger:
    """A connection to the ledger, safe to share between handler threads.

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
        if self._owns_pool:
            self._pool.close()

    def append(self, event: Event) -> Record:
        """Write one event at the chain head, or return the record its idempotency key already has."""
        return self.append_many([event])[0]

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
        """What is queued, once there is something to do: tickets and a lane free for them, a
        batch landed, or the burst to end (an empty list); None when the writer stops (closed, or
        30 s idle). While every lane is busy, tickets wait: they become one larger batch."""
        with self._pending:
            while not (flying and flying[0].done.is_set()) and not (self._queue and len(flying) < self._lanes):
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
                self._head = _Head(size, prev, merkle.frontier(size, _PgNodes(cur)), tenantchain.Heads(), set())

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
            return None if row is None else _record(row)

        return self._read(query)

    def root(self, size: int) -> bytes:
        """The Merkle tree head at ``size`` records, from O(log n) stored nodes."""
        return self._read(lambda cur: merkle.tree_root(size, _PgNodes(cur)))

    def inclusion_proof(self, seq: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of record ``seq`` (leaf ``seq - 1``) in the tree of ``size``."""
        return self._read(lambda cur: merkle.inclusion_proof(seq - 1, size, _PgNodes(cur)))

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        return self._read(lambda cur: merkle.consistency_proof(old_size, new_size, _PgNodes(cur)))

    def nodes(self, keys: Sequence[merkle.NodeKey]) -> dict[merkle.NodeKey, bytes]:
        return self._read(lambda cur: _PgNodes(cur).get_many(keys))

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
                return [_record(row) for row in cur.fetchall()]

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
            return [_record(row) for row in reversed(cur.fetchall())]

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
            return [_record(row) for row in cur.fetchall()]

        return self._read(query)

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
        return {row[4]: _record(row) for row in cur.fetchall()}
