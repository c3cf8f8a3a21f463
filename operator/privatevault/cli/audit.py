"""pvctl audit: read and verify the ledger."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from privatevault.ledger import Ledger, verify_chain
from privatevault.ledger.event import Record

from .output import Format, console, emit, errors

app = typer.Typer(help="Read and verify the audit ledger.", no_args_is_help=True)

DsnFile = Annotated[
    Path | None,
    typer.Option(
        help="File holding the ledger's PostgreSQL URL; default: PRIVATEVAULT_LEDGER_DSN[_FILE].",
        exists=True,
        dir_okay=False,
    ),
]


def _ledger(dsn_file: Path | None) -> Ledger:
    dsn = dsn_file.read_text().strip() if dsn_file else os.environ.get("PRIVATEVAULT_LEDGER_DSN")
    if not dsn and os.environ.get("PRIVATEVAULT_LEDGER_DSN_FILE"):
        dsn = Path(os.environ["PRIVATEVAULT_LEDGER_DSN_FILE"]).read_text().strip()
    if not dsn:
        errors.print("[red]error:[/red] no ledger: pass --dsn-file or set PRIVATEVAULT_LEDGER_DSN")
        raise typer.Exit(2)
    return Ledger(dsn)


@app.command()
def verify(
    dsn_file: DsnFile = None,
    fmt: Annotated[Format, typer.Option("--format", help="table or json")] = Format.table,
) -> None:
    """Recompute every record hash and link; name the first bad sequence number."""
    ledger = _ledger(dsn_file)
    count = 0
    with Progress(console=errors, transient=True, disable=fmt is Format.json) as progress:
        task = progress.add_task("verifying", total=None)

        def stream() -> Iterator[Record]:
            nonlocal count
            for record in ledger.records():
                count += 1
                progress.advance(task)
                yield record

        broken = verify_chain(stream())
    ledger.close()
    result: dict[str, object] = {"ok": broken is None, "records": count}
    if broken is not None:
        result |= {"firstBadSeq": broken.seq, "problem": broken.problem}
    if fmt is Format.json:
        print(json.dumps(result, sort_keys=True))
    elif broken is None:
        console.print(f"[green]ledger verified:[/green] {count} records, chain intact")
    else:
        console.print(f"[red]ledger broken at seq {broken.seq}:[/red] {broken.problem}")
    if broken is not None:
        raise typer.Exit(1)


@app.command()
def tail(
    dsn_file: DsnFile = None,
    lines: Annotated[int, typer.Option("-n", help="How many of the latest records.")] = 20,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's records.")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table or json")] = Format.table,
) -> None:
    """Show the latest records."""
    ledger = _ledger(dsn_file)
    records = list(ledger.records(tenant=tenant))[-lines:]
    ledger.close()
    rows = []
    for record in records:
        body = json.loads(record.canonical)
        resource = body["resource"]
        rows.append(
            {
                "seq": record.seq,
                "time": body["time"],
                "tenant": body["tenant"],
                "action": body["action"],
                "resource": "/".join(filter(None, (resource["kind"], resource.get("namespace"), resource["name"]))),
                "hash": record.record_hash.hex()[:16],
            }
        )
    emit(rows, fmt=fmt, title="audit ledger")
