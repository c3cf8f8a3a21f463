"""Ledger benchmarks on a real PostgreSQL 15 started for the run: single-event append latency,
batched append throughput beside Tessera's in the same run, group commit under concurrent
writers, full verification throughput, inclusion proofs at 1,000,000 records and checkpoint
signing.

The batched append: one caller appending batches of 1,000 (the median per call, over the first
100,000 records), then 8 callers appending batches of 1,000 at once for the rest (records over
the wall time, the main figure, compared with Tessera's: its 64 writers keep adds in flight the
same way, and its figure is entries over the wall time too).

PostgreSQL runs durable here, as in production (``fsync``, ``synchronous_commit`` and
``full_page_writes`` on: every commit is flushed to disk), unlike the test bench; the settings
are read back from the server and printed beside the figures (``ledger.postgres.*``, 1 = on).
Tessera (``tests/bench/tessera.py``) appends the same number of 350-byte entries on its POSIX
driver, which fsyncs what it writes, with its conformance server's options; the ratio is ours
over its.
"""

from __future__ import annotations

import gc
import itertools
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey

from privatevault.ledger import Event, ResourceRef, appendrows, recompute
from privatevault.ledger.checkpoint import LocalSigner, sign_checkpoint
from privatevault.ledger.schema import bootstrap
from privatevault.ledger.store import Ledger
from privatevault.ledger.verify import verify
from privatevault.testbench import Postgres

from . import tessera
from .timing import latencies_ms, percentile

_keys = itertools.count()
TARGET_RECORDS = int(os.environ.get("PV_BENCH_RECORDS", "1000000"))
BATCH = 1000
#: Records the single caller appends first; callers appending at once write the rest.
SINGLE_CALLER_RECORDS = 100_000
#: Callers appending batches of BATCH at once for the main figure.
WRITERS = int(os.environ.get("PV_BENCH_LEDGER_WRITERS", "8"))
#: Entries Tessera appends (default: as many as the batched append wrote).
TESSERA_ENTRIES = os.environ.get("PV_BENCH_TESSERA_ENTRIES")


def _event() -> Event:
    n = next(_keys)
    return Event(
        tenant=f"tenant-{n % 50}",
        actor="privatevault-operator",
        action="update-resourcequota",
        resource=ResourceRef(kind="ResourceQuota", namespace=f"ns-{n % 50}", name="privatevault-quota"),
        outcome="intended",
        idempotency_key=f"bench/{n}",
        details={"digest": "sha256:" + f"{n:064x}"[-64:], "tenantGeneration": n},
    )


def _group_commit(ledger: Ledger, threads: int, each: int) -> float:
    def work() -> None:
        for _ in range(each):
            ledger.append(_event())

    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return threads * each / (time.perf_counter() - started)


