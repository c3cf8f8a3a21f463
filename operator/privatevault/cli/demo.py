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
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer
from psycopg.conninfo import conninfo_to_dict

from privatevault.cluster import Cluster
from privatevault.kms.vault import create_operator_token, vault_client
from privatevault.ledger import merkle
from privatevault.ledger.integrity import Anchor
from privatevault.ledger.schema import Database, bootstrap
from privatevault.manifests import ledger as ledger_manifests
from privatevault.testbench import Bench, BenchError
from privatevault.testbench.ports import free_port
from privatevault.testbench.process import ManagedProcess, log_tail, stop_recorded
from privatevault.testbench.secretfile import write_secret

from . import demo_quorum
from .output import console, errors

app = typer.Typer(
    help="Run the whole product locally: control plane, PostgreSQL, OpenBao, operator.", no_args_is_help=True
)

REPO = Path(__file__).resolve().parents[3]
OPERATOR_STATE = "operator.json"

Workdir = Annotated[Path, typer.Option(help="Where the demo keeps its state, logs and secrets.")]
#: The operator's namespace in the demo (its default).
NAMESPACE = "privatevault-system"


class Objects(Protocol):
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def apply(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]: ...


def _kubectl(kubectl: Path, kubeconfig: Path, *args: str, capture: bool = False) -> str:
    done = subprocess.run(
        [str(kubectl), "--kubeconfig", str(kubeconfig), *args], check=False, text=True, capture_output=True
    )
    if done.returncode != 0:
        raise BenchError(f"kubectl {' '.join(args)} failed:\n{done.stderr.strip()}")
    if not capture and done.stdout.strip():
        console.print(done.stdout.rstrip(), highlight=False)
    return done.stdout


def reanchor_earlier_demo(cluster: Objects, namespace: str, *, at: datetime) -> bool:
    """Write an anchor at the empty tree beside a checkpoint published earlier; False when there is none."""
    current = cluster.get("v1", "ConfigMap", ledger_manifests.CHECKPOINT_CONFIGMAP, namespace)
    note = ledger_manifests.published_note(current)
    if note is None:
        return False
    anchor = Anchor(
        abandoned=note,
        size=0,
        root=merkle.EMPTY_ROOT,
        reason="make demo: a new demo ledger replaces the one an earlier demo published in this cluster",
        by="pvctl demo up",
        at=at.isoformat().replace("+00:00", "Z"),
    )
    keys = ledger_manifests.published_verifier_keys(current)
    cluster.apply(ledger_manifests.checkpoint_configmap(namespace, note.encode(), keys, reanchor=anchor.to_json()))
    return True


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback URL we built
            return bool(response.status == 200)
    except OSError:
        return False


