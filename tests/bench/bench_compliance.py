"""Cost of the compliance controller: 20 frameworks of 20 controls over 1,000 tenants, from the caches.

The same frameworks as ``bench_compliance_core`` (every check of the library), but through the
controller: facts gathered by ``compliance_facts`` from a real ``cache.ClusterView`` over kopf-like
indexes (each tenant with 3 namespaces, their quota, network policy and owners' binding, 10
Deployments), records appended to an in-memory ledger, Reports to an in-memory writer.

- ``compliance_controller_full_20x1000_s``: the first reconcile of the 20 frameworks (every
  tenant evaluated, 20,000 records written); design target ≤ 30 s;
- ``compliance_controller_idle_full_20x1000_s``: the next full evaluation two hours later, nothing
  changed (no record, no Report written);
- ``compliance_controller_one_tenant_20_frameworks_ms``: one tenant changed and re-evaluated under
  the 20 frameworks (``tenant_changed``: facts, evaluation, one record per framework); design
  target ≤ 1 s;
- ``compliance_controller_memory_growth_mb``: the process's resident memory after the idle
  evaluation less before the first one (the caches of 1,000 tenants already built): what the
  controller keeps for 20,000 (framework, tenant) pairs, plus the fakes' 20,000 records and
  Reports, so an upper bound; ``compliance_controller_peak_rss_mb``: the process's peak.

    python -m tests.bench.bench_compliance      # prints the figures as JSON
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from privatevault.api.v1alpha1 import ComplianceFramework
from privatevault.cache import CACHED, ClusterView, index_keys
from privatevault.compliance.checks import CHECK_NAMES
from privatevault.compliance_facts import Facts, Gates
from privatevault.ledger import GENESIS, Event, Record
from privatevault.ledger.integrity import Integrity
from privatevault.reconcile import complianceframework as decisions
from privatevault.reconcile.complianceframework import CompliancePorts, Memory
from tests import builders
from tests.bench import procfs
from tests.bench.bench_compliance_core import CONTROLS, FRAMEWORKS, PARAMS, TENANTS
from tests.unit.fakes import FakeReports

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class Ledger:
    """Appends by idempotency key in a dict (the real one is PostgreSQL's unique index)."""

    def __init__(self) -> None:
        self.by_key: dict[str, Record] = {}

    def append(self, event: Event) -> Record:
        found = self.by_key.get(event.idempotency_key)
        if found is None:
            body = json.dumps(event.body(seq=len(self.by_key) + 1, time=NOW), default=str).encode()
            found = Record(len(self.by_key) + 1, body, GENESIS, GENESIS, event.idempotency_key)
            self.by_key[event.idempotency_key] = found
        return found

    def find(self, prefix: str, *, limit: int = 1000) -> list[Record]:
        return [r for k, r in self.by_key.items() if k.startswith(prefix)][-limit:]


class _Index:
    def __init__(self) -> None:
        self.data: defaultdict[tuple[str, ...], dict[str, Any]] = defaultdict(dict)

    def get(self, key: tuple[str, ...]) -> list[Any] | None:
        found = self.data.get(key)
        return list(found.values()) if found else None


def cluster(tenants: list[dict[str, Any]]) -> ClusterView:
    indexes = {c.index: _Index() for c in CACHED}
    by_kind = {c.kind: c.index for c in CACHED}

    def add(obj: dict[str, Any]) -> None:
        index = indexes[by_kind[obj["kind"]]]
        for key, entry in index_keys(obj, obj["kind"]).items():
            index.data[key][obj["metadata"]["name"] + "/" + (obj["metadata"].get("namespace") or "")] = entry

    for body in tenants:
        name = body["metadata"]["name"]
        meta = {"labels": {"privatevault.io/tenant": name, "app.kubernetes.io/managed-by": "privatevault"}}
        add(body)
        for ns in body["status"]["namespaces"]:
            add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, **meta}})
            add(
                {
                    "kind": "ResourceQuota",
                    "metadata": {"name": "privatevault-quota", "namespace": ns, **meta},
                    "spec": {"hard": {"pods": "10"}},
                }
            )
            add(
                {
                    "kind": "NetworkPolicy",
                    "metadata": {"name": "privatevault-isolation", "namespace": ns, **meta},
                    "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
                }
            )
            add({"kind": "RoleBinding", "metadata": {"name": "privatevault-owners", "namespace": ns, **meta}})
        for w in range(10):
            add(dict(builders.deployment(f"app-{w}", namespace=body["status"]["namespaces"][0])))
    view = ClusterView(None)  # type: ignore[arg-type]  # never reaches the API server: every kind is cached
    view.bind(indexes)
    return view


