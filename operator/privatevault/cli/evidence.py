"""pvctl evidence: ask for a bundle (export), fetch it (get: from the operator's volume, or the
read API with ``--server``), and check it offline (verify).

``verify`` needs nothing but the bundle and the keys: no database, no cluster, no network. The
keys are the ones the operator publishes in ConfigMap ``privatevault-ledger-checkpoint``
(``verifier-keys`` and ``evidence-keys``), obtained through a channel the auditor trusts, and
the witnesses' keys from their operators.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from privatevault.api.v1alpha1 import API_VERSION
from privatevault.cli.client import ApiError, CaFile, Insecure, ReadApiClient, Server, TokenFile
from privatevault.cli.output import Format, console, fail
from privatevault.cli.session import session
from privatevault.errors import PrivateVaultError
from privatevault.evidence import verifier
from privatevault.evidence.exporter import finished
from privatevault.ledger.checkpoint import CheckpointError, parse_verifier_key
from privatevault.ledger.cosignature import parse_cosignature_key

app = typer.Typer(help="Evidence bundles for auditors: export, get, verify offline.", no_args_is_help=True)

FormatOption = Annotated[Format, typer.Option("--format", help="table or json")]
Kubeconfig = Annotated[
    Path | None, typer.Option(help="Kubeconfig; default: $KUBECONFIG, in-cluster, ~/.kube/config.", dir_okay=False)
]


@app.command()
def verify(
    bundle: Annotated[Path, typer.Argument(help="The bundle (.tar.gz).", exists=True, dir_okay=False)],
    verifier_key: Annotated[
        list[str],
        typer.Option(
            "--verifier-key",
            help="A published key (repeatable): the ledger's checkpoint keys and the evidence keys (…/evidence).",
        ),
    ],
    witness_key: Annotated[
        list[str] | None, typer.Option("--witness-key", help="A witness that must have cosigned (repeatable).")
    ] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Verify a bundle offline; exit 1 naming the first problem."""
    try:
        keys = [parse_verifier_key(key) for key in verifier_key]
        witnesses = [parse_cosignature_key(key) for key in witness_key or []]
    except CheckpointError as exc:
        fail(str(exc), code=2)
    started = time.monotonic()
    with console.status("verifying the bundle…", spinner="dots") if fmt is Format.table else _Quiet():
        report = verifier.verify(bundle, keys, witnesses)
    elapsed = time.monotonic() - started
    if fmt is Format.json:
        print(json.dumps({**report.to_json(), "seconds": round(elapsed, 3)}, indent=2, sort_keys=True))
    elif report.problem is None:
        console.print(
            f"[green]verified[/green] {bundle}: {report.records} record(s) of {', '.join(report.tenants)} from"
            f" {report.window['from']} to {report.window['to']}, {report.approvals} approval(s),"
            f" {report.decisions} decision(s) ({report.rerun} re-run), {report.files} file(s);"
            f" checkpoint {report.checkpoint}"
            f" (consistent with {report.latest}), cosigned by {', '.join(report.witnesses) or 'no witness asked'}"
            f" ({elapsed:.1f} s)",
            highlight=False,
        )
        for state in report.compliance:
            console.print(_compliance_line(state), highlight=False)
    else:
        console.print(f"[red]FAILED[/red] ({report.problem.check}) {escape(str(report.problem))}", highlight=False)
    if report.problem is not None:
        raise typer.Exit(1)


def _compliance_line(state: dict[str, Any]) -> str:
    """One framework and tenant's score at the window's start and end, as recomputed."""

    def score(at: dict[str, Any] | None) -> str:
        if at is None:
            return "not evaluated"
        return f"{'-' if at['score'] is None else at['score']} (record {at['seq']})"

    end = state["end"]
    failing = f"; failing: {', '.join(end['failing'])}" if end["failing"] else ""
    return (
        f"compliance {state['framework']} / {state['tenant']}: score {score(state['start'])} at the start,"
        f" {score(end)} at the end, {state['changes']} change(s) in the window{failing}"
    )


class _Quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


