"""The read API under load: concurrent aiohttp clients on loopback against the real server code
(``readapi.server.ReadApi``, TLS) over a real PostgreSQL ledger of ``PV_BENCH_API_RECORDS`` records.

The server runs in a process of its own (as the operator would), the clients in this one. Token
and access reviews are answered by a stub that allows everything: every caller after its first
request is served from the decision cache, which is the steady state of a reader; a cache miss
adds one TokenReview and one SubjectAccessReview round trip to the API server.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import ssl
import statistics
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privatevault.app import App
from privatevault.database import open_pool
from privatevault.ledger.checkpoint import LocalSigner, sign_checkpoint
from privatevault.ledger.integrity import Integrity
from privatevault.ledger.schema import bootstrap
from privatevault.ledger.store import Ledger
from privatevault.metrics import OperatorMetrics
from privatevault.readapi.authz import Authorizer
from privatevault.readapi.server import ReadApi
from privatevault.settings import ApiSettings, Settings
from privatevault.testbench import Postgres

from .bench_ledger import _event as event  # the same records (50 tenants) as the ledger benchmark
from .timing import percentile

RECORDS = int(os.environ.get("PV_BENCH_API_RECORDS", "1000000"))
#: Concurrent clients, one run each (the latency floor, a moderate load, the target's 200).
CONCURRENCY = [int(n) for n in os.environ.get("PV_BENCH_API_CONCURRENCY", "1,16,200").split(",")]
REQUESTS = int(os.environ.get("PV_BENCH_API_REQUESTS", "20000"))
TENANTS = 50  # as bench_ledger's events


class _Allow:
    def review_token(self, token: str) -> Mapping[str, Any]:
        return {"authenticated": True, "user": {"username": f"system:serviceaccount:bench:{token[-3:]}"}}

    def review_access(self, spec: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"allowed": True}


def _serve(dsn: str, port: int, note: str, state: str, ready: Any) -> None:
    settings = Settings(
        ledger_dsn=dsn, namespace="bench", state_dir=Path(state), api=ApiSettings(addr="127.0.0.1", port=port)
    )
    pool = open_pool(dsn, max_size=8)
    configmap = {"data": {"checkpoint": note}}
    app = SimpleNamespace(
        settings=settings,
        pool=pool,
        ledger=Ledger(pool=pool),
        cluster=SimpleNamespace(live=SimpleNamespace(get=lambda *_args, **_kw: configmap)),
        integrity=Integrity(),
        metrics=OperatorMetrics(),
    )

    async def main() -> None:
        api = ReadApi.of(cast(App, app))
        api.authorizer = Authorizer(_Allow(), api.authorizer.run)
        api.started = True
        await api.start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


async def _load(base: str, paths: list[str], concurrency: int) -> tuple[float, list[float]]:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    latencies: list[float] = []
    queue = iter(paths)
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(n: int) -> None:
            headers = {"Authorization": f"Bearer bench-token-{n:03d}"}
            for path in queue:
                started = time.perf_counter()
                async with session.get(base + path, headers=headers) as answer:
                    await answer.read()
                    assert answer.status == 200, (answer.status, path)
                latencies.append((time.perf_counter() - started) * 1000)

        # Warm: one request per client (TLS handshakes and cache fills are not the steady state).
        warm = iter([paths[0]] * concurrency)
        queue, rest = warm, queue
        await asyncio.gather(*(client(n) for n in range(concurrency)))
        latencies.clear()
        queue = rest
        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(concurrency)))
        return time.perf_counter() - started, latencies


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="pv-bench-api-") as workdir:
        postgres = Postgres(Path(workdir))
        postgres.start()
        server = None
        try:
            database = bootstrap(postgres.superuser_dsn)
            ledger = Ledger(database.operator_dsn)
            started = time.perf_counter()
            while (size := ledger.size()) < RECORDS:
                ledger.append_many([event() for _ in range(min(5000, RECORDS - size))])
            figures["readapi.records"] = size = ledger.size()
            figures["readapi.fill.records_per_s"] = size / (time.perf_counter() - started)
            root = ledger.root(size)
            note = sign_checkpoint(
                "privatevault.io/ledger",
                size,
                root,
                [LocalSigner("privatevault.io/ledger", Ed25519PrivateKey.generate())],
            ).decode()
            ledger.close()
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            ready = multiprocessing.get_context("spawn").Event()
            server = multiprocessing.get_context("spawn").Process(
                target=_serve, args=(database.operator_dsn, port, note, workdir + "/state", ready), daemon=True
            )
            server.start()
            assert ready.wait(60), "the read API did not start"
            base = f"https://127.0.0.1:{port}"
            step = 7919
            for clients in CONCURRENCY:
                count = REQUESTS if clients > 1 else REQUESTS // 10
                proofs = [f"/api/v1/proofs/{1 + (i * step) % size}" for i in range(count)]
                seconds, latencies = asyncio.run(_load(base, proofs, clients))
                figures[f"readapi.proof.{clients}_clients.requests_per_s"] = len(latencies) / seconds
                figures[f"readapi.proof.{clients}_clients.p50_ms"] = statistics.median(latencies)
                figures[f"readapi.proof.{clients}_clients.p99_ms"] = percentile(latencies, 99)
                pages = [
                    f"/api/v1/audit?tenant=tenant-{i % TENANTS}&limit=100&seqFrom={1 + (i * step) % size}"
                    for i in range(count // 4)
                ]
                seconds, latencies = asyncio.run(_load(base, pages, clients))
                figures[f"readapi.audit_page_100.{clients}_clients.requests_per_s"] = len(latencies) / seconds
                figures[f"readapi.audit_page_100.{clients}_clients.p50_ms"] = statistics.median(latencies)
                figures[f"readapi.audit_page_100.{clients}_clients.p99_ms"] = percentile(latencies, 99)
            figures["readapi.loadavg_1min"] = os.getloadavg()[0]
        finally:
            if server is not None:
                server.kill()
                server.join(10)
            postgres.stop()
    return figures