def tenant(i: int) -> dict[str, Any]:
    name = f"tenant-{i}"
    return dict(
        builders.tenant(
            name,
            uid=f"uid-{i}",
            deletion_policy="CryptoShred",
            status={
                "namespaces": [f"{name}-{n}" for n in range(3)],
                "mcsLevel": f"s0:c{i % 1000},c{(i + 1) % 1000 + 1000}",
                "kms": {"provider": "vault", "keyName": name, "latestVersion": 1, "created": "2026-11-01T00:00:00Z"},
            },
        )
    )


def framework(f: int) -> dict[str, Any]:
    names = list(CHECK_NAMES)
    controls = [
        builders.control(
            f"F{f}-C{c}",
            "control",
            checks=[
                builders.compliance_check(names[k], **PARAMS.get(names[k], {}))
                for k in ((f + c) % len(names), (f + 3 * c + 1) % len(names))
            ],
        )
        for c in range(CONTROLS)
    ]
    return dict(builders.compliance_framework(f"fw-{f}", uid=f"fw-uid-{f}", generation=1, controls=controls))


def run() -> dict[str, float]:
    tenants = [tenant(i) for i in range(TENANTS)]
    view = cluster(tenants)
    ledger = Ledger()
    gates = Gates(ledger)
    ports = CompliancePorts(
        cluster=view,
        ledger=ledger,
        snapshot=Facts(view, gates, Integrity(checkpoint_size=1, verified_at=NOW), {}).snapshot,
        reports=FakeReports(),
        policies=gates.policy,
    )
    memory = Memory()
    bodies = [(ComplianceFramework.model_validate(b), b) for b in (framework(f) for f in range(FRAMEWORKS))]

    def full(now: datetime) -> tuple[float, float]:
        """Wall-clock and CPU seconds (the CPU figure holds on a machine others load)."""
        start, cpu = time.perf_counter(), time.process_time()
        for cf, body in bodies:
            decisions.reconcile(cf, body, tenants, ports=ports, memory=memory, actor="bench", now=now)
        return time.perf_counter() - start, time.process_time() - cpu

    before = procfs.rss_mb(os.getpid())
    first, first_cpu = full(NOW)
    written = len(ledger.by_key)
    idle, idle_cpu = full(NOW + timedelta(hours=2))  # past the 1h interval: every tenant evaluated again
    assert len(ledger.by_key) == written, "an unchanged evaluation wrote records"
    growth = procfs.rss_mb(os.getpid()) - before
    one = []
    for run_ in range(5):
        changed = dict(tenants[0])
        changed["spec"] = {**changed["spec"], "deletionPolicy": "Retain" if run_ % 2 == 0 else "CryptoShred"}
        changed["metadata"] = {**changed["metadata"], "labels": {"privatevault.io/personal-data": "true"}}
        start = time.perf_counter()
        decisions.tenant_changed(changed, ports=ports, memory=memory, actor="bench", now=NOW + timedelta(hours=2))
        one.append(time.perf_counter() - start)
    return {
        "compliance_controller_full_20x1000_s": first,
        "compliance_controller_full_20x1000_cpu_s": first_cpu,
        "compliance_controller_idle_full_20x1000_s": idle,
        "compliance_controller_idle_full_20x1000_cpu_s": idle_cpu,
        "compliance_controller_one_tenant_20_frameworks_ms": 1000 * statistics.median(one),
        "compliance_controller_memory_growth_mb": growth,
        "compliance_controller_peak_rss_mb": procfs.peak_rss_mb(os.getpid()),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
