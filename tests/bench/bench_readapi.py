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
#: Offered proof rates (requests/s) of the open-loop runs, each over ``OPEN_CONNECTIONS`` connections.
RATES = [int(n) for n in os.environ.get("PV_BENCH_API_RATES", "250,500,750,1000").split(",") if n]
OPEN_CONNECTIONS = int(os.environ.get("PV_BENCH_API_OPEN_CONNECTIONS", "200"))
OPEN_SECONDS = float(os.environ.get("PV_BENCH_API_OPEN_SECONDS", "10"))
#: The issue's latency objective for a proof.
OBJECTIVE_MS = 20.0
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


async def _open_loop(base: str, paths: list[str], rate: float, connections: int) -> tuple[float, list[float]]:
    """Requests sent at ``rate`` on schedule whatever the answers do (open loop), over ``connections``.

    Each latency runs from when its request was due, not when it was sent, so a server falling
    behind is charged for the queue it builds (no coordinated omission), and up to ``connections``
    requests are outstanding at once (more wait for a connection, and that wait counts too).
    """
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=connections, ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(path: str, n: int, due: float) -> None:
            headers = {"Authorization": f"Bearer bench-token-{n % connections:03d}"}
            async with session.get(base + path, headers=headers) as answer:
                await answer.read()
                assert answer.status == 200, (answer.status, path)
            latencies.append((time.perf_counter() - due) * 1000)

        # Warm: every connection open and every caller's decision cached, as in the closed loop.
        await asyncio.gather(*(one(paths[0], n, time.perf_counter()) for n in range(connections)))
        latencies.clear()
        tasks = []
        started = time.perf_counter()
        for i, path in enumerate(paths):
            due = started + i / rate
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(one(path, i, due)))
        await asyncio.gather(*tasks)
        return time.perf_counter() - started, latencies


def _open_figures(base: str, size: int, step: int) -> dict[str, float]:
    """p99 of a proof at each offered rate over 200 connections; the highest rate within the objective."""
    figures: dict[str, float] = {}
    best = 0.0
    for rate in RATES:
        count = int(rate * OPEN_SECONDS)
        proofs = [f"/api/v1/proofs/{1 + (i * step + 13) % size}" for i in range(count)]
        seconds, latencies = asyncio.run(_open_loop(base, proofs, rate, OPEN_CONNECTIONS))
        key = f"readapi.proof.open_{OPEN_CONNECTIONS}_connections.{rate}_per_s"
        figures[f"{key}.achieved_per_s"] = len(latencies) / seconds
        figures[f"{key}.p50_ms"] = statistics.median(latencies)
        figures[f"{key}.p99_ms"] = p99 = percentile(latencies, 99)
        if p99 <= OBJECTIVE_MS:
            best = max(best, float(rate))
    figures[f"readapi.proof.open_{OPEN_CONNECTIONS}_connections.max_rate_within_20ms_p99"] = best
    return figures


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
            figures |= _open_figures(base, size, step)
            figures["readapi.loadavg_1min"] = os.getloadavg()[0]
        finally:
            if server is not None:
                server.kill()
                server.join(10)
            postgres.stop()
    return figures
