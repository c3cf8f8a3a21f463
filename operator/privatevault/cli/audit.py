"""pvctl audit: read, prove and verify the ledger."""

from __future__ import annotations

import base64
import json
import os
import sys
from collections import deque
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from privatevault.cli import remote_verify
from privatevault.cli.client import ApiError, CaFile, Insecure, ReadApiClient, Server, TokenFile
from privatevault.cli.output import Format, console, emit, errors, fail
from privatevault.cluster import Cluster
from privatevault.errors import IntegrityError, PrivateVaultError
from privatevault.ledger import merkle
from privatevault.ledger.checkpoint import (
    Checkpoint,
    CheckpointError,
    KeyVerifier,
    parse_and_verify,
    parse_verifier_key,
)
from privatevault.ledger.cosignature import CosignatureVerifier, parse_cosignature_key
from privatevault.ledger.event import Record
from privatevault.ledger.remembered import RememberedCheckpoint, default_path
from privatevault.ledger.store import Ledger
from privatevault.ledger.verify import Report
from privatevault.ledger.verify import verify as verify_ledger
from privatevault.manifests import ledger as ledger_manifests
from privatevault.settings import ledger_dsn

app = typer.Typer(help="Read, prove and verify the audit ledger.", no_args_is_help=True)

DsnFile = Annotated[
    Path | None,
    typer.Option(
        help="File holding the ledger's PostgreSQL URL; default: PRIVATEVAULT_LEDGER_DSN[_FILE].",
        exists=True,
        dir_okay=False,
    ),
]
FormatOption = Annotated[Format, typer.Option("--format", help="table or json")]
Kubeconfig = Annotated[
    Path | None,
    typer.Option(help="Cluster whose ConfigMap holds the published checkpoint.", exists=True, dir_okay=False),
]
Namespace = Annotated[str, typer.Option(help="The operator's namespace.")]
CheckpointFile = Annotated[
    Path | None,
    typer.Option("--checkpoint", help="A published checkpoint (signed note) file.", exists=True, dir_okay=False),
]
VerifierKeys = Annotated[
    list[str] | None,
    typer.Option(
        "--verifier-key", help="Pinned checkpoint verifier key (repeatable); default: the keys published beside it."
    ),
]


def _ledger(dsn_file: Path | None) -> Ledger:
    if dsn_file is not None:
        return Ledger(dsn_file.read_text().strip())
    try:
        return Ledger(ledger_dsn())
    except ValueError as exc:
        errors.print(f"[red]error:[/red] {exc}; or pass --dsn-file")
        raise typer.Exit(2) from exc


def _published(kubeconfig: Path | None, namespace: str, checkpoint: Path | None) -> tuple[bytes | None, list[str]]:
    """The published checkpoint note and the verifier keys published with it."""
    if checkpoint is not None:
        return checkpoint.read_bytes(), []
    if kubeconfig is None and not os.environ.get("KUBECONFIG"):
        return None, []
    cluster = Cluster.connect(kubeconfig or Path(os.environ["KUBECONFIG"]))
    try:
        found = cluster.get("v1", "ConfigMap", ledger_manifests.CHECKPOINT_CONFIGMAP, namespace)
    finally:
        cluster.close()
    data = (found or {}).get("data") or {}
    note = data.get(ledger_manifests.CHECKPOINT_KEY)
    keys = [line for line in data.get(ledger_manifests.VERIFIER_KEYS_KEY, "").splitlines() if line]
    return (note.encode() if note else None), keys


