"""Ledger benchmarks on a real PostgreSQL 15 started for the run: single-event append latency,
batched append throughput, group commit under concurrent writers, full verification throughput,
inclusion proofs at 1,000,000 records and checkpoint signing."""

from __future__ import annotations

import itertools
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey

from privatevault.ledger import Event, ResourceRef
from privatevault.ledger.checkpoint import LocalSigner, sign_checkpoint
from privatevault.ledger.schema import bootstrap
from privatevault.ledger.store import Ledger
from privatevault.ledger.verify import verify
from privatevault.testbench import Postgres

from .timing import latencies_ms, percentile

_keys = itertools.count()
TARGET_RECORDS = int(os.environ.get("PV_BENCH_RECORDS", "1000000"))
BATCH = 1000


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


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="pv-bench-") as workdir:
        postgres = Postgres(Path(workdir))
        postgres.start()
        try:
            database = bootstrap(postgres.superuser_dsn)
            ledger = Ledger(database.operator_dsn)
            for _ in range(200):  # warm the connection and the caches
                ledger.append(_event())
            single = latencies_ms(lambda: ledger.append(_event()), count=2000)
            figures["ledger.append.single.p50_ms"] = statistics.median(single)
            figures["ledger.append.single.p99_ms"] = percentile(single, 99)
            figures["ledger.append.group_commit.16_threads.events_per_s"] = _group_commit(ledger, 16, 300)

            rates = []
            while ledger.size() < TARGET_RECORDS:
                batch = [_event() for _ in range(min(BATCH, TARGET_RECORDS - ledger.size()))]
                started = time.perf_counter()
                ledger.append_many(batch)
                rates.append(len(batch) / (time.perf_counter() - started))
            figures["ledger.append.batched_1000.events_per_s"] = statistics.median(rates)
            size = ledger.size()
            figures["ledger.records"] = size

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

            started = time.perf_counter()
            report = verify(ledger, verifiers=[s.verifier for s in signers])
            assert report.ok, report.problem
            figures["ledger.verify.full.events_per_s"] = size / (time.perf_counter() - started)
            ledger.close()
        finally:
            postgres.stop()
    return figures
