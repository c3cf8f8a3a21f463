"""The demo's held action: a tenant whose deletion waits for two approvers.

The approvers' keys are made for the demo (encrypted files under ``<workdir>/approvers`` with a
passphrase file beside them), their public keys filled into ``examples/quorum``'s QuorumPolicy,
the sandbox tenant made Ready and then deleted: the deletion is held, and the demo shows its
``n/m`` and how each approver signs it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from privatevault.testbench.secretfile import write_secret

from .keystore import ApproverKeyPairs, write_file
from .output import console

Kubectl = Callable[..., str]


def approver_keys(workdir: Path, names: list[str]) -> tuple[dict[str, dict[str, str]], Path]:
    """Key files for ``names`` (made once, kept between demos) and the passphrase file opening them."""
    folder = workdir / "approvers"
    folder.mkdir(mode=0o700, exist_ok=True)
    passphrase = folder / "passphrase"
    if not passphrase.exists():
        write_secret(passphrase, secrets.token_urlsafe(24))
    public = {}
    for name in names:
        path = folder / f"{name}.key"
        if not path.exists():
            pairs = ApproverKeyPairs.generate(name)
            write_file(path, pairs, passphrase.read_bytes().strip())
            (folder / f"{name}.pub.yaml").write_text(yaml.safe_dump(pairs.public_keys()))
        public[name] = yaml.safe_load((folder / f"{name}.pub.yaml").read_text())
    return public, passphrase


def policy_with_keys(template: Path, public: dict[str, dict[str, str]]) -> dict[str, Any]:
    policy: dict[str, Any] = yaml.safe_load(template.read_text())
    for entry in policy["spec"]["approvers"]:
        entry["publicKeys"] = public[entry["name"]]
    return policy


def held_deletion(kubectl: Kubectl, workdir: Path, examples: Path, timeout: int) -> None:
    """Apply the two-person policy and the sandbox tenant, delete the tenant, show the held action."""
    console.print("[bold]quorum: a tenant deletion held until two approvers sign[/bold]")
    template = examples / "quorumpolicy-two-person.yaml"
    names = [a["name"] for a in yaml.safe_load(template.read_text())["spec"]["approvers"]]
    public, passphrase = approver_keys(workdir, names)
    manifest = workdir / "quorumpolicy-two-person.yaml"
    manifest.write_text(yaml.safe_dump(policy_with_keys(template, public), sort_keys=False))
    kubectl("apply", "-f", str(manifest))
    kubectl("wait", "--for=condition=Ready", f"--timeout={timeout}s", "quorumpolicy/two-person")
    kubectl("apply", "-f", str(examples / "tenant-sandbox.yaml"))
    kubectl("wait", "--for=condition=Ready", f"--timeout={timeout}s", "tenant/sandbox")
    kubectl("delete", "tenant", "sandbox", "--wait=false")
    kubectl(
        "wait",
        "--for=jsonpath={.status.pending[0].action}=DeleteTenant",
        f"--timeout={timeout}s",
        "tenant/sandbox",
    )
    kubectl(
        "get",
        "tenant",
        "sandbox",
        "-o",
        "custom-columns=TENANT:.metadata.name,HELD:.status.pending[0].action,"
        "APPROVALS:.status.pending[0].approvals,REASON:.status.conditions[?(@.type=='Reconciling')].reason,"
        "WAITING-FOR:.status.pending[0].message",
    )
    console.print("  approve it (each approver signs with their own key; alice is security, bob platform):")
    for name in ("alice", "bob"):
        console.print(
            f"  .venv/bin/pvctl approvals create tenant/sandbox --approver {name}"
            f" --key-file {workdir / 'approvers' / (name + '.key')} --passphrase-file {passphrase} --yes",
            highlight=False,
        )