class _Demo:
    """The steps of ``up``, each small; what they made is kept so a failure can undo it."""

    def __init__(self, workdir: Path, kubeconfig: Path | None, timeout: int) -> None:
        self.workdir, self.timeout = workdir, timeout
        self.local = kubeconfig is None
        self.bench = Bench(workdir, progress=lambda line: console.print(f"  {line}"), control_plane=kubeconfig is None)
        self.kubeconfig = kubeconfig.resolve() if kubeconfig else self.bench.control_plane.kubeconfig
        self.secrets = workdir / "secrets"
        self.operator: ManagedProcess | None = None

    def kubectl(self, *args: str) -> str:
        return _kubectl(self.bench.control_plane.kubectl, self.kubeconfig, *args)

    def services(self) -> Database:
        console.print("[bold]starting the local services[/bold]")
        self.bench.start()
        self.bench.save_state()
        console.print("[bold]creating the ledger database[/bold]")
        database = bootstrap(self.bench.postgres.superuser_dsn)
        self.secrets.mkdir(mode=0o700, exist_ok=True)
        write_secret(self.secrets / "ledger-operator.dsn", database.operator_dsn)
        write_secret(self.secrets / "ledger-owner.dsn", database.owner_dsn)
        console.print("[bold]installing the CRDs[/bold]")
        self.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        self.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "-l",
            "app.kubernetes.io/part-of=privatevault",
        )
        return database

    def earlier_publication(self) -> None:
        """A cluster kept from an earlier demo still publishes that demo's checkpoint, which the new,
        empty ledger does not extend: the operator would (rightly) refuse to sign. The demo
        re-anchors deliberately, and the operator records it in the new ledger."""
        cluster = Cluster.connect(self.kubeconfig)
        try:
            if reanchor_earlier_demo(cluster, NAMESPACE, at=datetime.now(UTC)):
                console.print(
                    f"[yellow]{NAMESPACE} publishes an earlier demo's checkpoint: re-anchored to the new,"
                    " empty ledger (recorded in it; docs/ledger-threat-model.md)[/yellow]"
                )
        finally:
            cluster.close()

    def start_operator(self) -> None:
        console.print("[bold]starting the operator (with a least-privilege OpenBao token)[/bold]")
        root = vault_client(self.bench.openbao.address, token=self.bench.openbao.root_token)
        vault_token = write_secret(self.secrets / "openbao-operator-token", create_operator_token(root))
        port = free_port()
        self.operator = ManagedProcess(
            "operator",
            [
                sys.executable,
                "-m",
                "privatevault",
                "operator",
                "run",
                "--kubeconfig",
                str(self.kubeconfig),
                "--liveness",
                f"http://127.0.0.1:{port}/healthz",
            ],
            self.workdir / "operator.log",
            env={
                **os.environ,
                "PRIVATEVAULT_LEDGER_DSN_FILE": str(self.secrets / "ledger-operator.dsn"),
                "PRIVATEVAULT_VAULT_ADDR": self.bench.openbao.address,
                "PRIVATEVAULT_VAULT_TOKEN_FILE": str(vault_token),
                "PRIVATEVAULT_PROTECTION_INTERVAL": "5",
                "PRIVATEVAULT_CHECKPOINT_EVERY_SECONDS": "5",
                **self.webhook_env(),
            },
        )
        self.operator.start()
        self.operator.wait_ready(lambda: _healthy(f"http://127.0.0.1:{port}/healthz"), timeout=60)
        (self.workdir / OPERATOR_STATE).write_text(json.dumps(self.operator.record()) + "\n")

    def webhook_env(self) -> dict[str, str]:
        """The requester webhook, for the local control plane only: its API server dials 127.0.0.1."""
        if not self.local:
            return {}
        return {
            "PRIVATEVAULT_WEBHOOK_ENABLED": "true",
            "PRIVATEVAULT_WEBHOOK_PORT": str(free_port()),
            "PRIVATEVAULT_STATE_DIR": str(self.workdir / "state"),
        }

    def examples(self, examples: Path) -> None:
        console.print(f"[bold]applying {examples} and waiting for the tenants to be Ready[/bold]")
        self.kubectl("apply", "-f", str(examples))
        self.kubectl("wait", "--for=condition=Ready", f"--timeout={self.timeout}s", "tenants", "--all")
        workloads = examples / "workloads"
        if workloads.is_dir():
            console.print(f"[bold]applying {workloads} and waiting for their protection[/bold]")
            self.kubectl("apply", "-f", str(workloads))
            self.kubectl(
                "wait",
                "--for=jsonpath={.status.workloads}=1",
                f"--timeout={self.timeout}s",
                "protectionpolicies",
                "--all",
            )
        self.kubectl("get", "tenants,protectionpolicies")
        self.kubectl(
            "get",
            "deployments",
            "-A",
            "-l",
            "privatevault.io/protect",
            "-o",
            "custom-columns=NAMESPACE:.metadata.namespace,DEPLOYMENT:.metadata.name,"
            "SELINUX-LEVEL:.spec.template.spec.securityContext.seLinuxOptions.level,"
            "SELINUX-TYPE:.spec.template.spec.securityContext.seLinuxOptions.type,"
            "KEY-VERSION:.spec.template.metadata.annotations.privatevault\\.io/key-version",
        )
        compliance = examples / "compliance"
        if compliance.is_dir():
            console.print(f"[bold]applying {compliance} and waiting for the first score[/bold]")
            self.kubectl("apply", "-f", str(compliance))
            self.kubectl("wait", "--for=condition=Ready", f"--timeout={self.timeout}s", "complianceframeworks", "--all")
            self.kubectl("get", "complianceframeworks")
        if (examples / "quorum").is_dir():
            demo_quorum.held_deletion(self.kubectl, self.workdir, examples / "quorum", self.timeout)

    def undo(self) -> None:
        if self.operator is not None:
            errors.print(f"operator log ({self.operator.log}):\n{log_tail(self.operator.log)}")
            self.operator.stop()
        (self.workdir / OPERATOR_STATE).unlink(missing_ok=True)
        self.bench.stop()


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
    demo = _Demo(workdir, kubeconfig, timeout)
    try:
        database = demo.services()
        if kubeconfig is not None:
            demo.earlier_publication()
        demo.start_operator()
        demo.examples(examples)
    except BaseException as exc:
        errors.print(f"[red]the demo did not start:[/red] {exc}")
        demo.undo()
        raise typer.Exit(1) from exc

    dsn_file = demo.secrets / "ledger-operator.dsn"
    console.print()
    console.print("[green bold]PrivateVault is running.[/green bold] Keep working with it:")
    for line in (
        f"export KUBECONFIG={demo.kubeconfig}",
        "kubectl get tenants,protectionpolicies -o wide",
        "kubectl get complianceframeworks -o wide",
        "kubectl get namespaces -l app.kubernetes.io/managed-by=privatevault --show-labels",
        f"ledger: {_masked(database.operator_dsn)} (full URL in {dsn_file})",
        f".venv/bin/pvctl audit tail --dsn-file {dsn_file}",
        f".venv/bin/pvctl audit verify --dsn-file {dsn_file} --kubeconfig {demo.kubeconfig}",
        f"operator log: {workdir / 'operator.log'}",
        "stop everything: make demo-down",
    ):
        console.print(f"  {line}", highlight=False)


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
    console.print("the services the demo started are stopped")
