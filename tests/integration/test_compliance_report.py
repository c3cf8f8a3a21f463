"""pvctl compliance report on the real PostgreSQL: compliance-state records appended through the real
Ledger are read back newest per (framework, tenant), at a time, filtered, as a table, JSON and OSCAL;
a ledger without them says no framework has been evaluated."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from privatevault.cli.main import app
from privatevault.ledger import Event, ResourceRef
from privatevault.ledger.store import Ledger
from tests.compliance_history import append, control

pytestmark = pytest.mark.integration

FAILING = {"ac-1": control("pass"), "ac-2": control("fail", "Critical"), "ac-3": control("not-applicable")}
PASSING = {"ac-1": control("pass"), "ac-2": control("pass", "Critical"), "ac-3": control("not-applicable")}


def pvctl(dsn_file: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["compliance", "report", "--dsn-file", str(dsn_file), *args])
    return result.exit_code, result.output


def test_no_records_yet(ledger: Ledger, operator_dsn_file: Path) -> None:
    ledger.append(
        Event(
            tenant="acme",
            actor="test",
            action="tenant-created",
            resource=ResourceRef(kind="Tenant", name="acme"),
            outcome="done",
            idempotency_key="tenant/acme/created",
        )
    )
    code, output = pvctl(operator_dsn_file)
    assert code == 1
    assert "no framework has been evaluated yet" in output


def test_latest_per_framework_and_tenant(ledger: Ledger, operator_dsn_file: Path) -> None:
    first = append(ledger, [("acme", FAILING), ("globex", FAILING)])
    time.sleep(0.01)
    stored = ledger.record(first[-1])
    assert stored is not None
    middle = json.loads(stored.canonical)["time"]
    time.sleep(0.01)
    append(ledger, [("acme", PASSING)], uid="uid-other", framework="other")
    fixed = append(ledger, [("globex", PASSING)])

    code, output = pvctl(operator_dsn_file, "--format", "json")
    assert code == 0, output
    frameworks = {f["framework"]: f for f in json.loads(output)["frameworks"]}
    assert sorted(frameworks) == ["baseline", "other"]
    tenants = {t["tenant"]: t for t in frameworks["baseline"]["tenants"]}
    # The report reads the newest record per pair (and checks its score), not the whole history.
    assert tenants["globex"]["seq"] == fixed[0]
    assert tenants["globex"]["score"] == 100
    assert tenants["acme"]["failing"] == ["ac-2"]
    assert tenants["acme"]["counts"] == {"pass": 1, "fail": 1, "unknown": 0, "notApplicable": 1, "excepted": 0}
    assert frameworks["baseline"]["score"] == (4 + 12) * 100 // 24

    code, output = pvctl(operator_dsn_file, "--format", "json", "--at", middle)
    assert code == 0, output
    (only,) = json.loads(output)["frameworks"]
    assert [t["seq"] for t in only["tenants"]] == first

    code, output = pvctl(operator_dsn_file, "--tenant", "acme", "--framework", "baseline")
    assert code == 0, output
    assert "acme" in output and "globex" not in output and "ac-2" in output
    assert "baseline: score 33 over 1 tenant(s)" in output

    code, output = pvctl(operator_dsn_file, "--format", "oscal", "--framework", "other")
    assert code == 0, output
    results = json.loads(output)["assessment-results"]["results"]
    assert [r["title"].split(":")[0] for r in results] == ["other"]

    code, output = pvctl(operator_dsn_file, "--tenant", "initech")
    assert code == 1
    assert "no compliance-state record of tenant initech" in output

    code, output = pvctl(operator_dsn_file, "--at", "2000-01-01T00:00:00Z")
    assert code == 1
    assert "no framework has been evaluated yet" in output

    code, output = pvctl(operator_dsn_file, "--at", "yesterday")
    assert code == 2
    assert "not an RFC 3339 time" in output
