"""Compliance end to end on the real control plane, the operator as a real process and the ledger
in the real PostgreSQL: a framework scores its tenants in its status, in OpenReports Reports and
in the metrics; a tenant fixed turns its failing control passing, and the transition is a
compliance-state record; an exception waits for its quorum (AwaitingQuorum, n/m), applies once
two signed Approvals exist and stops applying when it expires, the score following each step; an
unknown check is refused by the API server and bad params stall the framework; a restarted
operator writes no new compliance record."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from privatevault.ledger.schema import Database
from privatevault.ledger.store import Ledger
from privatevault.testbench.ports import free_port
from tests import builders
from tests.quorum_keys import ApproverKeys, approver, signed_approval
from tests.support import REPO, Kubectl, Operator, condition, eventually, wait_for_condition

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds", "openreports")]

OPENREPORTS_CRD = REPO / "tests" / "fixtures" / "openreports" / "openreports.io_reports.yaml"
PERSONAL = "privatevault.io/personal-data"


@pytest.fixture(scope="module")
def openreports(kubectl: Kubectl) -> None:
    kubectl.run("apply", "--server-side", "-f", str(OPENREPORTS_CRD))
    kubectl.run("wait", "--for=condition=Established", "--timeout=60s", "crd", "reports.openreports.io")


class Running:
    """The operator under test, restartable with the same namespace (its keys) and ledger."""

    def __init__(self, kubectl: Kubectl, dsn_file: Path, workdir: Path) -> None:
        self.kubectl, self.dsn_file, self.workdir = kubectl, dsn_file, workdir
        self.metrics_port = free_port()
        self.namespace = f"pv-system-{uuid.uuid4().hex[:8]}"
        self.operator = self._start()

    def _start(self) -> Operator:
        return Operator(
            self.workdir,
            self.kubectl.kubeconfig,
            self.dsn_file,
            PRIVATEVAULT_NAMESPACE=self.namespace,
            PRIVATEVAULT_METRICS_PORT=str(self.metrics_port),
            PRIVATEVAULT_METRICS_ADDR="127.0.0.1",
        ).start()

    def restart(self) -> None:
        self.operator.stop()
        self.operator = self._start()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as answer:
            return str(answer.read().decode())


@pytest.fixture
def running(kubectl: Kubectl, operator_dsn_file: Path, tmp_path: Path) -> Iterator[Running]:
    started = Running(kubectl, operator_dsn_file, tmp_path)
    yield started
    started.operator.stop()


def records(database: Database, uid: str) -> list[dict[str, Any]]:
    ledger = Ledger(database.operator_dsn)
    try:
        return [json.loads(r.canonical) for r in ledger.find(f"complianceframework/{uid}/compliance-state/")]
    finally:
        ledger.close()


def framework(name: str, selector: dict[str, str], **options: Any) -> dict[str, Any]:
    controls = [
        builders.control(
            "residency",
            "Data stays in the EU",
            severity="High",
            checks=[builders.compliance_check("data-residency", regions=["eu-west-1"])],
        ),
        builders.control(
            "personal-data",
            "Personal data can be crypto-shredded",
            severity="Critical",
            checks=[builders.compliance_check("personal-data-cryptoshred")],
        ),
        builders.control("isolation", "Default deny", checks=[builders.compliance_check("network-default-deny")]),
    ]
    return dict(
        builders.compliance_framework(
            name, tenant_selector={"matchLabels": selector}, interval="1m", controls=controls, **options
        )
    )


def status_of(kubectl: Kubectl, name: str, check: Any, what: str, timeout: float = 90) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        obj = kubectl.get("complianceframework", name)
        status = (obj or {}).get("status") or {}
        return status if check(status) else None

    result: dict[str, Any] = eventually(
        found, timeout=timeout, what=lambda: f"{name}: {what} (last: {kubectl.get('complianceframework', name)})"
    )
    return result


def test_a_framework_scores_its_tenants_reports_them_and_records_each_transition(
    kubectl: Kubectl, running: Running, database: Database
) -> None:
    suffix = uuid.uuid4().hex[:6]
    selector = {"compliance-e2e": suffix}
    acme, globex, name = f"acme-{suffix}", f"globex-{suffix}", f"soc2-{suffix}"
    kubectl.apply(builders.tenant(acme, labels=selector, deletion_policy="CryptoShred"))
    # Personal data kept under Retain: its key would survive the tenant's deletion.
    kubectl.apply(builders.tenant(globex, labels={**selector, PERSONAL: "true"}))
    kubectl.apply(builders.tenant(f"other-{suffix}", labels={"compliance-e2e": "other"}))
    for tenant in (acme, globex):
        wait_for_condition(kubectl, "tenant", tenant, "Ready", current=True)
    kubectl.apply(framework(name, selector))

    obj = wait_for_condition(kubectl, "complianceframework", name, "Ready", current=True)
    status = status_of(kubectl, name, lambda s: s.get("tenants") == 2 and s["summary"]["pass"] == 4, "4 passing")
    # acme passes what applies (no personal data); globex fails personal-data (Critical, 8 of 14).
    assert status["summary"] == {"pass": 4, "fail": 1, "unknown": 0, "notApplicable": 1, "excepted": 0}
    assert status["score"] == 60  # pooled: (6 + 6) of (6 + 14)
    assert status["lowest"][0]["tenant"] == globex and status["lowest"][0]["failing"] == ["personal-data"]
    assert condition(obj, "Ready")["message"].endswith("1 failing control")  # type: ignore[index]
    uid = obj["metadata"]["uid"]
    first = records(database, uid)
    assert sorted(r["tenant"] for r in first) == [acme, globex]

    # The OpenReports Report in each tenant's first namespace, one result per control.
    report = eventually(
        lambda: kubectl.get("reports.openreports.io", f"privatevault-{name}", namespace=globex),
        what="the Report of globex",
    )
    results = {r["rule"]: (r["result"], r["severity"]) for r in report["results"]}
    assert results == {
        "residency": ("pass", "high"),
        "personal-data": ("fail", "critical"),
        "isolation": ("pass", "medium"),
    }
    assert report["source"] == "privatevault" and report["scope"]["name"] == globex
    assert report["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]  # collected with it

    # The metrics, per tenant and per framework.
    text = running.metrics()
    assert f'privatevault_compliance_score{{framework="{name}",tenant="{globex}"}}' in text
    assert f'privatevault_compliance_failing_controls{{framework="{name}",tenant="{globex}"}} 1.0' in text
    assert f'privatevault_compliance_framework_score{{framework="{name}"}}' in text

    # Fixed: globex's key is now shredded with it. The transition is one record.
    kubectl.apply(builders.tenant(globex, labels={**selector, PERSONAL: "true"}, deletion_policy="CryptoShred"))
    status_of(kubectl, name, lambda s: s["summary"]["fail"] == 0 and s.get("score") == 100, "every control passing")
    transitions = [r for r in records(database, uid) if r["tenant"] == globex]
    assert len(transitions) == 2
    details = transitions[-1]["details"]
    assert [(c["control"], c["from"], c["to"]) for c in details["changed"]] == [("personal-data", "fail", "pass")]
    assert details["previous"] is not None and details["score"] == 100
    fixed = eventually(
        lambda: (
            (r := kubectl.get("reports.openreports.io", f"privatevault-{name}", namespace=globex))
            and {x["rule"]: x["result"] for x in r["results"]}["personal-data"] == "pass"
            and r
        ),
        what="the Report of globex passing",
    )
    assert fixed["summary"]["fail"] == 0

    # A restart rebuilds from the ledger: nothing new is written, no record and no Report.
    before = records(database, uid)
    report_version = fixed["metadata"]["resourceVersion"]
    running.restart()
    eventually(
        lambda: "compliance evaluated" in running.operator.log(), timeout=90, what="the restarted operator's evaluation"
    )
    assert records(database, uid) == before
    again = kubectl.get("reports.openreports.io", f"privatevault-{name}", namespace=globex)
    assert again is not None and again["metadata"]["resourceVersion"] == report_version

    # A deleted framework takes its Reports and its series with it.
    kubectl.run("delete", "complianceframework", name)
    eventually(
        lambda: kubectl.get("reports.openreports.io", f"privatevault-{name}", namespace=acme) is None,
        what="the Report deleted with its framework",
    )
    eventually(lambda: f'framework="{name}"' not in running.metrics(), what="the framework's series gone")


def test_an_exception_waits_for_its_quorum_applies_then_expires(
    kubectl: Kubectl, running: Running, database: Database
) -> None:
    suffix = uuid.uuid4().hex[:6]
    selector = {"compliance-e2e": suffix}
    tenant, name, qp = f"initech-{suffix}", f"iso-{suffix}", f"compliance-{suffix}"
    people = {n: ApproverKeys.generate(ml_dsa65=False) for n in ("alice", "bob")}
    kubectl.apply(
        builders.quorum_policy(
            qp,
            approvers=[approver(n, keys, roles=["security"]) for n, keys in people.items()],
            # Self-approval allowed: with no admission webhook the requester is unknown (one more).
            rules=[builders.rule("AddComplianceException", min_approvals=2, allow_self_approval=True)],
        )
    )
    wait_for_condition(kubectl, "quorumpolicy", qp, "Ready", current=True)
    kubectl.apply(builders.tenant(tenant, region="us-east-1", labels=selector, deletion_policy="CryptoShred"))
    wait_for_condition(kubectl, "tenant", tenant, "Ready", current=True)

    # Bad input first: an unknown check is refused by the API server, bad params stall.
    unknown = framework(f"bad-{suffix}", selector)
    unknown["spec"]["controls"][0]["checks"][0]["name"] = "moon-phase"
    refused = kubectl.apply(unknown, check=False)
    assert refused.returncode != 0 and "moon-phase" in refused.stderr
    bad = framework(f"bad-{suffix}", selector)
    bad["spec"]["controls"][0]["checks"][0]["params"] = {"regions": ["eu-west-1"], "region": "x"}
    kubectl.apply(bad)
    stalled = wait_for_condition(kubectl, "complianceframework", f"bad-{suffix}", "Stalled", current=True)
    assert condition(stalled, "Stalled")["reason"] == "InvalidCheckParams"  # type: ignore[index]
    assert "residency" in condition(stalled, "Stalled")["message"]  # type: ignore[index]

    expires = (datetime.now(UTC) + timedelta(seconds=50)).strftime("%Y-%m-%dT%H:%M:%SZ")
    exception = {"control": "residency", "tenants": [tenant], "reason": "moving to eu-west-1", "expires": expires}
    kubectl.apply(framework(name, selector, quorum_policy_ref=qp, exceptions=[exception]))
    held = status_of(
        kubectl, name, lambda s: s.get("pending") and s.get("score") is not None, "the exception awaiting quorum"
    )
    [pending] = held["pending"]
    assert pending["action"] == "AddComplianceException" and pending["approvals"] == "0/2"
    assert pending["signWith"] == f"pvctl approvals create ComplianceFramework/{name} --action AddComplianceException"
    assert held["exceptions"][0]["state"] == "AwaitingQuorum" and "0/2" in held["exceptions"][0]["message"]
    waiting = condition(kubectl.get("complianceframework", name), "Reconciling")
    assert waiting is not None and waiting["reason"] == "AwaitingQuorum"
    assert held["score"] == 33  # residency (High, 4) fails, isolation (Medium, 2) passes: 2 of 6

    for person, keys in people.items():
        kubectl.apply(signed_approval(f"{name}-{person}", pending, person, keys))
    active = status_of(kubectl, name, lambda s: s["exceptions"][0]["state"] == "Active", "the exception active")
    assert active["score"] == 100 and active["summary"]["excepted"] == 1 and active.get("pending", []) == []
    wait_for_condition(kubectl, "complianceframework", name, "Ready", current=True)
    uid = kubectl.get("complianceframework", name)["metadata"]["uid"]  # type: ignore[index]
    changed = records(database, uid)[-1]["details"]["changed"]
    assert [(c["control"], c["to"]) for c in changed] == [("residency", "excepted")] and changed[0]["exception"]

    expired = status_of(
        kubectl, name, lambda s: s["exceptions"][0]["state"] == "Expired", "the exception expired", timeout=120
    )
    status_of(kubectl, name, lambda s: s.get("score") == 33, "the score back once expired")
    assert expired["exceptions"][0]["expires"] == expires
    last = records(database, uid)[-1]["details"]["changed"]
    assert [(c["control"], c["from"], c["to"]) for c in last] == [("residency", "excepted", "fail")]


def test_a_framework_made_again_under_another_policy_is_decided_by_the_former_one(
    kubectl: Kubectl, running: Running
) -> None:
    """Deleting a framework and applying it again under its name with a QuorumPolicy whose approver
    one holds does not let that approver grant exceptions: the move itself is ChangeQuorumGate under
    the former policy, which keeps deciding the exceptions meanwhile."""
    suffix = uuid.uuid4().hex[:6]
    selector = {"compliance-again": suffix}
    tenant, name, qp, takeover = f"again-{suffix}", f"soc-{suffix}", f"board-{suffix}", f"mine-{suffix}"
    people = {n: ApproverKeys.generate(ml_dsa65=False) for n in ("alice", "bob", "mallory")}
    for policy, names in ((qp, ("alice", "bob")), (takeover, ("mallory",))):
        kubectl.apply(
            builders.quorum_policy(
                policy,
                approvers=[approver(n, people[n], roles=["security"]) for n in names],
                rules=[builders.rule("AddComplianceException", min_approvals=len(names), allow_self_approval=True)],
            )
        )
        wait_for_condition(kubectl, "quorumpolicy", policy, "Ready", current=True)
    kubectl.apply(builders.tenant(tenant, region="us-east-1", labels=selector))
    wait_for_condition(kubectl, "tenant", tenant, "Ready", current=True)
    kubectl.apply(framework(name, selector, quorum_policy_ref=qp))
    wait_for_condition(kubectl, "complianceframework", name, "Ready", current=True)
    kubectl.run("delete", "complianceframework", name)

    expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    exception = {"control": "residency", "tenants": [tenant], "reason": "waived by mallory", "expires": expires}
    kubectl.apply(framework(name, selector, quorum_policy_ref=takeover, exceptions=[exception]))
    held = status_of(kubectl, name, lambda s: len(s.get("pending") or []) == 2, "the move and the exception held")
    by_action = {p["action"]: p for p in held["pending"]}
    assert {a: p["policy"] for a, p in by_action.items()} == {"ChangeQuorumGate": qp, "AddComplianceException": qp}
    assert by_action["ChangeQuorumGate"]["signWith"].endswith("--action ChangeQuorumGate")

    # Mallory approves the exception under the policy the new framework names: it counts for nothing.
    claimed = {**by_action["AddComplianceException"], "policy": takeover}
    kubectl.apply(signed_approval(f"{name}-mallory", claimed, "mallory", people["mallory"]))
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        status = (kubectl.get("complianceframework", name) or {}).get("status") or {}
        assert status["exceptions"][0]["state"] == "AwaitingQuorum"
        time.sleep(1)
    kubectl.run("delete", "tenant", tenant, "--wait=false")
