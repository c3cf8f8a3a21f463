"""What the core hands out: the ``compliance-state`` record details (the design's JSON) and their
idempotency key, the OpenReports Report (mapping, truncation, size of a 256-control framework), and
the generated check reference being up to date."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rfc8785

from privatevault.api.v1alpha1.complianceframework import ComplianceFrameworkSpec
from privatevault.compliance import evaluate as ev
from privatevault.compliance import openreports, records, reference
from privatevault.compliance.checks import LIBRARY
from privatevault.compliance.facts import ClusterFacts, NamespaceFacts, TenantFacts
from privatevault.compliance.score import of_record
from privatevault.compliance.waivers import ActiveWaivers

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def framework(*controls: dict[str, Any]) -> ev.Framework:
    return ev.compile_framework(
        ComplianceFrameworkSpec.model_validate({"framework": "SOC2", "version": "2017", "controls": list(controls)})
    )


FRAMEWORK = framework(
    {"id": "NET", "title": "n", "severity": "High", "checks": [{"name": "network-default-deny"}]},
    {"id": "QUOTA", "title": "q", "checks": [{"name": "quota-set"}]},
    {"id": "TLS", "title": "t", "severity": "Low", "checks": [{"name": "tls-not-expiring"}]},
    {"id": "TRAIN", "title": "m", "severity": "Critical", "weight": 2, "checks": [{"name": "manual"}]},
)
EXCEPTED = ActiveWaivers(exceptions={"QUOTA": (frozenset(), "sha256:e")}, attestations={})


def details_of(after: ev.TenantResult, changed: list[ev.Change], *, previous: int | None = None) -> dict[str, Any]:
    return records.details(
        framework="soc2",
        framework_uid="uid-1",
        standard="SOC2",
        version="2017",
        generation=3,
        previous=previous,
        result=after,
        changed=changed,
    )


def acme(*, deny: bool = True) -> TenantFacts:
    return TenantFacts(name="acme", namespaces=(NamespaceFacts("acme", has_default_deny=deny),))


def test_record_details_are_the_designs_json() -> None:
    before = ev.evaluate(FRAMEWORK, acme(deny=False), ClusterFacts(), NOW, EXCEPTED)
    after = ev.evaluate(FRAMEWORK, acme(), ClusterFacts(), NOW, EXCEPTED)
    details = details_of(after, ev.changes(before, after), previous=41)
    assert details == {
        "framework": "soc2",
        "frameworkUid": "uid-1",
        "standard": "SOC2",
        "version": "2017",
        "generation": 3,
        "previous": 41,
        "controls": {
            "NET": {"state": "pass", "severity": "High", "weight": 1},
            "QUOTA": {"state": "excepted", "severity": "Medium", "weight": 1},
            "TLS": {"state": "not-applicable", "severity": "Low", "weight": 1},
            "TRAIN": {"state": "unknown", "severity": "Critical", "weight": 2},
        },
        "score": 20,
        "earned": 4,
        "possible": 20,
        "changed": [
            {
                "control": "NET",
                "from": "fail",
                "to": "pass",
                "findings": [
                    {
                        "check": "network-default-deny",
                        "outcome": "pass",
                        "reason": "every namespace has the default-deny NetworkPolicy",
                        "evidence": ["NetworkPolicy/acme/privatevault-isolation"],
                    }
                ],
                "exception": None,
            }
        ],
    }
    # What an auditor recomputes from the record alone.
    assert of_record(details["controls"]).value == details["score"]
    json.dumps(details)  # plain JSON


def test_the_first_record_lists_every_control_with_its_exception() -> None:
    after = ev.evaluate(FRAMEWORK, acme(), ClusterFacts(), NOW, EXCEPTED)
    details = details_of(after, ev.changes(None, after))
    assert details["previous"] is None
    assert [(c["control"], c["from"], c["to"], c["exception"]) for c in details["changed"]] == [
        ("NET", None, "pass", None),
        ("QUOTA", None, "excepted", "sha256:e"),
        ("TLS", None, "not-applicable", None),
        ("TRAIN", None, "unknown", None),
    ]


def test_evidence_in_a_record_is_bounded() -> None:
    many = TenantFacts(name="big", namespaces=tuple(NamespaceFacts(f"n{i}") for i in range(100)))
    after = ev.evaluate(FRAMEWORK, many, ClusterFacts(), NOW, EXCEPTED)
    (finding,) = details_of(after, ev.changes(None, after)[:1])["changed"][0]["findings"]
    assert len(finding["evidence"]) == records.EVIDENCE + 1
    assert finding["evidence"][-1] == "… 68 more"


def test_the_idempotency_key_names_tenant_previous_and_controls() -> None:
    controls = {"NET": {"state": "pass", "severity": "High", "weight": 1}}
    key = records.change_key("uid-1", "acme", 41, controls)
    body = {"tenant": "acme", "previous": 41, "controls": controls}
    assert key == "complianceframework/uid-1/compliance-state/" + hashlib.sha256(rfc8785.dumps(body)).hexdigest()
    assert key.startswith(records.key_prefix("uid-1"))
    assert records.change_key("uid-1", "acme", 42, controls) != key
    assert records.change_key("uid-1", "globex", 41, controls) != key
    assert records.change_key("uid-1", "acme", 41, {"NET": controls["NET"] | {"state": "fail"}}) != key


def test_the_report_maps_states_and_counts() -> None:
    result = ev.evaluate(FRAMEWORK, acme(deny=False), ClusterFacts(), NOW, EXCEPTED)
    report = openreports.report(framework="soc2", namespace="acme", result=result, now=NOW, category="SOC2 2017")
    assert (report["apiVersion"], report["kind"], report["source"]) == (
        "openreports.io/v1alpha1",
        "Report",
        "privatevault",
    )
    assert report["metadata"]["name"] == "privatevault-soc2"
    assert report["metadata"]["namespace"] == "acme"
    assert report["scope"] == {"apiVersion": "privatevault.io/v1alpha1", "kind": "Tenant", "name": "acme"}
    rows = {r["rule"]: r for r in report["results"]}
    assert {rule: (r["result"], r["severity"]) for rule, r in rows.items()} == {
        "NET": ("fail", "high"),
        "QUOTA": ("skip", "medium"),
        "TLS": ("skip", "low"),
        "TRAIN": ("error", "critical"),
    }
    assert rows["QUOTA"]["properties"] == {
        "state": "excepted",
        "checks": "quota-set",
        "evidence": "Namespace/acme",
        "exception": "sha256:e",
    }
    assert rows["NET"]["message"].startswith("network-default-deny: the default-deny NetworkPolicy")
    assert rows["NET"]["properties"]["evidence"] == "Namespace/acme"
    assert rows["NET"]["timestamp"] == {"seconds": int(NOW.timestamp()), "nanos": 0}
    assert all(r["policy"] == "soc2" and r["category"] == "SOC2 2017" for r in report["results"])
    assert report["summary"] == {"pass": 0, "fail": 1, "warn": 0, "error": 1, "skip": 2}
    assert all(isinstance(v, str) for r in report["results"] for v in r["properties"].values())


def test_a_report_of_256_controls_stays_far_under_one_mebibyte() -> None:
    checks = [{"name": n} for n in ("network-default-deny", "quota-set", "owners-defined", "pod-security-restricted")]
    big = framework(*({"id": f"CTRL-{i:03}", "title": "t", "checks": checks} for i in range(256)))
    tenant = TenantFacts(name="t" * 63, namespaces=tuple(NamespaceFacts(f"{'n' * 60}{i:03}") for i in range(64)))
    result = ev.evaluate(big, tenant, ClusterFacts(), NOW, EXCEPTED)
    report = openreports.report(framework="f" * 63, namespace="n" * 63, result=result, now=NOW, category="x")
    size = len(json.dumps(report))
    assert size < 512 * 1024, size
    assert all(len(r["message"]) <= openreports.MESSAGE for r in report["results"])
    assert all(r["message"].endswith("…") for r in report["results"])


def test_the_reference_page_lists_every_check_and_is_up_to_date() -> None:
    page = reference.page()
    for spec in LIBRARY.values():
        assert f"## `{spec.name}`" in page
        assert spec.why in page
    assert "`regions` (list[str], required)" in page
    assert "`minWitnesses` (int, default `1`)" in page
    assert (ROOT / "docs" / "compliance-checks.md").read_text() == page
    check = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "compliance_checks.py"), "--check"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