@app.command()
def export(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the EvidenceExport to create.")],
    tenant: Annotated[list[str], typer.Option("--tenant", help="A tenant to export (repeatable).")],
    start: Annotated[str, typer.Option("--from", help="Window start, RFC 3339 (included).")],
    end: Annotated[str, typer.Option("--to", help="Window end, RFC 3339 (excluded), in the past.")],
    include: Annotated[
        list[str] | None,
        typer.Option(help="Audit, Approvals, Policies, ComplianceResults, KeyMetadata (repeatable); default: all."),
    ] = None,
    destination: Annotated[
        str | None, typer.Option(help="Folder on the operator's volume; default: the API's default.")
    ] = None,
    kubeconfig: Kubeconfig = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Create an EvidenceExport; it waits for approvals (pvctl approvals create) when the tenants are gated."""
    spec: dict[str, Any] = {"tenants": tenant, "window": {"from": start, "to": end}}
    if include:
        spec["include"] = include
    if destination:
        spec["destination"] = {"type": "Filesystem", "path": destination}
    body = {"apiVersion": API_VERSION, "kind": "EvidenceExport", "metadata": {"name": name}, "spec": spec}
    cluster = session(ctx).connect(kubeconfig)
    try:
        created = cluster.create(body)
    except PrivateVaultError as exc:
        fail(str(exc))
    finally:
        cluster.close()
    if fmt is Format.json:
        print(json.dumps(created or body, indent=2, sort_keys=True))
        return
    console.print(
        f"evidenceexport/{name} created; it waits for approvals if its tenants are gated:"
        f" `pvctl evidence get {name}` shows what to sign",
        highlight=False,
    )


@app.command()
def get(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The EvidenceExport.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Copy the finished bundle here (its digest is checked); with --server: NAME.tar.gz."
        ),
    ] = None,
    kubeconfig: Kubeconfig = None,
    server: Server = None,
    token_file: TokenFile = None,
    ca_file: CaFile = None,
    insecure: Insecure = False,
    fmt: FormatOption = Format.table,
) -> None:
    """Show an export's state (and what to sign while it waits); with --output, fetch the bundle.

    Without --server the bundle is read at its location on the operator's volume (the same
    machine, or the volume mounted here). With --server it is downloaded from the read API
    (/api/v1/evidence/NAME) with the token of --token-file, else the kubeconfig's: written aside,
    its SHA-256 checked against the one the API states, then renamed into place.
    """
    if server:
        _download(name, output or Path(f"{name}.tar.gz"), server, token_file, ca_file, insecure, kubeconfig, fmt)
        return
    cluster = session(ctx).connect(kubeconfig)
    try:
        found = cluster.get(API_VERSION, "EvidenceExport", name)
    finally:
        cluster.close()
    if found is None:
        fail(f"no EvidenceExport named {name}")
    state = found.get("status") or {}
    if output is not None:
        path = finished(found)
        if path is None:
            fail(f"evidenceexport/{name} has no finished bundle here yet (Ready, and its location readable)")
        shutil.copyfile(path, output)
        digest = "sha256:" + hashlib.sha256(output.read_bytes()).hexdigest()
        if digest != state.get("digest"):
            output.unlink()
            fail(f"the bundle at {path} has digest {digest}, not {state.get('digest')} as the status says")
    if fmt is Format.json:
        print(json.dumps({"name": name, "status": state, "output": str(output) if output else None}, indent=2))
        return
    conditions = {c.get("type"): c for c in state.get("conditions") or []}
    ready = conditions.get("Ready") or {}
    reconciling = conditions.get("Reconciling") or {}
    reason = ready.get("reason") or reconciling.get("reason")
    console.print(
        f"evidenceexport/{name}: Ready={ready.get('status', 'Unknown')} ({reason})"
        f" {ready.get('message') or reconciling.get('message', '')}",
        highlight=False,
    )
    for pending in state.get("pending") or []:
        console.print(f"  waits for {pending.get('approvals')} approvals: {pending.get('signWith')}", highlight=False)
    if state.get("digest"):
        console.print(
            f"  bundle {state.get('location')} {state.get('digest')} ({state.get('size')} bytes, {state.get('records')}"
            f" records, checkpoint {state.get('checkpoint')})",
            highlight=False,
        )
    if output is not None:
        console.print(f"  copied to {output}; verify it with `pvctl evidence verify {output} --verifier-key …`")


def _download(
    name: str,
    output: Path,
    server: str,
    token_file: Path | None,
    ca_file: Path | None,
    insecure: bool,
    kubeconfig: Path | None,
    fmt: Format,
) -> None:
    """The bundle from the read API: 404 an unknown or unfinished export, 403 a tenant not granted."""
    try:
        client = ReadApiClient.of(server, token_file, ca_file, insecure, kubeconfig=kubeconfig, from_kubeconfig=True)
        with _Progress(name, quiet=fmt is Format.json) as progress:
            got = client.download(f"/api/v1/evidence/{urllib.parse.quote(name, safe='')}", output, progress=progress)
    except ApiError as exc:
        fail(_refusal(name, exc), code=2 if exc.status == 0 else 1)
    except PrivateVaultError as exc:  # a digest that does not match, or a file that cannot be written
        fail(str(exc))
    if fmt is Format.json:
        print(json.dumps({"name": name, "output": str(got.path), "size": got.size, "digest": got.digest}, indent=2))
        return
    console.print(
        f"evidenceexport/{name}: {got.size} bytes to {got.path}, digest {got.digest} as the read API states;"
        f" verify it with `pvctl evidence verify {got.path} --verifier-key …`",
        highlight=False,
    )


def _refusal(name: str, exc: ApiError) -> str:
    if exc.status == 404:
        return f"no finished bundle of evidenceexport/{name} on the read API (unknown, or not Ready yet): {exc}"
    if exc.status == 403:
        return f"this token may not read every tenant of evidenceexport/{name} (RBAC: get evidence): {exc}"
    if exc.status == 401:
        return f"the read API did not accept the token: {exc}"
    return str(exc)


class _Progress:
    """Bytes received on stderr, for bundles large enough to wait for (from 8 MiB on)."""

    def __init__(self, name: str, *, quiet: bool, every: int = 8 << 20) -> None:
        self._name, self._quiet, self._every, self._next = name, quiet, every, every

    def __call__(self, done: int, total: int | None) -> None:
        if self._quiet or done < self._next:
            return
        self._next = done + self._every
        of = f" of {total / (1 << 20):.0f} MiB ({100 * done // total}%)" if total else " MiB"
        print(f"{self._name}: {done / (1 << 20):.0f}{of}", file=sys.stderr, flush=True)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *_: object) -> None:
        if not self._quiet and self._next > self._every:
            print(f"{self._name}: done", file=sys.stderr, flush=True)
