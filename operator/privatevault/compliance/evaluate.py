"""Evaluating a framework's controls against one tenant, and what changed since last time.

A framework's spec is compiled once (:func:`compile_framework`: every check's parameters are
validated then, so evaluation is plain function calls). A control's state combines its checks'
outcomes: any ``fail`` → ``fail``; else any ``unknown`` → ``unknown``; else any ``pass`` →
``pass``; else ``not-applicable``. Then an active exception for (control, tenant) makes it
``excepted``, and a manual control (only the ``manual`` check) becomes ``pass`` under an active
attestation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from privatevault.api.v1alpha1.complianceframework import ComplianceFrameworkSpec

from . import score as scoring
from .checks import CompiledCheck, Finding, compile_check
from .facts import ClusterFacts, TenantFacts
from .waivers import ActiveWaivers

#: The most tenants a summary lists as lowest, and failing control ids per tenant.
LOWEST: Final = 10
FAILING: Final = 5

_RANK: Final[Mapping[str, int]] = {"fail": 3, "unknown": 2, "pass": 1, "not-applicable": 0}
_OF_RANK: Final = {v: k for k, v in _RANK.items()}


@dataclass(frozen=True)
class CompiledControl:
    id: str
    title: str
    severity: str
    weight: int
    checks: tuple[CompiledCheck, ...]
    #: Only the ``manual`` check: unknown until an active attestation makes it pass.
    manual: bool


@dataclass(frozen=True)
class Framework:
    standard: str
    version: str
    controls: tuple[CompiledControl, ...]


@dataclass(frozen=True)
class ControlResult:
    id: str
    state: str
    severity: str
    weight: int
    #: (check name, finding) in the control's order of checks.
    findings: tuple[tuple[str, Finding], ...]
    #: The digest of the active exception (state excepted) or attestation (manual pass) that set the state.
    exception: str | None = None


@dataclass(frozen=True)
class TenantResult:
    tenant: str
    controls: tuple[ControlResult, ...]
    score: scoring.Score

    def states(self) -> dict[str, str]:
        return {c.id: c.state for c in self.controls}

    def failing(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.controls if c.state == "fail")

    def control(self, control_id: str) -> ControlResult | None:
        return next((c for c in self.controls if c.id == control_id), None)


@dataclass(frozen=True)
class Change:
    """A control whose state, severity, weight or exception changed; ``from_``/``to`` None when absent."""

    control: str
    from_: str | None
    to: str | None
    findings: tuple[tuple[str, Finding], ...]
    exception: str | None


@dataclass(frozen=True)
class Lowest:
    tenant: str
    score: int | None
    failing: tuple[str, ...]


@dataclass(frozen=True)
class Summary:
    tenants: int
    score: scoring.Score
    counts: Mapping[str, int] = field(default_factory=dict)
    lowest: tuple[Lowest, ...] = ()

    @property
    def failing_controls(self) -> int:
        return self.counts.get("fail", 0)


def compile_framework(spec: ComplianceFrameworkSpec) -> Framework:
    """The spec with every check compiled; SpecError (InvalidCheckParams, UnknownCheck) when one cannot be."""
    controls = tuple(
        CompiledControl(
            id=c.id,
            title=c.title,
            severity=c.severity,
            weight=c.weight,
            checks=tuple(compile_check(c.id, check) for check in c.checks),
            manual=all(check.name == "manual" for check in c.checks),
        )
        for c in spec.controls
    )
    return Framework(standard=spec.framework, version=spec.version, controls=controls)


def combine(outcomes: Iterable[str]) -> str:
    """A control's state from its checks' outcomes: fail > unknown > pass > not-applicable."""
    return _OF_RANK[max((_RANK[o] for o in outcomes), default=0)]


def evaluate(
    framework: Framework,
    tenant: TenantFacts,
    cluster: ClusterFacts,
    now: datetime,
    active: ActiveWaivers,
    *,
    memo: dict[str, Finding] | None = None,
) -> TenantResult:
    """The tenant's result under the framework.

    ``memo`` caches findings by check and parameters; pass one dict to the evaluations of the same
    tenant, cluster facts and instant under several frameworks (a tenant's re-evaluation) so a check
    they share runs once. Without it, a check repeated within the framework still runs once.
    """
    memo = {} if memo is None else memo
    results = []
    for control in framework.controls:
        findings = []
        for c in control.checks:
            finding = memo.get(c.key)
            if finding is None:
                finding = memo[c.key] = c.run(c.params, tenant, cluster, now)
            findings.append((c.name, finding))
        state = combine(finding.outcome for _, finding in findings)
        waived = active.exception(control.id, tenant.name)
        if waived is not None:
            state = "excepted"
        elif control.manual:
            waived = active.attestation(control.id)
            if waived is not None:
                state = "pass"
        results.append(ControlResult(control.id, state, control.severity, control.weight, tuple(findings), waived))
    controls = tuple(results)
    return TenantResult(
        tenant=tenant.name,
        controls=controls,
        score=scoring.of_states((c.state, c.severity, c.weight) for c in controls),
    )


def changes(before: TenantResult | None, after: TenantResult) -> list[Change]:
    """What a ``compliance-state`` record lists as changed: new, gone or different controls.

    A control is different when its state, severity, weight or exception differs (so the record's
    ``controls`` follow from the previous ones with ``changed`` applied). ``exception`` is the
    digest now in effect, or the one that just stopped applying (an exception or attestation
    that expired), so both ends of a waiver are visible in the history.
    """
    old = {c.id: c for c in before.controls} if before is not None else {}
    out = []
    for c in after.controls:
        prev = old.pop(c.id, None)
        if prev is None or (prev.state, prev.severity, prev.weight, prev.exception) != (
            c.state,
            c.severity,
            c.weight,
            c.exception,
        ):
            waiver = c.exception if c.exception is not None or prev is None else prev.exception
            out.append(Change(c.id, prev.state if prev else None, c.state, c.findings, waiver))
    out += [Change(gone.id, gone.state, None, (), None) for gone in old.values()]
    return out


def summarize(results: Sequence[TenantResult]) -> Summary:
    """Counts per state over tenant and control, the pooled score, and the lowest tenants."""
    counts = dict.fromkeys(scoring.STATES, 0)
    for r in results:
        for c in r.controls:
            counts[c.state] += 1
    ranked = sorted(
        (r for r in results if r.score.value is not None and r.score.value < 100),
        key=lambda r: (r.score.value, r.tenant),
    )
    lowest = tuple(Lowest(r.tenant, r.score.value, r.failing()[:FAILING]) for r in ranked[:LOWEST])
    return Summary(tenants=len(results), score=scoring.pooled(r.score for r in results), counts=counts, lowest=lowest)


def status_fields(summary: Summary) -> dict[str, Any]:
    """The summary in the wire form of the ComplianceFramework's status (``score`` absent when none)."""
    counts = summary.counts
    out: dict[str, Any] = {
        "tenants": summary.tenants,
        "summary": {
            "pass": counts.get("pass", 0),
            "fail": counts.get("fail", 0),
            "unknown": counts.get("unknown", 0),
            "notApplicable": counts.get("not-applicable", 0),
            "excepted": counts.get("excepted", 0),
        },
        "lowest": [
            {"tenant": lo.tenant, "failing": list(lo.failing), **({"score": lo.score} if lo.score is not None else {})}
            for lo in summary.lowest
        ],
    }
    if summary.score.value is not None:
        out["score"] = summary.score.value
    return out


def ready_message(summary: Summary) -> str:
    """The Ready condition's message: ``score 87 over 3 tenants; 2 failing controls``."""
    value = summary.score.value
    score = f"score {value}" if value is not None else "no score"
    tenants = "1 tenant" if summary.tenants == 1 else f"{summary.tenants} tenants"
    failing = summary.failing_controls
    return f"{score} over {tenants}; {failing} failing control{'' if failing == 1 else 's'}"
