"""pvctl audit reanchor: vouch, deliberately, for a ledger that no longer extends its published checkpoint.

The checkpointer never signs over a history it cannot prove extends the published checkpoint, and
nothing it does on its own ends that: either the records come back (a restore; it resumes by
itself) or a person vouches for the ledger as it is now. This command is that person's act. Run
without the confirming flags it changes nothing: it verifies the ledger on its own (chain, every
Merkle node, the stored checkpoints), says why it does not extend the published checkpoint (or
why the operator refuses anyway, from its ``LedgerVerified`` condition: it also holds the last
checkpoint it signed, which a rolled-back ConfigMap no longer shows), and prints the one command
that would re-anchor it, with the size and root hash to vouch for. Only
with ``--at``, ``--root``, ``--abandon`` and ``--reason`` all matching what is there does it
write the anchor beside the published checkpoint; the operator then records it in the ledger
(``reanchor-ledger``, with the abandoned note) and signs from it. Verifiers that remember the
abandoned history refuse the new one until a person reviews it (``pvctl audit verify
--forget-state``). Once quorum approvals exist, an anchor is to need them (docs/ledger-threat-model.md).
"""

from __future__ import annotations

import base64
import getpass
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from privatevault.cli.audit import DsnFile, Namespace, VerifierKeys, _ledger, _verifiers
from privatevault.cli.output import console, errors
from privatevault.cluster import Cluster
from privatevault.errors import PrivateVaultError
from privatevault.ledger import merkle
from privatevault.ledger.checkpoint import CheckpointError, KeyVerifier, parse_and_verify
from privatevault.ledger.integrity import Anchor
from privatevault.ledger.store import Ledger
from privatevault.ledger.verify import verify
from privatevault.manifests import ledger as ledger_manifests


def _published_state(note: str | None, verifiers: list[KeyVerifier], ledger: Ledger, size: int) -> tuple[str, bool]:
    """What is published, in words, and whether the ledger still extends it (then nothing is to be done)."""
    if note is None:
        return "no checkpoint is published", False
    try:
        head = parse_and_verify(note.encode(), verifiers)
    except CheckpointError as exc:
        return f"the published checkpoint does not verify with these keys ({exc})", False
    if head.size > size:
        return f"the published checkpoint covers {head.size} records, the ledger holds {size}", False
    try:
        proof = ledger.consistency_proof(head.size, size)
    except merkle.MissingNodes:
        return f"the published checkpoint at size {head.size}: the ledger's tree cannot prove it", False
    extends = merkle.verify_consistency(head.size, size, head.root, ledger.root(size), proof)
    if extends:
        return f"the ledger at size {size} extends the published checkpoint at size {head.size}", True
    return f"the ledger at size {size} is not consistent with the published checkpoint at size {head.size}", False


def reanchor(
    dsn_file: DsnFile = None,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            help="Cluster whose ConfigMap holds the published checkpoint; default: $KUBECONFIG.", dir_okay=False
        ),
    ] = None,
    namespace: Namespace = "privatevault-system",
    verifier_key: VerifierKeys = None,
    at: Annotated[int | None, typer.Option(help="The ledger size to vouch for (default: its size now).", min=0)] = None,
    root: Annotated[str | None, typer.Option(help="The root hash at --at, as this command printed it.")] = None,
    abandon: Annotated[
        str | None, typer.Option(help="The size of the published checkpoint to abandon, or `none`, as printed.")
    ] = None,
    reason: Annotated[
        str | None, typer.Option(help="Why; recorded in the ledger with the abandoned checkpoint.")
    ] = None,
    by: Annotated[str | None, typer.Option(help="Who vouches (default: the login name).")] = None,
) -> None:
    """Vouch for the ledger as it is now in place of a published checkpoint it no longer extends.

    Without --root, --abandon and --reason it only shows what it would do.
    """
    config = kubeconfig or (Path(os.environ["KUBECONFIG"]) if os.environ.get("KUBECONFIG") else None)
    if config is None:
        errors.print("[red]error:[/red] pass --kubeconfig: the anchor is written beside the published checkpoint")
        raise typer.Exit(2)
    cluster = Cluster.connect(config)
    ledger = _ledger(dsn_file)
    try:
        current = cluster.get("v1", "ConfigMap", ledger_manifests.CHECKPOINT_CONFIGMAP, namespace)
        note = ledger_manifests.published_note(current)
        keys = ledger_manifests.published_verifier_keys(current)
        verifiers = _verifiers(verifier_key, keys)
        alone = verify(ledger, verifiers=verifiers)
        if not alone.ok:
            where = f"seq {alone.first_bad_seq}" if alone.first_bad_seq is not None else "its tree"
            errors.print(
                f"[red]error:[/red] the ledger does not verify even on its own, at {where}: {alone.problem}."
                " Restore the records first: a re-anchor must not sign a broken chain."
            )
            raise typer.Exit(1)
        size = alone.records if at is None else at
        if size > alone.records:
            errors.print(f"[red]error:[/red] --at {size}: the ledger holds {alone.records} records")
            raise typer.Exit(2)
        head = base64.b64encode(ledger.root(size)).decode()
        situation, extends = _published_state(note, verifiers, ledger, size)
        abandoned = "none" if note is None else str(ledger_manifests.published_size(current))
        condition = (cluster.get("v1", "ConfigMap", ledger_manifests.INTEGRITY_CONFIGMAP, namespace) or {}).get(
            "data"
        ) or {}
        console.print(f"{situation}.")
        if condition.get("status") == "False":
            console.print(f"The operator refuses to sign ({condition.get('reason')}): {condition.get('message')}.")
        console.print(
            f"The ledger verifies on its own: {alone.records:,} records, {alone.nodes:,} Merkle nodes,"
            f" {alone.checkpoints} stored checkpoints; at size {size} its root hash is {head}."
        )
        if extends and condition.get("status") != "False":
            console.print("[green]Nothing to re-anchor:[/green] the operator signs from the published checkpoint.")
            return
        if root is None or abandon is None or reason is None:
            console.print(
                "To vouch for the ledger at this size in place of the published checkpoint (recorded in the"
                " ledger; verifiers that remember the old history will refuse the new one until reviewed), run:\n"
                f"  pvctl audit reanchor --namespace {namespace} --at {size} --root {head} --abandon {abandoned}"
                ' --reason "<why, with the incident reference>"  (with the same --dsn-file and --kubeconfig)'
            )
            return
        if (root, abandon) != (head, abandoned) or not reason.strip():
            errors.print(
                f"[red]error:[/red] nothing written: --root must be {head} (the root at {size}), --abandon must be"
                f" {abandoned} (what is published now), and --reason must say why"
            )
            raise typer.Exit(2)
        anchor = Anchor(
            abandoned=note or "",
            size=size,
            root=base64.b64decode(head),
            reason=reason.strip(),
            by=by or getpass.getuser(),
            at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        )
        cluster.apply(
            ledger_manifests.checkpoint_configmap(namespace, (note or "").encode(), keys, reanchor=anchor.to_json())
        )
    except PrivateVaultError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    finally:
        ledger.close()
        cluster.close()
    console.print(
        f"[yellow]anchor written[/yellow] beside the published checkpoint: the operator records it in the ledger"
        f" and signs from size {size} at its next checkpoint."
    )