def _verifiers(pinned: list[str] | None, published: list[str]) -> list[KeyVerifier]:
    keys = pinned or published
    if not keys:
        errors.print("[red]error:[/red] no verifier keys: pass --verifier-key or --kubeconfig (published keys)")
        raise typer.Exit(2)
    try:
        return [parse_verifier_key(key) for key in keys]
    except CheckpointError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def verify(
    dsn_file: DsnFile = None,
    kubeconfig: Kubeconfig = None,
    namespace: Namespace = "privatevault-system",
    checkpoint: CheckpointFile = None,
    verifier_key: VerifierKeys = None,
    since: Annotated[
        Path | None,
        typer.Option(
            help="Verify incrementally from this trusted checkpoint (signed note file).", exists=True, dir_okay=False
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            help="File remembering the last checkpoint verified (refuses rollbacks and forks);"
            " default: $XDG_STATE_HOME/privatevault/checkpoints/<origin>+<key ID>.",
            dir_okay=False,
        ),
    ] = None,
    witness_key: Annotated[
        list[str] | None,
        typer.Option(
            "--witness-key",
            help="A witness's cosignature verifier key (repeatable): the published checkpoint must carry"
            " its cosignature (C2SP tlog-cosignature).",
        ),
    ] = None,
    witness_threshold: Annotated[
        int | None,
        typer.Option(help="How many of the --witness-key witnesses must have cosigned; default: all.", min=1),
    ] = None,
    forget_state: Annotated[
        bool,
        typer.Option(
            "--forget-state",
            help="Forget the remembered checkpoint first: only after reviewing a deliberate re-anchor"
            " (docs/ledger-threat-model.md).",
        ),
    ] = False,
    fmt: FormatOption = Format.table,
    server: Server = None,
    token_file: TokenFile = None,
    ca_file: CaFile = None,
    insecure: Insecure = False,
) -> None:
    """Recompute every record hash, link, tree head and stored node; check the stored, published and
    remembered checkpoints; name the first bad record. With --server: through the read API, against
    the --verifier-key keys only."""
    if server:
        _verify_remote(ReadApiClient.of(server, token_file, ca_file, insecure), verifier_key, fmt)
        return
    note, published_keys = _published(kubeconfig, namespace, checkpoint)
    verifiers = _verifiers(verifier_key, published_keys)
    witnesses = _witnesses(witness_key or [], witness_threshold)
    trusted: Checkpoint | None = None
    if since is not None:
        try:
            trusted = parse_and_verify(since.read_bytes(), verifiers)
        except CheckpointError as exc:
            errors.print(f"[red]error:[/red] the trusted checkpoint does not verify: {exc}")
            raise typer.Exit(2) from exc
    memory = RememberedCheckpoint(state or default_path(verifiers))
    remembered = _remembered(memory, verifiers, forget=forget_state)
    ledger = _ledger(dsn_file)
    try:
        with Progress(
            TextColumn("verifying"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,}"),
            TimeRemainingColumn(),
            console=errors,
            transient=True,
            disable=fmt is Format.json or not sys.stderr.isatty(),
        ) as progress:
            task = progress.add_task("verify", total=None)
            report = verify_ledger(
                ledger,
                verifiers=verifiers,
                published=note,
                trusted=trusted,
                remembered=remembered,
                witnesses=witnesses,
                witness_threshold=witness_threshold,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    except PrivateVaultError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    finally:
        ledger.close()
    remembers: int | None = None if remembered is None else remembered.size
    if report.ok and report.latest is not None:
        latest = parse_and_verify(report.latest, verifiers)
        if remembers is None or latest.size > remembers:
            memory.save(report.latest)
            remembers = latest.size
    _print_report(report, fmt=fmt, remembers=remembers, state=memory.path)
    if not report.ok:
        raise typer.Exit(1)


def _witnesses(keys: list[str], threshold: int | None) -> list[CosignatureVerifier]:
    try:
        witnesses = [parse_cosignature_key(key) for key in keys]
    except CheckpointError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if threshold is not None and threshold > len(witnesses):
        errors.print(f"[red]error:[/red] --witness-threshold {threshold} needs at least {threshold} --witness-key")
        raise typer.Exit(2)
    return witnesses


def _remembered(memory: RememberedCheckpoint, verifiers: list[KeyVerifier], *, forget: bool) -> Checkpoint | None:
    if forget:
        memory.forget()
    try:
        return memory.load(verifiers)
    except CheckpointError as exc:
        errors.print(
            f"[red]error:[/red] {exc}; if the log's keys were changed deliberately, review why and pass --forget-state"
        )
        raise typer.Exit(1) from exc


def _print_report(report: Report, *, fmt: Format, remembers: int | None, state: Path) -> None:
    result: dict[str, Any] = {
        "ok": report.ok,
        "records": report.records,
        "verifiedFrom": report.verified_from,
        "checkpoints": report.checkpoints,
        "nodes": report.nodes,
        "publishedSize": report.published_size,
        "rememberedSize": report.remembered_size,
        "cosignedBy": report.cosigned_by,
        "remembers": remembers,
        "state": str(state),
    }
    if not report.ok:
        result |= {"firstBadSeq": report.first_bad_seq, "problem": report.problem}
    if fmt is Format.json:
        print(json.dumps(result, sort_keys=True))
    elif report.ok:
        published = (
            f", published checkpoint at {report.published_size}"
            if report.published_size is not None
            else " [yellow](no published checkpoint checked)[/yellow]"
        )
        before = (
            f", consistent with the checkpoint at {report.remembered_size} remembered before"
            if report.remembered_size is not None
            else ""
        )
        if report.cosigned_by:
            before += f", cosigned by {', '.join(report.cosigned_by)}"
        now = f"; remembers the checkpoint at {remembers} in {state}" if remembers is not None else ""
        console.print(
            f"[green]ledger verified:[/green] {report.records:,} records from seq {report.verified_from},"
            f" {report.nodes:,} Merkle nodes, {report.checkpoints} stored checkpoints{published}{before}{now}"
        )
    else:
        where = f"seq {report.first_bad_seq}" if report.first_bad_seq is not None else "the ledger"
        console.print(f"[red]ledger does not verify at {where}:[/red] {report.problem}")


def _latest_head(ledger: Ledger) -> tuple[int, bytes, bytes]:
    latest = ledger.latest_checkpoint()
    if latest is None:
        errors.print("[red]error:[/red] no checkpoint yet: the operator issues one on start and every N records")
        raise typer.Exit(1)
    return latest.size, latest.root, latest.note


def _proof_line(record: Record, size: int, ledger: Ledger) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "record": json.loads(record.canonical),
        "canonical": base64.b64encode(record.canonical).decode(),
        "prevHash": record.prev_hash.hex(),
        "recordHash": record.record_hash.hex(),
        "leafIndex": record.seq - 1,
        "treeSize": size,
        "inclusionProof": [base64.b64encode(node).decode() for node in ledger.inclusion_proof(record.seq, size)],
    }


