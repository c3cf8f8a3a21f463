"""pvctl: run the operator, manage CRDs and the ledger, verify the audit trail, run the demo."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from pathlib import Path
from typing import Annotated

import kopf
import typer

from privatevault import __version__
from privatevault.api import crdgen
from privatevault.app import App, build
from privatevault.cli import approvals, audit, compliance, demo, evidence, quorum, reanchor, status, witness
from privatevault.cli.output import errors
from privatevault.errors import PrivateVaultError
from privatevault.handlers import registry, tune_transport
from privatevault.leader import LEASE, Election, Timing
from privatevault.ledger.schema import migrate
from privatevault.readapi import openapi
from privatevault.settings import Settings
from privatevault.standby import Standby

app = typer.Typer(
    name="pvctl",
    help="PrivateVault: tenant isolation, post-quantum keys, quorum approvals and tamper-evident audit.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
operator_app = typer.Typer(help="Run the operator.", no_args_is_help=True)
crds_app = typer.Typer(help="The CustomResourceDefinitions generated from the API models.", no_args_is_help=True)
ledger_app = typer.Typer(help="The audit ledger's database.", no_args_is_help=True)
app.add_typer(operator_app, name="operator")
app.add_typer(crds_app, name="crds")
app.add_typer(ledger_app, name="ledger")
audit.app.command("reanchor")(reanchor.reanchor)
app.add_typer(audit.app, name="audit")
app.add_typer(demo.app, name="demo")
app.add_typer(approvals.app, name="approvals")
app.add_typer(quorum.app, name="quorum")
app.add_typer(witness.app, name="witness")
app.add_typer(status.tenant_app, name="tenant")
app.command("status")(status.status)
api_app = typer.Typer(help="The read API.", no_args_is_help=True)
app.add_typer(api_app, name="api")
app.add_typer(evidence.app, name="evidence")
app.add_typer(compliance.app, name="compliance")


@app.command()
def version() -> None:
    """Print pvctl's version."""
    print(__version__)


@operator_app.command("run")
def operator_run(
    kubeconfig: Annotated[
        Path | None,
        typer.Option(help="Kubeconfig to use; default: in-cluster, then ~/.kube/config.", exists=True, dir_okay=False),
    ] = None,
    liveness: Annotated[
        str | None, typer.Option(help="Serve a liveness probe, e.g. http://0.0.0.0:8080/healthz.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every handler step.")] = False,
) -> None:
    """Run the operator in the foreground against a cluster (ledger DSN from PRIVATEVAULT_LEDGER_DSN[_FILE])."""
    if kubeconfig is not None:
        os.environ["KUBECONFIG"] = str(kubeconfig.resolve())
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    kopf.configure(verbose=verbose, log_prefix=True)
    try:
        built = build(settings)
    except PrivateVaultError as exc:
        errors.print(f"[red]error:[/red] the operator cannot start: {exc}")
        raise typer.Exit(1) from exc
    if settings.leader_election:
        _lead(built, settings, liveness)
    tune_transport()
    kopf.run(registry=registry(built), standalone=True, clusterwide=True, liveness_endpoint=liveness)


def _lead(built: App, settings: Settings, liveness: str | None) -> None:
    """Wait until this replica holds the Lease, then keep it; a lost Lease ends the process at once
    (exit code 1), so a former leader never reconciles beside the new one."""
    duration = settings.lease_seconds
    timing = Timing(duration=duration, deadline=duration * 2 / 3, retry=max(0.5, duration / 7.5))
    election = Election(built.cluster.live, settings.namespace, f"{socket.gethostname()}-{os.getpid()}", timing=timing)
    errors.print(f"waiting to lead (Lease {settings.namespace}/{LEASE})", highlight=False)
    with Standby(liveness) if liveness else contextlib.nullcontext():
        election.acquire()
    errors.print(f"leading as {election.identity}", highlight=False)
    election.keep(on_lost=lambda: os._exit(1), stop=threading.Event())


@crds_app.command("generate")
def crds_generate(directory: Annotated[Path, typer.Argument(help="Where to write the CRDs.")] = Path("crds")) -> None:
    """Write the CRDs generated from the models."""
    for path in crdgen.write(directory):
        print(path)


@crds_app.command("verify")
def crds_verify(directory: Annotated[Path, typer.Argument(help="The committed CRDs.")] = Path("crds")) -> None:
    """Fail when the committed CRDs differ from what the models generate."""
    drifted = crdgen.drift(directory)
    if drifted:
        errors.print(f"[red]CRDs drift from the models:[/red] {', '.join(drifted)}; run `make generate` and commit")
        raise typer.Exit(1)
    print(f"CRDs in {directory} match the models")


@api_app.command("openapi")
def api_openapi(
    path: Annotated[Path, typer.Argument(help="The committed OpenAPI document.")] = Path("docs/openapi/read-api.json"),
    check: Annotated[bool, typer.Option("--check", help="Fail when the file drifts from the models.")] = False,
) -> None:
    """Write (or --check) the read API's OpenAPI document generated from its models."""
    if check:
        if openapi.drifted(path):
            errors.print(f"[red]{path} drifts from the read API's models:[/red] run `make generate` and commit")
            raise typer.Exit(1)
        print(f"{path} matches the read API's models")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(openapi.render())
    print(path)


@ledger_app.command("migrate")
def ledger_migrate(
    owner_dsn_file: Annotated[
        Path, typer.Option(help="File holding the owner role's PostgreSQL URL.", exists=True, dir_okay=False)
    ],
    operator_role: Annotated[str, typer.Option(help="Role the operator connects as.")] = "privatevault_operator",
) -> None:
    """Create or upgrade the ledger schema as its owner and grant the operator INSERT and SELECT."""
    revision = migrate(owner_dsn_file.read_text().strip(), operator_role=operator_role)
    print(json.dumps({"revision": revision, "operatorRole": operator_role}))
