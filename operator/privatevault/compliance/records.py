"""The ``compliance-state`` ledger record of one (framework, tenant) evaluation that changed something.

Its shape is fixed by ``docs/design/compliance.md`` (the fold in ``history.py`` and ``pvctl
evidence verify`` read it back). The idempotency key hashes the tenant, the previous record and
the controls, so a retried write — or a restart that rebuilt its state from the ledger — finds
the record instead of writing another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final

from privatevault.ledger.event import canonical

from .checks import Finding
from .evaluate import Change, TenantResult

ACTION: Final = "compliance-state"
KIND: Final = "ComplianceFramework"
#: Evidence references kept per finding in a record (a tenant with hundreds of namespaces).
EVIDENCE: Final = 32


def controls_of(result: TenantResult) -> dict[str, dict[str, Any]]:
    return {c.id: {"state": c.state, "severity": c.severity, "weight": c.weight} for c in result.controls}


def finding(check: str, f: Finding) -> dict[str, Any]:
    evidence = list(f.evidence[:EVIDENCE])
    if len(f.evidence) > EVIDENCE:
        evidence.append(f"… {len(f.evidence) - EVIDENCE} more")
    return {"check": check, "outcome": f.outcome, "reason": f.reason, "evidence": evidence}


def details(
    *,
    framework: str,
    framework_uid: str,
    standard: str,
    version: str,
    generation: int,
    previous: int | None,
    result: TenantResult,
    changed: Sequence[Change],
) -> dict[str, Any]:
    """The record's details, exactly as the design's JSON."""
    value = result.score.value
    return {
        "framework": framework,
        "frameworkUid": framework_uid,
        "standard": standard,
        "version": version,
        "generation": generation,
        "previous": previous,
        "controls": controls_of(result),
        "score": value,
        "earned": result.score.earned,
        "possible": result.score.possible,
        "changed": [
            {
                "control": c.control,
                "from": c.from_,
                "to": c.to,
                "findings": [finding(check, f) for check, f in c.findings],
                "exception": c.exception,
            }
            for c in changed
        ],
    }


def change_key(framework_uid: str, tenant: str, previous: int | None, controls: dict[str, dict[str, Any]]) -> str:
    """``complianceframework/<uid>/compliance-state/<sha256(tenant, previous, controls)>``."""
    digest = hashlib.sha256(canonical({"tenant": tenant, "previous": previous, "controls": controls})).hexdigest()
    return f"{KIND.lower()}/{framework_uid}/{ACTION}/{digest}"


def key_prefix(framework_uid: str) -> str:
    """What ``Ledger.find`` takes to list a framework's records."""
    return f"{KIND.lower()}/{framework_uid}/{ACTION}/"