def _writers(ledger: Ledger, writers: int, records: int) -> tuple[int, float]:
    """``writers`` threads appending batches of BATCH until ``records`` are written (their events
    made beforehand); the records written and the seconds from the first call to the last answer."""
    batches = [[_event() for _ in range(BATCH)] for _ in range(records // BATCH)]
    if records % BATCH:
        batches.append([_event() for _ in range(records % BATCH)])
    shares = [batches[n::writers] for n in range(writers)]
    gc.freeze()  # the events made here are not the writer's garbage: keep the collector off them

    def work(share: list[list[Event]]) -> None:
        for batch in share:
            ledger.append_many(batch)

    threads = [threading.Thread(target=work, args=(share,)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    gc.unfreeze()
    return sum(len(batch) for batch in batches), seconds


def _settings(dsn: str) -> dict[str, float]:
    """The server's durability settings, as it reports them (1 = on), printed with the figures."""
    with psycopg.connect(dsn) as conn:
        shown = {
            name: conn.execute(f"SHOW {name}").fetchone()
            for name in ("fsync", "synchronous_commit", "full_page_writes")
        }
    print("  PostgreSQL " + ", ".join(f"{name}={row[0] if row else '?'}" for name, row in shown.items()), flush=True)
    return {f"ledger.postgres.{name}": float(row is not None and row[0] == "on") for name, row in shown.items()}


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="pv-bench-") as workdir:
        postgres = Postgres(Path(workdir), durable=True)
        postgres.start()
        try:
            database = bootstrap(postgres.superuser_dsn)
            figures |= _settings(database.operator_dsn)
            ledger = Ledger(database.operator_dsn)
            for _ in range(200):  # warm the connection and the caches
                ledger.append(_event())
            single = latencies_ms(lambda: ledger.append(_event()), count=2000)
            figures["ledger.append.single.p50_ms"] = statistics.median(single)
            figures["ledger.append.single.p99_ms"] = percentile(single, 99)
            figures["ledger.append.group_commit.16_threads.events_per_s"] = _group_commit(ledger, 16, 300)

            # One caller, a batch at a time (each waits for its commit): the median per call,
            # over the first SINGLE_CALLER_RECORDS.
            rates = []
            while ledger.size() < SINGLE_CALLER_RECORDS:
                batch = [_event() for _ in range(BATCH)]
                started = time.perf_counter()
                ledger.append_many(batch)
                rates.append(len(batch) / (time.perf_counter() - started))
            figures["ledger.append.batched_1000.single_caller.median_events_per_s"] = statistics.median(rates)
            # Then WRITERS callers at once, as Tessera's 64 writers: the rest of the records over
            # the wall time from the first call to the last commit, as Tessera's figure is.
            appended, seconds = _writers(ledger, WRITERS, TARGET_RECORDS - ledger.size())
            figures[f"ledger.append.batched_1000.writers_{WRITERS}.events_per_s"] = appended / seconds
            figures["ledger.append.compiled"] = float(appendrows.ENGINE == "c")
            figures["ledger.append.compiled_send"] = float(appendrows.send is not None)
            peer = tessera.append(int(TESSERA_ENTRIES or ledger.size()), workdir=Path(workdir))
            figures["tessera.append.posix.entries"] = peer["entries"]
            figures["tessera.append.posix.integrated_per_s"] = peer["integrated_per_second"]
            figures["tessera.append.posix.checkpointed_per_s"] = peer["checkpoint_per_second"]
            figures["ledger.append.vs_tessera.ratio"] = (
                figures[f"ledger.append.batched_1000.writers_{WRITERS}.events_per_s"] / peer["integrated_per_second"]
            )
            size = ledger.size()
            figures["ledger.records"] = size
            # A live ledger is vacuumed by autovacuum; a table bulk-written a minute ago is not yet,
            # and the first reads of every page would set its hint bits (30 % slower verification).
            with psycopg.connect(database.owner_dsn, autocommit=True) as conn:
                conn.execute("VACUUM (ANALYZE) audit_records, merkle_nodes")

            proof_ms = latencies_ms(lambda: ledger.inclusion_proof(1 + next(_keys) * 7919 % size, size), count=2000)
            figures["ledger.prove.inclusion.p50_ms"] = statistics.median(proof_ms)
            figures["ledger.prove.inclusion.p99_ms"] = percentile(proof_ms, 99)

            root = ledger.root(size)
            signers = [
                LocalSigner("bench", Ed25519PrivateKey.generate()),
                LocalSigner("bench", MLDSA65PrivateKey.generate()),
            ]
            signing = latencies_ms(lambda: sign_checkpoint("bench", size, root, signers), count=200)
            figures["ledger.checkpoint.sign_ed25519_mldsa65.p50_ms"] = statistics.median(signing)

            passes = []
            for _ in range(3):
                started = time.perf_counter()
                report = verify(ledger, verifiers=[s.verifier for s in signers])
                assert report.ok, report.problem
                passes.append(size / (time.perf_counter() - started))
            figures["ledger.verify.full.events_per_s"] = statistics.median(passes)
            figures["ledger.verify.compiled"] = float(recompute.ENGINE == "c")
            ledger.close()
        finally:
            postgres.stop()
    return figures
