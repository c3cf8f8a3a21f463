"""OSCAL assessment-results (JSON) from the latest compliance states: what ``pvctl compliance report
--format oscal`` prints.

One ``result`` per framework (its reviewed controls are the controls of its tenants' records), one
``observation`` and one ``finding`` per (tenant, control): the observation is the automated check,
its relevant evidence the ledger record holding the state (``ledger:<seq>``) and, when the control
changed in that record, the references its checks gave; the finding's target is the control with
an objective status:

    pass            satisfied       reason pass
    fail            not-satisfied   reason fail
    unknown         not-satisfied   reason other   (unknown is not passed, as in the score)
    not-applicable  satisfied       reason other
    excepted        not-satisfied   reason other   (an approved exception accepts the risk)

and the PrivateVault state as a property, so nothing is lost in the mapping. Every UUID is a
UUID v5 over the framework uid, tenant, control and record seq, and every time comes from the
records: the same ledger gives the same document, byte for byte. The document declares the OSCAL
version whose official JSON schema it is tested against (``tests/unit/test_compliance_oscal.py``).
Pure: no I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final

from privatevault.compliance.history import State
from privatevault.compliance.score import Score, pooled

OSCAL_VERSION: Final = "1.2.3"
#: The namespace of PrivateVault's OSCAL properties and of its UUIDs.
NS: Final = "https://privatevault.io/ns/oscal"
_UUIDS: Final = uuid.uuid5(uuid.NAMESPACE_URL, NS)

#: PrivateVault control state → OSCAL objective status (state, reason).
STATUS: Final[Mapping[str, tuple[str, str]]] = {
    "pass": ("satisfied", "pass"),
    "fail": ("not-satisfied", "fail"),
    "unknown": ("not-satisfied", "other"),
    "not-applicable": ("satisfied", "other"),
    "excepted": ("not-satisfied", "other"),
}


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(_UUIDS, "/".join(str(p) for p in parts)))


def _prop(name: str, value: object) -> dict[str, str]:
    return {"name": name, "ns": NS, "value": str(value)}


def _findings_of(state: State, control: str) -> list[Mapping[str, Any]]:
    for change in state.changed:
        if change.get("control") == control:
            return [f for f in change.get("findings") or () if isinstance(f, Mapping)]
    return []


def _observation(state: State, control: str) -> dict[str, Any]:
    checks = _findings_of(state, control)
    reasons = "; ".join(f"{f.get('check')}: {f.get('outcome')} ({f.get('reason')})" for f in checks)
    description = f"Control {control} of tenant {state.tenant} is {state.controls[control]['state']}"
    evidence = [{"href": f"ledger:{state.seq}", "description": f"The compliance-state record {state.seq}."}]
    for ref in sorted({str(e) for f in checks for e in f.get("evidence") or ()}):
        evidence.append({"href": ref, "description": f"Evidence of {control}'s checks ({ref})."})
    return {
        "uuid": _uuid(state.framework_uid, state.tenant, control, state.seq, "observation"),
        "title": f"{state.tenant} {control}",
        "description": f"{description}: {reasons}." if reasons else f"{description}.",
        "methods": ["TEST"],
        "types": ["control-objective"],
        "subjects": [
            {
                "subject-uuid": _uuid(state.framework_uid, state.tenant, "tenant"),
                "type": "party",
                "title": f"Tenant {state.tenant}",
            }
        ],
        "relevant-evidence": evidence,
        "collected": state.time,
        "props": [_prop("method", "AUTOMATED")],
    }


def _finding(state: State, control: str, observation: str) -> dict[str, Any]:
    entry = state.controls[control]
    status, reason = STATUS[entry["state"]]
    return {
        "uuid": _uuid(state.framework_uid, state.tenant, control, state.seq, "finding"),
        "title": f"{control} ({state.tenant}): {entry['state']}",
        "description": f"Control {control} of framework {state.framework} for tenant {state.tenant}.",
        "props": [
            _prop("tenant", state.tenant),
            _prop("state", entry["state"]),
            _prop("severity", entry["severity"]),
            _prop("weight", entry["weight"]),
        ],
        "target": {
            "type": "objective-id",
            "target-id": control,
            "status": {"state": status, "reason": reason},
        },
        "related-observations": [{"observation-uuid": observation}],
    }


def _result(states: list[State]) -> dict[str, Any]:
    first = states[0]
    total = pooled(Score(earned=s.earned, possible=s.possible) for s in states)
    controls = sorted({cid for s in states for cid in s.controls})
    observations, findings = [], []
    for state in states:
        for control in sorted(state.controls):
            observation = _observation(state, control)
            observations.append(observation)
            findings.append(_finding(state, control, observation["uuid"]))
    times = sorted(s.time for s in states)
    score = "none" if total.value is None else str(total.value)
    return {
        "uuid": _uuid(first.framework_uid, *(f"{s.tenant}@{s.seq}" for s in states)),
        "title": f"{first.framework}: {first.standard} {first.version}".strip(),
        "description": (
            f"PrivateVault's automated assessment of ComplianceFramework {first.framework} (generation"
            f" {first.generation}) over {len(states)} tenant(s): score {score}."
        ),
        "start": times[0],
        "end": times[-1],
        "props": [
            _prop("framework-uid", first.framework_uid),
            _prop("score", score),
            _prop("earned", total.earned),
            _prop("possible", total.possible),
        ],
        "reviewed-controls": {
            "control-selections": [{"include-controls": [{"control-id": cid} for cid in controls]}]
            if controls
            else [{"include-all": {}}],
        },
        "observations": observations,
        "findings": findings,
    }


def assessment_results(states: Iterable[State], *, title: str = "PrivateVault compliance") -> dict[str, Any]:
    """The OSCAL assessment-results document of ``states`` (the latest per framework and tenant)."""
    ordered = sorted(states, key=lambda s: (s.framework, s.framework_uid, s.tenant))
    if not ordered:
        raise ValueError("no compliance state to report: no framework has been evaluated")
    by_framework: dict[str, list[State]] = {}
    for state in ordered:
        by_framework.setdefault(state.framework_uid, []).append(state)
    newest = max(ordered, key=lambda s: s.seq)
    return {
        "assessment-results": {
            "uuid": _uuid("assessment-results", *(f"{s.framework_uid}/{s.tenant}@{s.seq}" for s in ordered)),
            "metadata": {
                "title": title,
                "last-modified": newest.time,
                "version": f"ledger:{newest.seq}",
                "oscal-version": OSCAL_VERSION,
            },
            "import-ap": {"href": "#privatevault-assessment-plan"},
            "results": [_result(group) for group in by_framework.values()],
        }
    }
