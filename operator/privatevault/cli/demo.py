"""pvctl demo: the main job on one machine.

``up`` starts a local control plane, PostgreSQL and OpenBao (the test bench), creates the
ledger database, installs the CRDs, starts the operator, applies ``examples/`` and waits until
every Tenant is Ready; everything keeps running until ``down``. With ``--kubeconfig`` it uses a
reachable cluster instead of starting a control plane (PostgreSQL and OpenBao still run locally).
If a step fails, what was started is stopped again and the operator's log is shown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Annotated

import typer
from psycopg.conninfo import conninfo_to_dict

from privatevault.ledger.schema import bootstrap
from privatevault.testbench import Bench, BenchError
from privatevault.testbench.ports import free_port
from privatevault.testbench.process import ManagedProcess, log_tail, stop_recorded
from privatevault.testbench.secretfile import write_secret

from .output import console, errors

app = typer.Typer(
    help="Run the whole product locally: control plane, PostgreSQL, OpenBao, operator.", no_args_is_help=True
)

REPO = Path(__file__).resolve().parents[3]
OPERATOR_STATE = "operator.json"

Workdir = Annotated[Path, typer.Option(help="Where the demo keeps its state, logs and secrets.")]


def _kubectl(kubectl: Path, kubeconfig: Path, *args: str, capture: bool = False) -> str:
    done = subprocess.run(
        [str(kubectl), "--kubeconfig", str(kubeconfig), *args], check=False, text=True, capture_output=True
    )
    if done.returncode != 0:
        raise BenchError(f"kubectl {' '.join(args)} failed:\n{done.stderr.strip()}")
    if not capture and done.stdout.strip():
        console.print(done.stdout.rstrip(), highlight=False)
    return done.stdout


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback URL we built
            return bool(response.status == 200)
    except OSError:
        return False


@app.command()
def up(
    workdir: Workdir = Path(".demo"),
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            help="Use this reachable cluster instead of starting a local control plane.", exists=True, dir_okay=False
        ),
    ] = None,
    examples: Annotated[Path, typer.Option(help="Manifests to apply.")] = REPO / "examples",
    timeout: Annotated[int, typer.Option(help="Seconds to wait for the examples to be Ready.")] = 180,
) -> None:
    """Start everything, apply the examples and show their status."""
    workdir = workdir.resolve()
    if (workdir / "state.json").exists():
        errors.print(f"[yellow]a demo is already running in {workdir}[/yellow]; `make demo-down` stops it")
        raise typer.Exit(1)
    bench = Bench(workdir, progress=lambda line: console.print(f"  {line}"), control_plane=kubeconfig is None)
    operator: ManagedProcess | None = None
    try:
        console.print("[bold]starting the local services[/bold]")
        bench.start()
        bench.save_state()
        config = kubeconfig.resolve() if kubeconfig else bench.control_plane.kubeconfig
        kubectl = bench.control_plane.kubectl

        console.print("[bold]creating the ledger database[/bold]")
        database = bootstrap(bench.postgres.superuser_dsn)
        secrets = workdir / "secrets"
        secrets.mkdir(mode=0o700, exist_ok=True)
        operator_dsn = write_secret(secrets / "ledger-operator.dsn", database.operator_dsn)
        write_secret(secrets / "ledger-owner.dsn", database.owner_dsn)

        console.print("[bold]installing the CRDs[/bold]")
        _kubectl(kubectl, config, "apply", "--server-side", "-f", str(REPO / "crds"))
        _kubectl(
            kubectl,
            config,
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "-l",
            "app.kubernetes.io/part-of=privatevault",
        )

        console.print("[bold]starting the operator[/bold]")
        port = free_port()
        operator = ManagedProcess(
            "operator",
            [
                sys.executable,
                "-m",
                "privatevault",
                "operator",
                "run",
                "--kubeconfig",
                str(config),
                "--liveness",
                f"http://127.0.0.1:{port}/healthz",
            ],
            workdir / "operator.log",
            env={**os.environ, "PRIVATEVAULT_LEDGER_DSN_FILE": str(operator_dsn)},
        )
        operator.start()
        operator.wait_ready(lambda: _healthy(f"http://127.0.0.1:{port}/healthz"), timeout=60)
        (workdir / OPERATOR_STATE).write_text(json.dumps(operator.record()) + "\n")

        console.print(f"[bold]applying {examples}[/bold]")
        _kubectl(kubectl, config, "apply", "-f", str(examples))
        console.print("[bold]waiting for the tenants to be Ready[/bold]")
        _kubectl(kubectl, config, "wait", "--for=condition=Ready", f"--timeout={timeout}s", "tenants", "--all")
        _kubectl(kubectl, config, "get", "tenants")
    except BaseException as exc:
        errors.print(f"[red]the demo did not start:[/red] {exc}")
        if operator is not None:
            errors.print(f"operator log ({operator.log}):\n{log_tail(operator.log)}")
            operator.stop()
        (workdir / OPERATOR_STATE).unlink(missing_ok=True)
        bench.stop()
        raise typer.Exit(1) from exc

    console.print()
    console.print("[green bold]PrivateVault is running.[/green bold] Keep working with it:")
    console.print(f"  export KUBECONFIG={config}", highlight=False)
    console.print("  kubectl get tenants,namespaces -l app.kubernetes.io/managed-by=privatevault", highlight=False)
    console.print(f"  ledger: {_masked(database.operator_dsn)} (full URL in {operator_dsn})", highlight=False)
    console.print(f"  .venv/bin/pvctl audit tail --dsn-file {operator_dsn}", highlight=False)
    console.print(f"  .venv/bin/pvctl audit verify --dsn-file {operator_dsn}", highlight=False)
    console.print(f"  operator log: {workdir / 'operator.log'}", highlight=False)
    console.print("  stop everything: make demo-down", highlight=False)


def _masked(dsn: str) -> str:
    parts = conninfo_to_dict(dsn)
    return f"postgresql://{parts['user']}:***@{parts['host']}:{parts['port']}/{parts['dbname']}"


@app.command()
def down(workdir: Workdir = Path(".demo")) -> None:
    """Stop the operator and every service the demo started."""
    workdir = workdir.resolve()
    record = workdir / OPERATOR_STATE
    if record.exists():
        stop_recorded(json.loads(record.read_text()))
        record.unlink()
        console.print("operator stopped")
    if not (workdir / "state.json").exists():
        console.print(f"no demo running in {workdir}")
        return
    Bench.stop_from_state(workdir)
    console.print("control plane, PostgreSQL and OpenBao stopped")
