"""Two replicas on one Lease, on the real control plane: only the holder reconciles; the leader is
killed mid-reconcile (a crash point right after an audit record, before its change) and the other
replica takes over within 15 s, finishes the tenant, and the ledger holds one record per change:
nothing done twice, no duplicate record."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from privatevault.leader import LEASE
from privatevault.ledger import verify_chain
from privatevault.ledger.schema import Database
from privatevault.ledger.store import Ledger
from tests import builders
from tests.support import Kubectl, Operator, eventually, wait_for_condition

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]

ELECTION = {"PRIVATEVAULT_LEADER_ELECTION": "true", "PRIVATEVAULT_LEASE_SECONDS": "10"}


def holder(kubectl: Kubectl, namespace: str) -> str | None:
    found = kubectl.get("lease", LEASE, namespace)
    return None if found is None else (found.get("spec") or {}).get("holderIdentity")


def tenant_records(database: Database, name: str) -> list[dict[str, Any]]:
    ledger = Ledger(database.operator_dsn)
    try:
        assert verify_chain(ledger.records()) is None
        return [json.loads(r.canonical) for r in ledger.records(tenant=name)]
    finally:
        ledger.close()


def test_the_follower_takes_over_a_killed_leader_within_15_seconds(
    kubectl: Kubectl, operator_dsn_file: Path, database: Database, tmp_path: Path
) -> None:
    leader = Operator(
        tmp_path, kubectl.kubeconfig, operator_dsn_file, PRIVATEVAULT_FAILPOINTS="after-audit=5", **ELECTION
    ).start()
    namespace = leader.namespace
    first = eventually(lambda: holder(kubectl, namespace), what="the first replica to lead")
    follower = Operator(
        tmp_path, kubectl.kubeconfig, operator_dsn_file, PRIVATEVAULT_NAMESPACE=namespace, **ELECTION
    ).start()
    try:
        eventually(lambda: "waiting to lead" in follower.log(), what="the second replica to wait")
        assert holder(kubectl, namespace) == first
        kubectl.apply(builders.tenant("e2e-failover", namespaces=["e2e-failover-a", "e2e-failover-b"]))

        eventually(lambda: not leader.process.is_running, what="the leader to die at the crash point")
        died = time.monotonic()
        taken = eventually(
            lambda: (h := holder(kubectl, namespace)) not in (None, first) and h, timeout=30, what="a new leader"
        )
        takeover = time.monotonic() - died
        assert takeover <= 15, f"the follower took over after {takeover:.1f} s"
        assert taken != first and "leading as" in follower.log()
        print(f"takeover after the leader died: {takeover:.1f} s")

        obj = wait_for_condition(kubectl, "tenant", "e2e-failover", "Ready", current=True, timeout=60)
        assert sorted(obj["status"]["namespaces"]) == ["e2e-failover-a", "e2e-failover-b"]
        recorded = [r["action"] for r in tenant_records(database, "e2e-failover")]
        per_namespace = ["create-resourcequota", "create-limitrange", "create-networkpolicy", "create-rolebinding"]
        assert sorted(recorded) == sorted(
            ["assign-mcs-level", "provision-kek"] + ["create-namespace"] * 2 + per_namespace * 2
        )
    finally:
        kubectl.run("delete", "tenant", "e2e-failover", "--wait=false")
        leader.stop()
        follower.stop()
