"""OSCAL assessment-results from compliance states: valid against NIST's official OSCAL JSON schema,
the same bytes from the same ledger, and every state mapped to an objective status."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from privatevault.compliance.history import fold
from privatevault.compliance.oscal import OSCAL_VERSION, STATUS, assessment_results
from privatevault.compliance.score import STATES
from tests.compliance_history import control, records

SCHEMA = Path(__file__).parents[1] / "fixtures" / "oscal" / "oscal_complete_schema.json"
#: NIST's OSCAL v1.2.3 release file (tests/fixtures/oscal/README.md).
SCHEMA_SHA256 = "384324105c7a817af0f65b120a963146caa0e0d55d969cf0daf60e063b87a206"


#: The schema's patterns are ECMA-262 regular expressions; Python's ``re`` lacks Unicode property
#: classes, used only by TokenDatatype: letters are ``[^\W\d_]`` and digits ``\d`` in ``re``.
PROPERTY_CLASSES = {r"\p{L}": r"[^\W\d_]", r"\p{N}": r"\d"}


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    for ecma, python in PROPERTY_CLASSES.items():
        pattern = pattern.replace(ecma, python)
    if isinstance(instance, str) and not re.search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@pytest.fixture(scope="module")
def validator() -> Any:
    data = SCHEMA.read_bytes()
    assert hashlib.sha256(data).hexdigest() == SCHEMA_SHA256
    schema = json.loads(data)
    assert "1.2.3" in schema["$id"] and OSCAL_VERSION == "1.2.3"
    oscal = jsonschema.validators.extend(jsonschema.Draft7Validator, {"pattern": _pattern})
    return oscal(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def document() -> dict[str, Any]:
    every = {f"ac-{n}": control(state, "High") for n, state in enumerate(STATES, start=1)}
    rs = records([("acme", every, 1), ("globex", {"ac-1": control("fail", "Critical")}, 1)])
    rs += records([("acme", {"sc-8": control("pass", "Low")}, 1)], first_seq=3, framework="nist", uid="uid-nist")
    history = fold(rs)
    assert history.ok
    return assessment_results(history.latest().values())


def test_valid_against_the_official_schema(validator: Any) -> None:
    errors = sorted(validator.iter_errors(document()), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def test_ledger_times_with_microseconds_are_valid(validator: Any) -> None:
    rs = records([("acme", {"ac-1": control("pass")}, 1)])
    rs[0]["time"] = "2026-11-30T19:47:00.123456Z"  # as the ledger writes them
    document = assessment_results(fold(rs).latest().values())
    assert not list(validator.iter_errors(document))
    broken = json.loads(json.dumps(document).replace("2026-11-30T19:47:00.123456Z", "2026-11-30 19:47"))
    assert list(validator.iter_errors(broken))


def test_the_schema_check_is_not_vacuous(validator: Any) -> None:
    broken = document()
    del broken["assessment-results"]["results"][0]["findings"][0]["target"]["status"]
    assert list(validator.iter_errors(broken))
    wrong = document()
    wrong["assessment-results"]["results"][0]["findings"][0]["target"]["type"] = "control-id"
    assert list(validator.iter_errors(wrong))
    token = document()
    token["assessment-results"]["results"][0]["findings"][0]["target"]["target-id"] = "1 bad"
    assert list(validator.iter_errors(token))


def test_the_same_ledger_gives_the_same_document() -> None:
    assert json.dumps(document(), sort_keys=True) == json.dumps(document(), sort_keys=True)
    uuids = [f["uuid"] for r in document()["assessment-results"]["results"] for f in r["findings"]]
    assert len(uuids) == len(set(uuids))


def test_findings_per_tenant_and_control() -> None:
    results = document()["assessment-results"]["results"]
    assert [r["title"] for r in results] == ["baseline: PrivateVault baseline 1.0", "nist: PrivateVault baseline 1.0"]
    baseline = results[0]
    assert [c["control-id"] for c in baseline["reviewed-controls"]["control-selections"][0]["include-controls"]] == [
        "ac-1",
        "ac-2",
        "ac-3",
        "ac-4",
        "ac-5",
    ]
    statuses = {
        (next(p["value"] for p in f["props"] if p["name"] == "tenant"), f["target"]["target-id"]): f["target"]["status"]
        for f in baseline["findings"]
    }
    assert statuses["globex", "ac-1"] == {"state": "not-satisfied", "reason": "fail"}
    assert statuses["acme", "ac-1"] == {"state": "satisfied", "reason": "pass"}
    assert len(statuses) == 6
    # The framework's score pools its tenants: acme 4/12 (pass, fail, unknown), globex 0/8.
    assert {p["name"]: p["value"] for p in baseline["props"]}["score"] == "20"
    observation = baseline["observations"][0]
    assert observation["relevant-evidence"][0]["href"] == "ledger:1"
    assert "quota-set: pass" in observation["description"]


def test_every_state_has_a_status() -> None:
    assert set(STATUS) == set(STATES)


def test_no_state_is_refused() -> None:
    with pytest.raises(ValueError, match="no framework has been evaluated"):
        assessment_results([])
