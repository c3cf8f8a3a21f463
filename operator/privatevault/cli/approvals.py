"""pvctl approvals: make an approver's keys, sign a pending action, list the Approvals.

Signing happens here, on the approver's machine, with keys that never leave it: ``create`` reads
what the gated object says is pending (``status.pending``: action, target, uid, generation,
change digest, policy), shows it, and only after the approver confirms signs the statement with
both keys and creates the Approval. The operator then checks it against the QuorumPolicy.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from privatevault.api.v1alpha1 import API_VERSION, QuorumPolicy
from privatevault.api.v1alpha1.common import DNS_LABEL
from privatevault.api.v1alpha1.pending import PendingAction
from privatevault.api.v1alpha1.protectionpolicy import duration_seconds
from privatevault.cli.keystore import (
    ApproverKeyPairs,
    KeyStoreError,
    default_file,
    keyring_load,
    keyring_save,
    open_sealed,
    read_document,
    write_file,
)
from privatevault.cli.output import Format, console, emit, errors, fail
from privatevault.cli.session import ClusterPort, Session, resource, session
from privatevault.errors import PrivateVaultError
from privatevault.quorum import consent, dsse
from privatevault.quorum.rules import public_keys

app = typer.Typer(help="Sign gated actions: approver keys, Approvals.", no_args_is_help=True)

FormatOption = Annotated[Format, typer.Option("--format", help="table or json")]
Kubeconfig = Annotated[
    Path | None, typer.Option(help="Kubeconfig; default: $KUBECONFIG, then ~/.kube/config.", dir_okay=False)
]
PassphraseFile = Annotated[
    Path | None,
    typer.Option(help="Read the key file's passphrase from this file (first line); default: ask.", dir_okay=False),
]


def _passphrase(passphrase_file: Path | None, *, what: str, confirm: bool) -> bytes:
    if passphrase_file is not None:
        try:
            lines = passphrase_file.read_bytes().splitlines()
        except OSError as exc:
            fail(f"cannot read the passphrase file {passphrase_file}: {exc.strerror}")
        return lines[0] if lines else b""
    text: str = typer.prompt(f"Passphrase for {what}", hide_input=True, confirmation_prompt=confirm, err=True)
    return text.encode()


# -- keygen ----------------------------------------------------------------------------------------


@app.command()
def keygen(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="The approver's name, as the QuorumPolicy will list it.")],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Keep the keys in an encrypted file in this folder instead of the OS keyring.", file_okay=False
        ),
    ] = None,
    passphrase_file: PassphraseFile = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Make an approver's Ed25519 and ML-DSA-65 key pairs and print the public keys for a QuorumPolicy.

    The private keys go to the OS keyring when there is a usable one, else (or with --out) to a
    file encrypted under a passphrase (asked twice, or read with --passphrase-file).
    """
    if not re.fullmatch(DNS_LABEL, name) or len(name) > 63:
        fail(f"{name!r} cannot be an approver's name: lower-case letters, digits and '-', at most 63")
    s = session(ctx)
    pairs = ApproverKeyPairs.generate(name)
    try:
        backend = None if out is not None else s.keyring()
        if backend is not None:
            if keyring_load(backend, name) is not None:
                fail(f"the OS keyring holds keys for {name} already: keys are never overwritten")
            keyring_save(backend, pairs)
            where = f"the OS keyring ({type(backend).__name__}, service privatevault-approver, user {name})"
        else:
            path = (out / f"{name}.key") if out is not None else default_file(s.config_dir, name)
            if path.exists():
                fail(f"{path} exists already: keys are never overwritten; move it away first")
            write_file(path, pairs, _passphrase(passphrase_file, what=f"{name}'s new key file", confirm=True))
            where = f"{path} (AES-256-GCM under a scrypt-derived key; keep the passphrase safe)"
    except KeyStoreError as exc:
        fail(str(exc))
    errors.print(f"{name}'s private keys are in {where}.", highlight=False, markup=False)
    snippet = {"name": name, "publicKeys": pairs.public_keys()}
    if fmt is Format.json:
        print(json.dumps(snippet, indent=2, sort_keys=True))
        return
    print("# Paste under spec.approvers of a QuorumPolicy, then add roles, region and users.")
    print(yaml.safe_dump([snippet], sort_keys=False, width=10_000), end="")


