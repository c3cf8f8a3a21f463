"""Tenant onboarding at scale on the real control plane and PostgreSQL: the time for 200 Tenants
applied at once to all become Ready, and the operator's peak memory (VmHWM) while doing it."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from privatevault.ledger.schema import bootstrap
from privatevault.testbench import Bench
from privatevault.testbench.secretfile import write_secret
from tests import builders
from tests.support import REPO, Kubectl, Operator

TENANTS = int(os.environ.get("PV_BENCH_TENANTS", "200"))


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="pv-bench-tenants-") as workdir, Bench(Path(workdir)) as bench:
        kubectl = Kubectl(bench.control_plane.kubectl, bench.control_plane.kubeconfig)
        kubectl.run("apply", "--server-side", "-f", str(REPO / "crds"))
        kubectl.run("wait", "--for=condition=Established", "crd", "-l", "app.kubernetes.io/part-of=privatevault")
        database = bootstrap(bench.postgres.superuser_dsn)
        dsn_file = write_secret(Path(workdir) / "operator.dsn", database.operator_dsn)
        operator = Operator(Path(workdir), kubectl.kubeconfig, dsn_file, PRIVATEVAULT_DRIFT_INTERVAL="3600").start()
        try:
            time.sleep(3)  # start-up: login, KMS and signing keys, first checkpoint
            items = [
                builders.tenant(
                    f"bench-{i:03d}", owners=[builders.group(f"team-{i}")], quota={"pods": 20}, labels={"bench": "yes"}
                )
                for i in range(TENANTS)
            ]
            started = time.perf_counter()
            kubectl.apply({"apiVersion": "v1", "kind": "List", "items": items})
            while True:
                listed = json.loads(kubectl.run("get", "tenants", "-l", "bench=yes", "-o", "json").stdout)["items"]
                ready = sum(
                    any(
                        c["type"] == "Ready" and c["status"] == "True"
                        for c in t.get("status", {}).get("conditions", [])
                    )
                    for t in listed
                )
                if ready == TENANTS:
                    break
                if time.perf_counter() - started > 1800:
                    raise RuntimeError(f"only {ready}/{TENANTS} tenants Ready after 30 minutes")
                time.sleep(1)
            elapsed = time.perf_counter() - started
            peak = _peak_rss_mb(operator.process.pid)
        finally:
            operator.stop()
    return {
        "tenants.count": TENANTS,
        "tenants.all_ready_s": elapsed,
        "tenants.per_tenant_ms": 1000 * elapsed / TENANTS,
        "tenants.operator_peak_rss_mb": peak,
    }
