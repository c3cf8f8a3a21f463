"""The ledger writer's pipeline on a real PostgreSQL: batches in flight on two connections commit in
the order they were chained, a batch refused or holding a key written before rolls back every
batch chained after it (which are then written again, their callers never told of another's
failure), a key in two batches in flight is written once, and all of it with the compiled send
(``_append.send``) and with psycopg's own COPY."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from privatevault.ledger import Event, Record, appendrows, writer
from privatevault.ledger.schema import Database
from privatevault.ledger.store import Ledger

from .test_ledger import _verified, event

pytestmark = pytest.mark.integration


class _Lanes:
    """Counts the transactions in flight at once and those rolled back behind another. A batch
    ``hold`` picks waits, before it writes, until a batch chained after it has started (or 10 s),
    so that the test sees two in flight whatever the machine's speed and load."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = self.most = self.behind = 0
        self.hold: Callable[[Any], bool] = lambda work: False
        self.started: list[Any] = []
        self.changed = threading.Condition()
        run = writer._Work.run

        def held(work: Any, conn: psycopg.Connection[Any]) -> None:
            with self.changed:
                self.now += 1
                self.most = max(self.most, self.now)
                self.started.append(work)
                self.changed.notify_all()
                if self.hold(work):
                    self.changed.wait_for(lambda: any(w.previous is work for w in self.started), timeout=10)
            try:
                run(work, conn)
            finally:
                with self.changed:
                    self.now -= 1
                    self.behind += isinstance(work.error, writer._Behind)

        monkeypatch.setattr(writer._Work, "run", held)

    def holding(self, key: str) -> None:
        """Hold the batch that holds ``key``."""
        self.hold = lambda work: key in work.keys


@pytest.fixture(params=["compiled send", "psycopg copy"])
def lanes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Lanes]:
    if request.param == "psycopg copy":
        monkeypatch.setattr(appendrows, "send", None)
    else:
        assert appendrows.send is not None, "the writer's C extension is not built"
    yield _Lanes(monkeypatch)


def _together(calls: list[Callable[[], list[Record]]], apart: float = 0.01) -> list[list[Record] | BaseException]:
    """Run the calls one thread each, ``apart`` seconds apart (10 ms: each while the ones before
    are still being written, as a lane's write takes 20 ms more here; 0: all at once, which
    group commit makes one batch); each one's records or error."""
    results: list[list[Record] | BaseException] = [[] for _ in calls]
    start = threading.Barrier(len(calls))

    def call(index: int) -> None:
        start.wait()
        time.sleep(index * apart)
        try:
            results[index] = calls[index]()
        except BaseException as exc:  # handed to the test
            results[index] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "an append never returned"
    return results


def _batch(name: str, size: int) -> list[Event]:
    tenants = ("acme", "globex", "")  # "": a record of no tenant
    return [event(f"{tenants[i % 3]}/{name}-{i}", tenant=tenants[i % 3]) for i in range(size)]


def test_batches_in_flight_commit_in_order_and_verify(database: Database, lanes: _Lanes) -> None:
    ledger = Ledger(database.operator_dsn)
    try:
        sizes = [100, 1, 64, 31, 200, 2, 40, 100]
        batches = [_batch(f"b{n}", size) for n, size in enumerate(sizes)]
        lanes.holding(batches[0][0].idempotency_key)
        results = _together([lambda b=b: ledger.append_many(b) for b in batches])
        for batch, result in zip(batches, results, strict=True):
            assert isinstance(result, list), result
            assert [r.idempotency_key for r in result] == [e.idempotency_key for e in batch]
        assert lanes.most == 2, "no two transactions were ever in flight: the pipeline was not tested"
        assert ledger.size() == sum(sizes)
        _verified(ledger)
    finally:
        ledger.close()