# -- create ----------------------------------------------------------------------------------------


def _pending(obj: dict[str, Any], kind: str, name: str, action: str | None, change: str | None = None) -> PendingAction:
    entries = ((obj.get("status") or {}).get("pending")) or []
    try:
        pending = [PendingAction.model_validate(entry) for entry in entries]
    except ValidationError as exc:
        fail(f"{kind} {name} shows a pending action this pvctl cannot read: {exc.errors()[0]['msg']}")
    if action is not None:
        pending = [p for p in pending if p.action == action]
    if change is not None:
        pending = [
            p for p in pending if p.change_digest.removeprefix("sha256:").startswith(change.removeprefix("sha256:"))
        ]
    if not pending:
        waiting = f"no pending action {action}" if action else "no pending action"
        fail(f"{kind} {name} has {waiting}: nothing waits for an approval (see pvctl quorum status {kind}/{name})")
    if len(pending) > 1 and len({p.action for p in pending}) == 1:
        digests = ", ".join(p.change_digest for p in pending)
        fail(f"{kind} {name} has several pending {pending[0].action}; pass --change, one of {digests}")
    if len(pending) > 1:
        fail(f"{kind} {name} has several pending actions; pass --action, one of {', '.join(p.action for p in pending)}")
    return pending[0]


def _keys(s: Session, approver: str, key_file: Path | None, passphrase_file: Path | None) -> ApproverKeyPairs:
    if key_file is None:
        backend = s.keyring()
        held = keyring_load(backend, approver) if backend is not None else None
        if held is not None:
            return held
        key_file = default_file(s.config_dir, approver)
        if not key_file.exists():
            raise KeyStoreError(
                f"no keys for {approver}: none in the OS keyring and no key file at {key_file}; pass --key-file"
            )
    document = read_document(key_file)
    pairs = open_sealed(document, _passphrase(passphrase_file, what=f"{key_file}", confirm=False))
    if pairs.name != approver:
        raise KeyStoreError(f"{key_file} holds the keys of {pairs.name}, not of {approver}")
    return pairs


def _policy_keys(cluster: ClusterPort, pending: PendingAction, approver: str) -> dict[dsse.Algorithm, bytes]:
    found = cluster.get(API_VERSION, "QuorumPolicy", pending.policy)
    if found is None:
        fail(f"QuorumPolicy {pending.policy}, which gates this action, does not exist")
    policy = QuorumPolicy.model_validate(found)
    listed = next((a for a in policy.spec.approvers if a.name == approver), None)
    if listed is None:
        names = ", ".join(a.name for a in policy.spec.approvers)
        fail(f"{approver} is not an approver of QuorumPolicy {pending.policy} (its approvers: {names})")
    return public_keys(listed)


