"""pvctl quorum: what a gated object waits for, and how to sign it."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from privatevault.api.v1alpha1 import API_VERSION
from privatevault.cli.approvals import FormatOption, Kubeconfig, approval_rows
from privatevault.cli.output import Format, console, emit, fail
from privatevault.cli.session import resource, session
from privatevault.errors import PrivateVaultError

app = typer.Typer(help="Quorum: the actions gated objects hold until approved.", no_args_is_help=True)


@app.command()
def status(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="KIND/NAME", help="The gated object, e.g. tenant/acme.")],
    fmt: FormatOption = Format.table,
    kubeconfig: Kubeconfig = None,
) -> None:
    """The actions KIND/NAME holds: n/m approvals, what is missing, the command to sign, the Approvals of it."""
    kind, name = resource(target)
    try:
        cluster = session(ctx).connect(kubeconfig)
        try:
            obj = cluster.get(API_VERSION, kind.kind, name)
            if obj is None:
                fail(f"{kind.kind} {name} does not exist")
            uid = obj["metadata"].get("uid")
            approvals = [
                a
                for a in cluster.list(API_VERSION, "Approval")
                if (a.get("spec") or {}).get("action", {}).get("uid") == uid
            ]
        finally:
            cluster.close()
    except PrivateVaultError as exc:
        fail(str(exc))
    pending: list[dict[str, Any]] = (obj.get("status") or {}).get("pending") or []
    if fmt is Format.json:
        print(
            json.dumps(
                {
                    "target": f"{kind.kind}/{name}",
                    "uid": uid,
                    "pending": pending,
                    "approvals": approval_rows(approvals),
                },
                indent=2,
                sort_keys=True,
            )
        )
        return
    if not pending:
        console.print(f"{kind.kind} {name}: nothing waits for approval", highlight=False)
    else:
        emit(
            [
                {
                    "action": p.get("action"),
                    "state": p.get("state"),
                    "approvals": p.get("approvals"),
                    "missing": p.get("message"),
                    "policy": f"{p.get('policy')} (generation {p.get('policyGeneration')})",
                    "requester": p.get("requester") or "unknown",
                }
                for p in pending
            ],
            fmt=fmt,
            title=f"{kind.kind} {name} holds",
        )
        for p in pending:
            if p.get("state") in {"Pending", "Expired"}:
                console.print(
                    f"sign {p.get('action')} ({p.get('changeDigest')}): "
                    f"[bold]{escape(str(p.get('signWith')))} --approver <you>[/bold]",
                    highlight=False,
                )
    if approvals:
        emit(approval_rows(approvals), fmt=fmt, title=f"Approvals of {kind.kind} {name}")
