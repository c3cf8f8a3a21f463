"""The shipped policies on the real control plane: every file under ``policies/`` is created (not a
dry run, so the CRD schemas and their CEL rules judge it), the API server keeps every field as
written (nothing pruned), and the operator takes them up: the protection presets are Ready, the
quorum presets Stalled on their placeholder keys (they approve nothing as shipped), and every
framework evaluates exactly the tenants its selector picks, each control of each tenant counted."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import builders
from tests.support import REPO, Kubectl, Operator, condition, eventually, wait_for_condition

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
    suffix = uuid.uuid4().hex[:6]
    scoped = {"privatevault.io/pci": "true", "privatevault.io/personal-data": "true", "privatevault.io/cnsa2": "true"}
    try:
        kubectl.run("apply", "--server-side", "--recursive", "-f", str(POLICIES))
        for obj in objects:
            kind, name = obj["kind"].lower(), obj["metadata"]["name"]
            stored = kubectl.get(kind, name)
            assert stored is not None, f"{kind} {name} was not created"
            assert differences(obj["spec"], stored["spec"], f"{kind}/{name}.spec") == []

        # One tenant every framework selects, and one only the frameworks of all tenants do.
        kubectl.apply(
            builders.tenant(
                f"pol-scoped-{suffix}", labels=scoped, protection_policy_ref="cnsa2", deletion_policy="CryptoShred"
            )
        )
        kubectl.apply(builders.tenant(f"pol-plain-{suffix}", protection_policy_ref="hybrid-default"))
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
        for obj in objects:
            if obj["kind"] == "ComplianceFramework":
                evaluated(kubectl, obj)
    finally:
        kubectl.run("delete", "tenant", f"pol-scoped-{suffix}", f"pol-plain-{suffix}", "--wait=false", check=False)
        kubectl.run("delete", "--recursive", "-f", str(POLICIES), "--wait=false", "--ignore-not-found", check=False)


def tenants_selected(kubectl: Kubectl, framework: dict[str, Any]) -> int:
    """How many tenants the framework's selector picks, as the API server reads the selector."""
    labels = framework["spec"].get("tenantSelector", {}).get("matchLabels", {})
    selector = ",".join(f"{key}={value}" for key, value in labels.items())
    listed = kubectl.run("get", "tenants", "-o", "json", *(["-l", selector] if selector else [])).stdout
    return len(json.loads(listed)["items"])


def evaluated(kubectl: Kubectl, framework: dict[str, Any]) -> None:
    """The framework Ready over the tenants it selects, every (tenant, control) counted once."""
    name, controls = framework["metadata"]["name"], framework["spec"]["controls"]
    manual = sum(c["checks"][0]["name"] == "manual" for c in controls)
    expected = tenants_selected(kubectl, framework)
    assert expected >= 1, f"no tenant for {name}: the test must label one"

    def counted() -> dict[str, Any] | None:
        obj = kubectl.get("complianceframework", name) or {}
        got = obj.get("status") or {}
        ready = condition(obj, "Ready")
        if not ready or ready["status"] != "True" or got.get("tenants") != expected:
            return None
        return got

    got = eventually(counted, timeout=120, what=lambda: f"{name} Ready over {expected} tenants")
    assert sum(got["summary"].values()) == expected * len(controls)
    assert got["summary"]["unknown"] >= expected * manual, "a manual control is unknown until attested"
    assert isinstance(got.get("score"), int)