@app.command()
def prove(
    seq: Annotated[int, typer.Argument(help="Sequence number of the record.", min=1)],
    dsn_file: DsnFile = None,
) -> None:
    """Print an RFC 9162 inclusion proof of record SEQ against the latest checkpoint (JSON), checked first."""
    ledger = _ledger(dsn_file)
    try:
        size, root, note = _latest_head(ledger)
        record = ledger.record(seq)
        if record is None or seq > size:
            errors.print(f"[red]error:[/red] record {seq} is not covered by the latest checkpoint (size {size})")
            raise typer.Exit(1)
        line = _proof_line(record, size, ledger)
    finally:
        ledger.close()
    proof = [base64.b64decode(node) for node in line["inclusionProof"]]
    if not merkle.verify_inclusion(merkle.leaf_hash(record.record_hash), seq - 1, size, proof, root):
        raise IntegrityError(f"the inclusion proof of record {seq} does not verify: run `pvctl audit verify`", seq=seq)
    print(json.dumps(line | {"rootHash": base64.b64encode(root).decode(), "checkpoint": note.decode()}, indent=2))


@app.command()
def export(
    start: Annotated[int, typer.Option("--from", help="First sequence number.", min=1)] = 1,
    end: Annotated[
        int | None, typer.Option("--to", help="Last sequence number; default: the latest checkpoint.")
    ] = None,
    dsn_file: DsnFile = None,
    output: Annotated[Path | None, typer.Option("-o", help="Write here instead of stdout.")] = None,
) -> None:
    """NDJSON of records with inclusion proofs against the latest checkpoint; the checkpoint is the last line."""
    ledger = _ledger(dsn_file)
    out = output.open("w") if output else sys.stdout
    try:
        size, root, note = _latest_head(ledger)
        last = min(end or size, size)
        with Progress(console=errors, transient=True, disable=output is None or not sys.stderr.isatty()) as progress:
            task = progress.add_task("exporting", total=max(0, last - start + 1))
            for record in ledger.records(start=start):
                if record.seq > last:
                    break
                out.write(json.dumps(_proof_line(record, size, ledger), sort_keys=True) + "\n")
                progress.advance(task)
        out.write(
            json.dumps({"checkpoint": note.decode(), "treeSize": size, "rootHash": base64.b64encode(root).decode()})
            + "\n"
        )
    finally:
        ledger.close()
        if output:
            out.close()


@app.command()
def tail(
    dsn_file: DsnFile = None,
    lines: Annotated[int, typer.Option("-n", help="How many of the latest records.")] = 20,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's records.")] = None,
    fmt: FormatOption = Format.table,
    server: Server = None,
    token_file: TokenFile = None,
    ca_file: CaFile = None,
    insecure: Insecure = False,
) -> None:
    """Show the latest records (from the read API with --server, else from the database)."""
    if server:
        try:
            records = _tail_from_api(ReadApiClient.of(server, token_file, ca_file, insecure), lines, tenant)
        except ApiError as exc:
            fail(str(exc))
    else:
        ledger = _ledger(dsn_file)
        try:
            size = ledger.size()
            records = list(ledger.records(tenant=tenant, start=1 if tenant else max(1, size - lines + 1)))[-lines:]
        finally:
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


def _tail_from_api(client: ReadApiClient, lines: int, tenant: str | None) -> list[Record]:
    """The last ``lines`` records the token may read: from the ledger's size when the token may
    read the status, else by paging through the tenant's records."""
    start = 1
    if tenant is None:
        try:
            start = max(1, int(client.get("/api/v1/status")["ledger"]["size"]) - lines + 1)
        except ApiError as exc:
            if exc.status != 403:
                raise
    last: deque[Record] = deque(maxlen=lines)
    for item in client.pages("/api/v1/audit", {"tenant": tenant, "seqFrom": start, "limit": 1000}):
        last.append(
            Record(
                seq=int(item["seq"]),
                canonical=item["canonical"].encode(),
                prev_hash=base64.b64decode(item["prevHash"]),
                record_hash=base64.b64decode(item["recordHash"]),
            )
        )
    return list(last)


def _verify_remote(client: ReadApiClient, pinned: list[str] | None, fmt: Format) -> None:
    if not pinned:
        fail("--server needs --verifier-key: the checkpoint is checked against pinned keys only", code=2)
    try:
        report = remote_verify.verify(client, _verifiers(pinned, []))
    except ApiError as exc:
        fail(str(exc), code=2)
    emit([report.row()], fmt=fmt, title="audit ledger (through the read API)")
    if not report.ok:
        raise typer.Exit(1)
