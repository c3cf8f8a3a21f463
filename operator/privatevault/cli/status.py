"""pvctl status and pvctl tenant: the installation and its tenants at a glance.

From the read API when given ``--server`` (and a token), else from the cluster and the ledger's
database directly; both go through :mod:`privatevault.readapi.views`, so they show the same.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from privatevault.cli.client import CaFile, Insecure, ReadApiClient, Server, TokenFile
from privatevault.cli.output import Format, console, emit, fail
from privatevault.cluster import Cluster
from privatevault.errors import PrivateVaultError
from privatevault.ledger.store import Ledger
from privatevault.readapi import models, views
from privatevault.settings import ledger_dsn

tenant_app = typer.Typer(help="Tenants with their keys, level, policies and held actions.", no_args_is_help=True)

FormatOption = Annotated[Format, typer.Option("--format", help="table or json")]
Kubeconfig = Annotated[Path | None, typer.Option(help="Kubeconfig; default: KUBECONFIG.", exists=True, dir_okay=False)]
DsnFile = Annotated[
    Path | None,
    typer.Option(
        help="File holding the ledger's PostgreSQL URL; default: PRIVATEVAULT_LEDGER_DSN[_FILE].", exists=True
    ),
]
Namespace = Annotated[str, typer.Option(help="The operator's namespace.")]


def _cluster(kubeconfig: Path | None) -> Cluster:
    path = kubeconfig or (Path(os.environ["KUBECONFIG"]) if os.environ.get("KUBECONFIG") else None)
    return Cluster.connect(path)


def _status(
    server: str | None,
    token_file: Path | None,
    ca_file: Path | None,
    insecure: bool,
    kubeconfig: Path | None,
    dsn_file: Path | None,
    namespace: str,
) -> models.Status:
    if server:
        return models.Status.model_validate(
            ReadApiClient.of(server, token_file, ca_file, insecure).get("/api/v1/status")
        )
    try:
        dsn = dsn_file.read_text().strip() if dsn_file else ledger_dsn()
    except ValueError as exc:
        fail(f"{exc}; or pass --dsn-file, or --server", code=2)
    cluster, ledger = _cluster(kubeconfig), Ledger(dsn)
    try:
        return views.status(views.Sources(cluster=cluster, ledger=ledger, namespace=namespace))
    finally:
        ledger.close()
        cluster.close()


def status(
    server: Server = None,
    token_file: TokenFile = None,
    ca_file: CaFile = None,
    insecure: Insecure = False,
    kubeconfig: Kubeconfig = None,
    dsn_file: DsnFile = None,
    namespace: Namespace = "privatevault-system",
    fmt: FormatOption = Format.table,
) -> None:
    """The installation at a glance: ledger, checkpoint and cosignatures, KMS, tenants, held actions."""
    try:
        found = _status(server, token_file, ca_file, insecure, kubeconfig, dsn_file, namespace)
    except PrivateVaultError as exc:
        fail(str(exc))
    if fmt is Format.json:
        print(json.dumps(found.wire(), indent=2, sort_keys=True))
        return
    ledger, checkpoint = found.ledger, found.checkpoint
    integrity = {None: "unknown (not read from the operator)", True: "ok"}.get(
        ledger.integrity_ok, f"REFUSED ({ledger.integrity_reason})"
    )
    rows = [
        {"what": "operator", "value": ", ".join(f"{k}={v}" for k, v in sorted(found.operator.items()))},
        {"what": "ledger size", "value": str(ledger.size)},
        {"what": "ledger integrity", "value": integrity},
        {"what": "last verified checkpoint", "value": str(ledger.last_verified_size or "-")},
        {
            "what": "published checkpoint",
            "value": f"size {checkpoint.size} root {checkpoint.root_hash}" if checkpoint else "none",
        },
        {"what": "cosignatures", "value": ", ".join(found.cosignatures) or "none"},
        {"what": "KMS", "value": ", ".join(f"{k}: {v}" for k, v in sorted(found.kms.items())) or "-"},
        {
            "what": "tenants",
            "value": ", ".join(f"{k}: {v}" for k, v in sorted(found.tenants_by_condition.items())) or "none",
        },
        {"what": "awaiting quorum", "value": "; ".join(found.awaiting_quorum) or "none"},
    ]
    emit(rows, fmt=fmt, title="PrivateVault")


def _tenants(
    server: str | None, token_file: Path | None, ca_file: Path | None, insecure: bool, kubeconfig: Path | None
) -> list[models.TenantView]:
    if server:
        answer = ReadApiClient.of(server, token_file, ca_file, insecure).get("/api/v1/tenants")
        return models.TenantList.model_validate(answer).tenants
    cluster = _cluster(kubeconfig)
    try:
        return views.tenants(cluster)
    finally:
        cluster.close()


def _row(view: models.TenantView) -> dict[str, str]:
    return {
        "tenant": view.name,
        "ready": view.ready,
        "reason": view.reason,
        "level": view.level or "-",
        "key": f"{view.key.provider}:{view.key.key_name} v{view.key.latest_version}" if view.key else "-",
        "policies": ", ".join(filter(None, (view.protection_policy, view.quorum_policy))) or "-",
        "pending": "; ".join(f"{p.action} {p.approvals}" for p in view.pending) or "-",
    }


@tenant_app.command("list")
def tenant_list(
    server: Server = None,
    token_file: TokenFile = None,
    ca_file: CaFile = None,
    insecure: Insecure = False,
    kubeconfig: Kubeconfig = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Every tenant (the ones the token may read, through the API)."""
    try:
        found = _tenants(server, token_file, ca_file, insecure, kubeconfig)
    except PrivateVaultError as exc:
        fail(str(exc))
    if fmt is Format.json:
        print(json.dumps([view.wire() for view in found], indent=2, sort_keys=True))
        return
    emit([_row(view) for view in found], fmt=fmt, title="tenants")


@tenant_app.command("get")
def tenant_get(
    name: Annotated[str, typer.Argument(help="The tenant.")],
    server: Server = None,
    token_file: TokenFile = None,
    ca_file: CaFile = None,
    insecure: Insecure = False,
    kubeconfig: Kubeconfig = None,
    fmt: FormatOption = Format.table,
) -> None:
    """One tenant: keys, level, namespaces, policies, held actions."""
    try:
        found = [view for view in _tenants(server, token_file, ca_file, insecure, kubeconfig) if view.name == name]
    except PrivateVaultError as exc:
        fail(str(exc))
    if not found:
        fail(f"no tenant {name} (or not one this token may read)")
    view = found[0]
    if fmt is Format.json:
        print(json.dumps(view.wire(), indent=2, sort_keys=True))
        return
    row = _row(view) | {"region": view.region or "-", "namespaces": ", ".join(view.namespaces) or "-"}
    emit([{"field": k, "value": v} for k, v in row.items()], fmt=fmt, title=f"tenant {name}")
    for held in view.pending:
        console.print(f"held: {held.action} {held.approvals}: {held.message}", highlight=False)
