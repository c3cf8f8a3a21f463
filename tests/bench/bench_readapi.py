"""The read API under load on loopback: the real server code (``readapi.server.ReadApi``, TLS) over
a real PostgreSQL ledger of ``PV_BENCH_API_RECORDS`` records, in a process of its own (as the
operator would run it).

The closed loops (each connection sends its next request when the last is answered) are driven by
wrk (Debian's package, C: the load costs a fraction of what Python clients would on the same two
cores), with ``readapi.lua`` choosing the records. Before them, a first proof of every tile of the
tree is asked by aiohttp clients (the proofs read from PostgreSQL, ``cold``). The open loop (a
fixed offered rate whatever the answers do) is driven by aiohttp clients in this process.

The same wrk load is also run against an aiohttp application that answers every request with the
same bytes over the same TLS (``ceiling``): what aiohttp and TLS cost on this machine before any
work, the most any handler of an aiohttp application in one event loop can serve here; then
against two such processes sharing the port, one per core.

Token and access reviews are answered by a stub that allows everything: every caller after its
first request is served from the decision cache, which is the steady state of a reader; a cache
miss adds one TokenReview and one SubjectAccessReview round trip to the API server.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privatevault import servingcert
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
from .procfs import peak_rss_mb
from .timing import percentile

RECORDS = int(os.environ.get("PV_BENCH_API_RECORDS", "1000000"))
#: Concurrent clients, one run each (the latency floor, a moderate load, the target's 200).
CONCURRENCY = [int(n) for n in os.environ.get("PV_BENCH_API_CONCURRENCY", "1,16,200").split(",")]
#: Seconds of each closed-loop run.
SECONDS = float(os.environ.get("PV_BENCH_API_SECONDS", "10"))
#: Offered proof rates (requests/s) of the open-loop runs, each over ``OPEN_CONNECTIONS`` connections.
RATES = [int(n) for n in os.environ.get("PV_BENCH_API_RATES", "500,1000,2000").split(",") if n]
OPEN_CONNECTIONS = int(os.environ.get("PV_BENCH_API_OPEN_CONNECTIONS", "200"))
OPEN_SECONDS = float(os.environ.get("PV_BENCH_API_OPEN_SECONDS", "10"))
#: The issue's latency objective for a proof.
OBJECTIVE_MS = 20.0
TENANTS = 50  # as bench_ledger's events
#: Records between consecutive requests of a closed loop (a prime: every record in turn, tiles apart).
STEP = 7919
SCRIPT = Path(__file__).with_name("readapi.lua")


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


def _serve_fixed(port: int, body: bytes, state: str, ready: Any) -> None:
    """The ceiling: an aiohttp application answering every request with ``body``, over TLS made
    as the read API makes it (a certificate from ``servingcert``), nothing else."""

    async def answer(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def main() -> None:
        files = servingcert.ensure(Path(state), "127.0.0.1")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(files.cert, files.key)
        application = web.Application()
        application.add_routes([web.get("/api/v1/proofs/{seq}", answer)])
        runner = web.AppRunner(application, access_log=None)
        await runner.setup()
        # reuse_port: several of these processes may share the port (the kernel spreads connections).
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context, reuse_port=True).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def _wrk(base: str, view: str, size: int, connections: int) -> dict[str, float]:
    """One closed-loop run of wrk: requests, seconds, p50/p99/max in ms; refused answers fail the run."""
    wrk = shutil.which("wrk")
    assert wrk, "wrk is missing: `make setup` installs it (Debian package wrk)"
    command = [wrk, "-t1", f"-c{connections}", f"-d{SECONDS:g}s", "--timeout", "10s", "-s", str(SCRIPT), base]
    done = subprocess.run(
        [*command, "--", view, str(size), str(STEP)], capture_output=True, text=True, check=True, timeout=SECONDS + 60
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("WRK ")]
    assert lines, done.stdout + done.stderr
    summary: dict[str, float] = json.loads(lines[-1][4:])
    assert summary["non2xx"] == 0 and summary["socket_errors"] == 0, (view, connections, summary)
    return summary


def _start(target: Any, *args: Any) -> multiprocessing.process.BaseProcess:
    ready = multiprocessing.get_context("spawn").Event()
    process = multiprocessing.get_context("spawn").Process(target=target, args=(*args, ready), daemon=True)
    process.start()
    assert ready.wait(60), f"{target.__name__} did not start"
    return process


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _first_body(base: str, path: str) -> bytes:
    headers = {"Authorization": "Bearer bench-token-000"}
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session,
        session.get(base + path, headers=headers) as answer,
    ):
        assert answer.status == 200, answer.status
        return await answer.read()


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
            port = _free_port()
            server = _start(_serve, database.operator_dsn, port, note, workdir + "/state")
            base = f"https://127.0.0.1:{port}"
            # Cold: the first proof of every tile of the tree, each read from PostgreSQL.
            firsts = [f"/api/v1/proofs/{1 + k * 256}" for k in range((size + 255) // 256)]
            seconds, latencies = asyncio.run(_load(base, firsts, 16))
            figures["readapi.proof.cold_tiles.16_clients.requests_per_s"] = len(latencies) / seconds
            figures["readapi.proof.cold_tiles.16_clients.p50_ms"] = statistics.median(latencies)
            for clients in CONCURRENCY:
                for view, name in (("proofs", "proof"), ("pages", "audit_page_100")):
                    found = _wrk(base, view, size, clients)
                    figures[f"readapi.{name}.{clients}_clients.requests_per_s"] = found["requests"] / found["seconds"]
                    figures[f"readapi.{name}.{clients}_clients.p50_ms"] = found["p50_ms"]
                    figures[f"readapi.{name}.{clients}_clients.p99_ms"] = found["p99_ms"]
            figures |= _open_figures(base, size, STEP)
            figures["readapi.server.peak_rss_mb"] = peak_rss_mb(server.pid or 0)
            # The ceiling: the same load, on the same machine, on an application that only answers,
            # with a proof's own body (the same bytes on the wire).
            body = asyncio.run(_first_body(base, f"/api/v1/proofs/{size // 2}"))
            server.kill()
            server.join(10)
            server = None
            fixed_port = _free_port()
            fixed = _start(_serve_fixed, fixed_port, body, workdir + "/fixed")
            try:
                for clients in [n for n in CONCURRENCY if n > 1]:
                    found = _wrk(f"https://127.0.0.1:{fixed_port}", "fixed", size, clients)
                    rate = found["requests"] / found["seconds"]
                    figures[f"readapi.ceiling.{clients}_clients.requests_per_s"] = rate
                    figures[f"readapi.ceiling.{clients}_clients.p99_ms"] = found["p99_ms"]
                    figures[f"readapi.proof.{clients}_clients.share_of_ceiling"] = (
                        figures[f"readapi.proof.{clients}_clients.requests_per_s"] / rate
                    )
                # Two such processes, one per core: what serving from processes of its own would give here.
                second = _start(_serve_fixed, fixed_port, body, workdir + "/fixed")
                try:
                    found = _wrk(f"https://127.0.0.1:{fixed_port}", "fixed", size, max(CONCURRENCY))
                    key = f"readapi.ceiling.{max(CONCURRENCY)}_clients.2_processes"
                    figures[f"{key}.requests_per_s"] = found["requests"] / found["seconds"]
                    figures[f"{key}.p99_ms"] = found["p99_ms"]
                finally:
                    second.kill()
                    second.join(10)
            finally:
                fixed.kill()
                fixed.join(10)
            figures["readapi.loadavg_1min"] = os.getloadavg()[0]
        finally:
            if server is not None:
                server.kill()
                server.join(10)
            postgres.stop()
    return figures
