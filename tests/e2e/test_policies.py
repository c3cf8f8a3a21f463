"""The shipped policies on the real control plane: every file under ``policies/`` is created (not a
dry run, so the CRD schemas and their CEL rules judge it), the API server keeps every field as
written (nothing pruned), and the operator takes the presets up: the protection presets are Ready,
the quorum presets Stalled on their placeholder keys, so they approve nothing as shipped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import REPO, Kubectl, Operator, condition, wait_for_condition

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]

POLICIES = REPO / "policies"


@pytest.fixture
def operator(kubectl: Kubectl, operator_dsn_file: Path, tmp_path: Path) -> Iterator[Operator]:
    running = Operator(tmp_path, kubectl.kubeconfig, operator_dsn_file).start()
    yield running
    running.stop()


def files() -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in sorted(POLICIES.rglob("*.yaml"))]


def differences(written: Any, stored: Any, where: str) -> list[str]:
    """Where ``stored`` lacks or changed what ``written`` says (defaults the server adds are fine)."""
    if isinstance(written, dict):
        if not isinstance(stored, dict):
            return [f"{where}: not an object"]
        return [d for key, value in written.items() for d in differences(value, stored.get(key), f"{where}.{key}")]
    if isinstance(written, list):
        if not isinstance(stored, list) or len(stored) != len(written):
            return [f"{where}: {len(written)} items written, {stored!r} stored"]
        return [
            d for i, (w, s) in enumerate(zip(written, stored, strict=True)) for d in differences(w, s, f"{where}[{i}]")
        ]
    return [] if written == stored else [f"{where}: {written!r} written, {stored!r} stored"]


def test_every_policy_is_created_as_written_and_taken_up(kubectl: Kubectl, operator: Operator) -> None:
    objects = files()
    assert len(objects) >= 12
    try:
        kubectl.run("apply", "--server-side", "--recursive", "-f", str(POLICIES))
        for obj in objects:
            kind, name = obj["kind"].lower(), obj["metadata"]["name"]
            stored = kubectl.get(kind, name)
            assert stored is not None, f"{kind} {name} was not created"
            assert differences(obj["spec"], stored["spec"], f"{kind}/{name}.spec") == []

        for obj in objects:
            kind, name = obj["kind"], obj["metadata"]["name"]
            if kind == "ProtectionPolicy":
                wait_for_condition(kubectl, "protectionpolicy", name, "Ready", current=True, timeout=90)
            elif kind == "QuorumPolicy":
                stalled = condition(
                    wait_for_condition(kubectl, "quorumpolicy", name, "Stalled", current=True, timeout=90), "Stalled"
                )
                assert stalled is not None and stalled["reason"] == "RuleUnsatisfiable"
                approvers = [a["name"] for a in obj["spec"]["approvers"]]
                for approver in approvers:
                    assert (
                        f"approver {approver}: the Ed25519 public key is a point of small order" in stalled["message"]
                    )
    finally:
        kubectl.run("delete", "--recursive", "-f", str(POLICIES), "--wait=false", "--ignore-not-found", check=False)