def test_a_refused_batch_rolls_back_the_batches_chained_after_it(database: Database, lanes: _Lanes) -> None:
    """A NUL in a text column makes PostgreSQL refuse a batch inside its COPY (or INSERT); the
    batches chained after it must not commit on top of it. Only its own caller is told; the
    others' events are chained again and written."""
    ledger = Ledger(database.operator_dsn)
    try:
        ledger.append_many(_batch("before", 10))
        refused = dataclasses.replace(event("acme/refused"), actor="te\x00st")
        batches = [_batch(f"r{n}", size) for n, size in enumerate([50, 3, 80, 1, 64])]
        batches.insert(2, [*_batch("with-nul", 40), refused])
        lanes.holding(refused.idempotency_key)
        results = _together([lambda b=b: ledger.append_many(b) for b in batches])
        assert isinstance(results[2], psycopg.errors.CharacterNotInRepertoire), results[2]
        written = [r for n, r in enumerate(results) if n != 2]
        assert all(isinstance(r, list) for r in written), written
        assert ledger.size() == 10 + 50 + 3 + 80 + 1 + 64
        assert not ledger.find("acme/with-nul"), "a record of the refused batch was written"
        assert lanes.behind >= 1, "no batch was chained after the refused one while it was in flight"
        _verified(ledger)
    finally:
        ledger.close()


def test_a_key_in_batches_in_flight_is_written_once(database: Database, lanes: _Lanes) -> None:
    """The same events appended by several callers at once (a handler retried while its first try
    is still being written): one record per key, and every caller gets that record."""
    ledger = Ledger(database.operator_dsn)
    try:
        ledger.append_many(_batch("before", 5))
        same = _batch("same", 60)
        others = [_batch(f"o{n}", 20) for n in range(3)]
        calls = [lambda: ledger.append_many(same)] * 3 + [lambda b=b: ledger.append_many(b) for b in others]
        results = _together(calls)
        assert all(isinstance(r, list) for r in results), results
        first = results[0]
        assert isinstance(first, list)
        assert results[1] == first and results[2] == first
        assert ledger.size() == 5 + 60 + 3 * 20
        _verified(ledger)
    finally:
        ledger.close()


def test_a_key_written_before_in_a_pipelined_batch_returns_the_first_record(database: Database, lanes: _Lanes) -> None:
    """A batch holding a key committed long before fails on the key's unique index inside its
    transaction: it is written again with its keys looked up, the batches chained after it again
    from the head, and every caller gets its records (the old key's the first time's)."""
    ledger = Ledger(database.operator_dsn)
    try:
        old = ledger.append_many(_batch("old", 30))
        mixed = [*_batch("new", 40), event(old[7].idempotency_key, tenant="globex")]
        batches = [_batch("p0", 70), mixed, _batch("p1", 45), _batch("p2", 2)]
        lanes.holding(mixed[-1].idempotency_key)
        results = _together([lambda b=b: ledger.append_many(b) for b in batches])
        assert all(isinstance(r, list) for r in results), results
        again = results[1]
        assert isinstance(again, list)
        assert again[-1] == old[7]
        assert lanes.behind >= 1, "no batch was chained after the failing one while it was in flight"
        assert ledger.size() == 30 + 70 + 40 + 45 + 2
        _verified(ledger)
    finally:
        ledger.close()


def test_a_refused_event_fails_only_its_own_caller_in_a_merged_batch(database: Database, lanes: _Lanes) -> None:
    """Callers appending at once share one transaction (group commit); PostgreSQL refusing one
    caller's event must not fail the others: their events are written again, each on their own."""
    ledger = Ledger(database.operator_dsn)
    try:
        refused = dataclasses.replace(event("acme/refused"), actor="te\x00st")
        batches = [_batch(f"m{n}", 5) for n in range(6)]
        batches[3] = [*batches[3], refused]
        results = _together([lambda b=b: ledger.append_many(b) for b in batches], apart=0)
        # Refused by PostgreSQL (CharacterNotInRepertoire) or, in an INSERT, by psycopg first.
        assert isinstance(results[3], psycopg.DataError), results[3]
        assert all(isinstance(r, list) for n, r in enumerate(results) if n != 3), results
        assert ledger.size() == 5 * 5
        assert not ledger.find("acme/m3-"), "a record of the refused caller's batch was written"
        _verified(ledger)
    finally:
        ledger.close()
