"""The demo's held action on the real control plane, and the way out the README gives: the
two-person policy with keys made for the demo, the sandbox tenant deleted and held at 0/2, then
each approver signs with ``pvctl approvals create`` (a real process, their encrypted key file)
and the tenant goes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from privatevault.cli import demo_quorum
from tests.support import Kubectl, Operator, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "quorum"


@pytest.fixture
def operator(kubectl: Kubectl, operator_dsn_file: Path, tmp_path: Path) -> Iterator[Operator]:
    running = Operator(tmp_path, kubectl.kubeconfig, operator_dsn_file).start()
    yield running
    running.stop()


def test_the_demo_holds_the_sandbox_deletion_until_two_approvers_sign(
    kubectl: Kubectl, operator: Operator, tmp_path: Path
) -> None:
    demo_quorum.held_deletion(lambda *args: kubectl.run(*args).stdout, tmp_path, EXAMPLES, 60)
    pending = (kubectl.get("tenant", "sandbox") or {})["status"]["pending"][0]
    # Whoever deleted it, nobody has approved: 0 of 2 (or 3 with the requester unknown).
    assert pending["action"] == "DeleteTenant" and pending["approvals"].startswith("0/")

    needed = int(pending["approvals"].split("/")[1])
    passphrase = tmp_path / "approvers" / "passphrase"
    for name in ("alice", "bob", "carol")[:needed]:  # alice is security, bob platform
        signed = subprocess.run(
            [
                sys.executable, "-m", "privatevault", "approvals", "create", "tenant/sandbox",
                "--approver", name, "--key-file", str(tmp_path / "approvers" / f"{name}.key"),
                "--passphrase-file", str(passphrase), "--yes", "--kubeconfig", str(kubectl.kubeconfig),
            ],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert signed.returncode == 0, signed.stderr
    eventually(lambda: kubectl.get("tenant", "sandbox") is None, timeout=90, what="the sandbox tenant deleted")