def _what_is_signed(statement: Any, pending: PendingAction, algorithms: list[str]) -> Table:
    table = Table(title="You are about to approve", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    target = statement.target
    for field, value in (
        ("action", statement.action),
        ("target", f"{target.kind}/{target.name}"),
        ("uid", target.uid),
        ("generation", str(target.generation)),
        ("change digest", statement.change_digest),
        ("policy", f"{statement.policy} (generation {statement.policy_generation})"),
        ("approver", statement.approver),
        ("signed with", " and ".join(algorithms)),
        ("not after", statement.to_json()["predicate"]["notAfter"]),
        ("now", f"{pending.state}, {pending.approvals}: {pending.message}"),
    ):
        table.add_row(field, value)
    return table


@app.command()
def create(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="KIND/NAME", help="The gated object, e.g. tenant/acme.")],
    approver: Annotated[str, typer.Option(help="Your name in the QuorumPolicy.")],
    action: Annotated[str | None, typer.Option(help="The pending action, when the object has several.")] = None,
    change: Annotated[
        str | None,
        typer.Option(
            help="The change digest (or its start) of the pending action, when several wait under one action"
            " (a ComplianceFramework's exceptions: status.pending[].changeDigest)."
        ),
    ] = None,
    key_file: Annotated[
        Path | None,
        typer.Option(help="Your encrypted key file; default: the OS keyring, then the default file.", dir_okay=False),
    ] = None,
    passphrase_file: PassphraseFile = None,
    ttl: Annotated[str, typer.Option(help="How long the approval stays valid (the rule's ttl may cut it).")] = "1h",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Sign without asking.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the signed Approval as YAML; create nothing.")
    ] = False,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Sign the action pending on KIND/NAME with your keys and create the Approval."""
    kind, name = resource(target)
    try:
        seconds = duration_seconds(ttl)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--ttl") from exc
    if seconds <= 0:
        raise typer.BadParameter("must be longer than 0s", param_hint="--ttl")
    s = session(ctx)
    try:
        cluster = s.connect(kubeconfig)
        try:
            obj = cluster.get(API_VERSION, kind.kind, name)
            if obj is None:
                fail(f"{kind.kind} {name} does not exist")
            pending = _pending(obj, kind.kind, name, action, change)
            listed = _policy_keys(cluster, pending, approver)
            pairs = _keys(s, approver, key_file, passphrase_file)
            signing = {alg: pair for alg, pair in pairs.signing().items() if listed.get(alg) == pair[1]}
            if not signing:
                fail(
                    f"the keys you hold for {approver} are not those QuorumPolicy {pending.policy} lists for"
                    f" {approver}: have the policy updated with your current public keys"
                )
            statement = consent.statement_for(pending, approver, s.now() + timedelta(seconds=float(seconds)))
            shown: Console = errors if dry_run else console
            shown.print(_what_is_signed(statement, pending, list(signing)))
            if not yes and not dry_run and not typer.confirm("Sign and create this Approval?", default=False, err=True):
                fail("nothing signed")
            manifest = consent.approval_manifest(statement, dsse.sign(statement.payload(), signing))
            if dry_run:
                sys.stdout.write(yaml.safe_dump(manifest, sort_keys=False, width=10_000))
                return
            if cluster.create(manifest) is None:
                fail(
                    f"Approval {manifest['metadata']['name']} exists already: {approver} has signed this change"
                    " (an Approval is immutable; delete it to sign again)"
                )
        finally:
            cluster.close()
    except PrivateVaultError as exc:
        fail(str(exc))
    console.print(f"approval.privatevault.io/{manifest['metadata']['name']} created", highlight=False)


# -- list ------------------------------------------------------------------------------------------


def approval_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for item in sorted(items, key=lambda i: str(i["metadata"]["name"])):
        spec, status = item.get("spec") or {}, item.get("status") or {}
        act = spec.get("action") or {}
        rows.append(
            {
                "name": item["metadata"]["name"],
                "approver": spec.get("approver", ""),
                "action": act.get("verb", ""),
                "target": f"{act.get('kind', '')}/{act.get('name', '')}",
                "verdict": status.get("verdict") or "-",
                "reason": status.get("reason") or "",
                "expires": spec.get("expires", ""),
            }
        )
    return rows


@app.command("list")
def list_(
    ctx: typer.Context,
    target: Annotated[str | None, typer.Option(metavar="KIND/NAME", help="Only the Approvals of this object.")] = None,
    fmt: FormatOption = Format.table,
    kubeconfig: Kubeconfig = None,
) -> None:
    """The Approvals, with the operator's verdict and its reason."""
    wanted = resource(target) if target else None
    try:
        cluster = session(ctx).connect(kubeconfig)
        try:
            items = cluster.list(API_VERSION, "Approval")
        finally:
            cluster.close()
    except PrivateVaultError as exc:
        fail(str(exc))
    if wanted is not None:
        kind, name = wanted
        items = [
            i
            for i in items
            if (i.get("spec") or {}).get("action", {}).get("kind") == kind.kind
            and i["spec"]["action"].get("name") == name
        ]
    rows = approval_rows(items)
    if not rows and fmt is Format.table:
        console.print("no Approvals" + (f" of {target}" if target else ""))
        return
    emit(rows, fmt=fmt)
