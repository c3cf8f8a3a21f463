"""Ledger benchmarks on a real PostgreSQL 15 started for the run: append latency and throughput,
full-chain verification throughput."""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from pathlib import Path

from privatevault.ledger import Event, Ledger, ResourceRef, verify_chain
from privatevault.ledger.schema import bootstrap
from privatevault.testbench import Postgres

from .timing import latencies_ms, percentile

_keys = itertools.count()


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


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="pv-bench-") as workdir:
        postgres = Postgres(Path(workdir))
        postgres.start()
        try:
            database = bootstrap(postgres.superuser_dsn)
            ledger = Ledger(database.operator_dsn)
            for _ in range(200):  # warm the connection and the caches
                ledger.append(_event())
            single = latencies_ms(lambda: ledger.append(_event()), count=2000)
            records = list(ledger.records())
            started = time.perf_counter()
            rounds = 5
            for _ in range(rounds):
                assert verify_chain(records) is None
            verify_rate = rounds * len(records) / (time.perf_counter() - started)
            ledger.close()
        finally:
            postgres.stop()
    return {
        "ledger.append.single.p50_ms": statistics.median(single),
        "ledger.append.single.p99_ms": percentile(single, 99),
        "ledger.append.single.events_per_s": 1000 / statistics.mean(single),
        "ledger.verify.chain.events_per_s": verify_rate,
    }
