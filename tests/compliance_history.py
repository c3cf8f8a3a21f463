"""``compliance-state`` record details for tests: a (framework, tenant)'s successive control maps
written out as the controller writes them (``docs/design/compliance.md``, "Ledger history")."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from privatevault.compliance.score import of_record
from privatevault.ledger import Event, ResourceRef
from privatevault.ledger.event import canonical
from privatevault.ledger.store import Ledger

Controls = Mapping[str, Mapping[str, Any]]
#: The time of record seq 0 in :func:`records` (record ``seq`` is ``seq`` seconds later).
T0 = datetime(2026, 11, 30, 10, tzinfo=UTC)


def control(state: str, severity: str = "High", weight: int = 1) -> dict[str, Any]:
    return {"state": state, "severity": severity, "weight": weight}


def details(
    controls: Controls,
    before: Controls | None,
    *,
    previous: int | None,
    framework: str = "baseline",
    uid: str = "uid-baseline",
    generation: int = 1,
) -> dict[str, Any]:
    """The details of a record whose controls are ``controls``, after a record with ``before``."""
    before = before or {}
    changed = []
    for cid in sorted(set(controls) | set(before)):
        was = before[cid]["state"] if cid in before else None
        now = controls[cid]["state"] if cid in controls else None
        if was != now:
            entry = {
                "check": "quota-set",
                "outcome": "pass" if now == "pass" else "fail",
                "reason": f"{cid} is {now}",
                "evidence": ["Namespace/acme"],
            }
            changed.append({"control": cid, "from": was, "to": now, "findings": [entry], "exception": None})
    score = of_record(controls)
    return {
        "framework": framework,
        "frameworkUid": uid,
        "standard": "PrivateVault baseline",
        "version": "1.0",
        "generation": generation,
        "previous": previous,
        "controls": {cid: dict(c) for cid, c in controls.items()},
        "score": score.value,
        "earned": score.earned,
        "possible": score.possible,
        "changed": changed,
    }


def records(
    steps: list[tuple[str, Controls, int]],
    *,
    first_seq: int = 1,
    framework: str = "baseline",
    uid: str = "uid-baseline",
    gap: int = 1,
) -> list[dict[str, Any]]:
    """Ledger record dicts for ``(tenant, controls, generation)`` steps, linked per tenant."""
    out: list[dict[str, Any]] = []
    last: dict[str, tuple[int, Controls]] = {}
    for n, (tenant, controls, generation) in enumerate(steps):
        seq = first_seq + n * gap
        body = event(tenant, controls, last.get(tenant), framework=framework, uid=uid, generation=generation).details
        out.append(
            {
                "seq": seq,
                "time": (T0 + timedelta(seconds=seq)).isoformat().replace("+00:00", "Z"),
                "tenant": tenant,
                "action": "compliance-state",
                "resource": {"kind": "ComplianceFramework", "name": framework, "uid": uid},
                "details": body,
            }
        )
        last[tenant] = (seq, controls)
    return out


def event(
    tenant: str, controls: Controls, before: tuple[int, Controls] | None, *, framework: str, uid: str, generation: int
) -> Event:
    """The Event the controller appends for a (framework, tenant) evaluation that changed something
    (its key as ``compliance.records.change_key`` makes it)."""
    body = details(
        controls,
        before[1] if before else None,
        previous=before[0] if before else None,
        framework=framework,
        uid=uid,
        generation=generation,
    )
    digest = hashlib.sha256(
        canonical({"tenant": tenant, "previous": body["previous"], "controls": body["controls"]})
    ).hexdigest()
    return Event(
        tenant=tenant,
        actor="privatevault-operator",
        action="compliance-state",
        resource=ResourceRef(kind="ComplianceFramework", name=framework, uid=uid),
        outcome="recorded",
        idempotency_key=f"complianceframework/{uid}/compliance-state/{digest}",
        details=body,
    )


def append(
    ledger: Ledger, steps: list[tuple[str, Controls]], *, framework: str = "baseline", uid: str = "uid-baseline"
) -> list[int]:
    """Append ``(tenant, controls)`` steps of one framework through the real Ledger, linked per
    tenant to the records already appended by this call; their seqs."""
    last: dict[str, tuple[int, Controls]] = {}
    seqs = []
    for tenant, controls in steps:
        record = ledger.append(event(tenant, controls, last.get(tenant), framework=framework, uid=uid, generation=1))
        last[tenant] = (record.seq, controls)
        seqs.append(record.seq)
    return seqs
