"""The OpenReports ``Report`` of one framework for one tenant (``openreports.io/v1alpha1``).

Written in the tenant's first namespace as ``privatevault-<framework>``, one result per control,
so policy dashboards (Policy Reporter, Kyverno's UI) show the posture beside admission results.
Messages and evidence are truncated so that a framework of 256 controls stays far under the
API server's 1 MiB object limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from .evaluate import ControlResult, TenantResult

API_VERSION: Final = "openreports.io/v1alpha1"
KIND: Final = "Report"
SOURCE: Final = "privatevault"
#: Characters of a result's message and of its evidence property.
MESSAGE: Final = 512
EVIDENCE: Final = 512

RESULT: Final[Mapping[str, str]] = {
    "pass": "pass",
    "fail": "fail",
    "unknown": "error",
    "not-applicable": "skip",
    "excepted": "skip",
}


def name(framework: str) -> str:
    return f"privatevault-{framework}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def entry(framework: str, control: ControlResult, *, category: str, seconds: int) -> dict[str, Any]:
    """One control's result."""
    message = "; ".join(f"{check}: {f.reason}" for check, f in control.findings)
    evidence = ", ".join(ref for _, f in control.findings for ref in f.evidence)
    properties = {
        "state": control.state,
        "checks": ",".join(check for check, _ in control.findings),
        "evidence": _cut(evidence, EVIDENCE),
    }
    if control.exception is not None:
        properties["exception"] = control.exception
    return {
        "source": SOURCE,
        "policy": framework,
        "rule": control.id,
        "category": category,
        "timestamp": {"seconds": seconds, "nanos": 0},
        "result": RESULT[control.state],
        "severity": control.severity.lower(),
        "message": _cut(message, MESSAGE),
        "properties": properties,
        "scored": control.weight > 0,
    }


def report(
    *,
    framework: str,
    namespace: str,
    result: TenantResult,
    now: datetime,
    category: str = "",
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Report manifest of ``result`` (a plain dict; the caller adds owner references and applies it).

    ``category`` is the standard and version (``SOC2 2017``); the scope is the Tenant.
    """
    seconds = int(now.timestamp())
    results = [entry(framework, c, category=category, seconds=seconds) for c in result.controls]
    summary = dict.fromkeys(("pass", "fail", "warn", "error", "skip"), 0)
    for r in results:
        summary[r["result"]] += 1
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name(framework),
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "privatevault", **(labels or {})},
        },
        "source": SOURCE,
        "scope": {"apiVersion": "privatevault.io/v1alpha1", "kind": "Tenant", "name": result.tenant},
        "summary": summary,
        "results": results,
    }
