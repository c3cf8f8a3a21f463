"""pvctl witness: run our own C2SP tlog-witness, print its verifier key."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Annotated

import typer

from privatevault.cli.output import errors
from privatevault.errors import PrivateVaultError
from privatevault.ledger.checkpoint import KeyVerifier, parse_verifier_key
from privatevault.witness.server import WitnessService, serve
from privatevault.witness.state import State, load_or_create_key

app = typer.Typer(help="Run a witness that cosigns checkpoints (C2SP tlog-witness).", no_args_is_help=True)


def _home() -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "privatevault" / "witness"


KeyFile = Annotated[
    Path | None,
    typer.Option(
        help="The witness's private key, made (0600) on first run; default: $XDG_STATE_HOME/privatevault/witness/key.",
        dir_okay=False,
    ),
]


@app.command()
def run(
    name: Annotated[
        str | None, typer.Option(help="The witness's name, e.g. witness.example.com/w1 (needed on first run).")
    ] = None,
    log_key: Annotated[
        list[str] | None,
        typer.Option(
            "--log-key",
            help="A log's checkpoint verifier key (repeatable); the key's name is the log's origin"
            " (PrivateVault's keys: the verifier-keys of ConfigMap privatevault-ledger-checkpoint).",
        ),
    ] = None,
    listen: Annotated[str, typer.Option(help="HOST:PORT to serve on.")] = "127.0.0.1:7380",
    key_file: KeyFile = None,
    state: Annotated[
        Path | None,
        typer.Option(
            help="The witness's state (JSON); default: $XDG_STATE_HOME/privatevault/witness/state.json.", dir_okay=False
        ),
    ] = None,
) -> None:
    """Serve POST /add-checkpoint: cosign checkpoints of the configured logs that extend what it cosigned before."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not log_key:
        errors.print("[red]error:[/red] no log to witness: pass --log-key with each log's verifier key")
        raise typer.Exit(2)
    logs: defaultdict[str, list[KeyVerifier]] = defaultdict(list)
    host, _, port = listen.rpartition(":")
    try:
        for vkey in log_key:
            verifier = parse_verifier_key(vkey)
            logs[verifier.name].append(verifier)
        signer = load_or_create_key(key_file or _home() / "key", name)
        memory = State(state or _home() / "state.json")
    except PrivateVaultError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if not port.isdigit():
        errors.print(f"[red]error:[/red] --listen {listen!r} is not HOST:PORT")
        raise typer.Exit(2)
    server = serve(WitnessService(signer, dict(logs), memory), host or "127.0.0.1", int(port))
    bound_host, bound_port = server.server_address[:2]
    print(f"witness {signer.name} listening on http://{bound_host!s}:{bound_port}", flush=True)
    print(f"verifier key: {signer.verifier_key}", flush=True)
    print(f"logs: {', '.join(sorted(logs))}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        memory.close()


@app.command()
def key(key_file: KeyFile = None) -> None:
    """Print the witness's verifier key (give it to `pvctl audit verify --witness-key` and to the operator)."""
    try:
        signer = load_or_create_key(key_file or _home() / "key", None)
    except PrivateVaultError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    print(signer.verifier_key)
