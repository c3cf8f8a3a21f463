"""pvctl compliance: the latest compliance state per framework and tenant, from the ledger.

The controller records a ``compliance-state`` record whenever a (framework, tenant)'s control
states or score change (``docs/design/compliance.md``); the report reads the newest of them per
pair (at or before ``--at``), checks that each one's score recomputes from its controls, and prints
them as a table, JSON or an OSCAL assessment-results document.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from privatevault.cli.audit import DsnFile, _ledger
from privatevault.cli.client import ApiError, CaFile, Insecure, ReadApiClient, Server, TokenFile
from privatevault.cli.output import Format, console, emit, fail
from privatevault.compliance import history, oscal
from privatevault.compliance.score import Score, pooled
from privatevault.errors import PrivateVaultError

app = typer.Typer(help="Compliance posture from the audit ledger.", no_args_is_help=True)

#: The idempotency keys of compliance-state records start with it (``complianceframework/<uid>/compliance-state/…``).
KEY_PREFIX = "complianceframework/"
NOTHING = "no framework has been evaluated yet: the ledger holds no compliance-state record"


class ReportFormat(StrEnum):
    table = "table"
    json = "json"
    oscal = "oscal"


def _at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--at {text!r} is not an RFC 3339 time such as 2026-01-31T12:00:00Z", code=2)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _from_database(dsn_file: Path | None, until: datetime | None) -> list[dict[str, Any]]:
    ledger = _ledger(dsn_file)
    try:
        found = ledger.latest_per_resource(KEY_PREFIX, history.ACTION, until=until)
    except PrivateVaultError as exc:
        fail(str(exc))
    finally:
        ledger.close()
    return [json.loads(record.canonical) for record in found]


def _from_api(client: ReadApiClient, tenant: str | None, until: datetime | None) -> list[dict[str, Any]]:
    """Every compliance-state record the token may read (the read API has no latest-per-pair query)."""
    params: dict[str, Any] = {"action": history.ACTION, "tenant": tenant, "limit": 1000}
    if until is not None:
        params["until"] = (until + timedelta(microseconds=1)).isoformat()  # the API's until is exclusive
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        for item in client.pages("/api/v1/audit", params):
            body = json.loads(item["canonical"])
            uid = str((body.get("details") or {}).get("frameworkUid"))
            latest[uid, str(body.get("tenant"))] = body
    except ApiError as exc:
        fail(str(exc))
    return sorted(latest.values(), key=lambda body: int(body["seq"]))


def states(records: Iterable[Mapping[str, Any]]) -> list[history.State]:
    """The records as states, each one's own fields and score checked (a report of a record that
    does not recompute would be wrong): the first problem is an error."""
    bodies = list(records)
    folded = history.fold(bodies, starts={int(body["seq"]) for body in bodies})
    if folded.problems:
        fail(f"{folded.problems[0]}; run `pvctl audit verify`")
    return sorted(folded.latest().values(), key=lambda s: (s.framework, s.tenant))


def _counts(state: history.State) -> dict[str, int]:
    return {
        "pass": state.count("pass"),
        "fail": state.count("fail"),
        "unknown": state.count("unknown"),
        "notApplicable": state.count("not-applicable"),
        "excepted": state.count("excepted"),
    }


def document(found: list[history.State]) -> dict[str, Any]:
    """The stable JSON form: frameworks (by name), each with its pooled score and its tenants."""
    frameworks: dict[str, list[history.State]] = {}
    for state in found:
        frameworks.setdefault(state.framework_uid, []).append(state)
    out = []
    for group in frameworks.values():
        first, total = group[0], pooled(Score(s.earned, s.possible) for s in group)
        out.append(
            {
                "framework": first.framework,
                "frameworkUid": first.framework_uid,
                "standard": first.standard,
                "version": first.version,
                "score": total.value,
                "earned": total.earned,
                "possible": total.possible,
                "tenants": [
                    {
                        "tenant": s.tenant,
                        "seq": s.seq,
                        "time": s.time,
                        "generation": s.generation,
                        "score": s.score,
                        "earned": s.earned,
                        "possible": s.possible,
                        "counts": _counts(s),
                        "failing": s.failing(),
                        "controls": {cid: dict(c) for cid, c in sorted(s.controls.items())},
                    }
                    for s in group
                ],
            }
        )
    return {"frameworks": out}


def _row(state: history.State) -> dict[str, Any]:
    counts = _counts(state)
    return {
        "framework": state.framework,
        "tenant": state.tenant,
        "score": "-" if state.score is None else state.score,
        "pass": counts["pass"],
        "fail": counts["fail"],
        "unknown": counts["unknown"],
        "n/a": counts["notApplicable"],
        "excepted": counts["excepted"],
        "failing": ", ".join(state.failing()) or "-",
        "record": state.seq,
    }


@app.command()
def report(
    framework: Annotated[str | None, typer.Option(help="Only this ComplianceFramework (its name or uid).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", help="table, json, or oscal (OSCAL assessment-results JSON).")
    ] = ReportFormat.table,
    at: Annotated[str | None, typer.Option(help="The state at this time (RFC 3339) instead of the latest.")] = None,
    dsn_file: DsnFile = None,
    server: Server = None,
    token_file: TokenFile = None,
    ca_file: CaFile = None,
    insecure: Insecure = False,
) -> None:
    """The latest compliance state per framework and tenant: score, control counts and failing
    controls (from the database, or from the read API with --server)."""
    until = _at(at)
    if server:
        bodies = _from_api(ReadApiClient.of(server, token_file, ca_file, insecure), tenant, until)
    else:
        bodies = _from_database(dsn_file, until)
    if not bodies:
        fail(NOTHING + (f" at or before {at}" if at else ""))
    found = [
        s
        for s in states(bodies)
        if (framework is None or framework in (s.framework, s.framework_uid)) and (tenant is None or s.tenant == tenant)
    ]
    if not found:
        which = " and ".join(
            part for part in (framework and f"framework {framework}", tenant and f"tenant {tenant}") if part
        )
        fail(f"no compliance-state record of {which}: it has not been evaluated, or the name is wrong")
    if fmt is ReportFormat.oscal:
        print(json.dumps(oscal.assessment_results(found), indent=2, sort_keys=True))
    elif fmt is ReportFormat.json:
        print(json.dumps(document(found), indent=2, sort_keys=True))
    else:
        emit([_row(s) for s in found], fmt=Format.table, title="compliance")
        scores = document(found)["frameworks"]
        for entry in scores:
            shown = "-" if entry["score"] is None else entry["score"]
            console.print(f"{entry['framework']}: score {shown} over {len(entry['tenants'])} tenant(s)")
