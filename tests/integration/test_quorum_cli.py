"""pvctl against the real API server: ``quorum status`` reads a pending action from a Tenant's
status, ``approvals create`` signs it and the Approval it creates passes the CRD's schema and CEL
rules (and the operator's own check finds it Valid), ``approvals list`` finds it, a second
signature of the same change is refused: the commands the unit tests run against the fake cluster."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from typer.testing import CliRunner

from privatevault.api.v1alpha1 import Approval
from privatevault.api.v1alpha1.quorumpolicy import QuorumPolicySpec
from privatevault.cli import keystore
from privatevault.cli.keystore import ApproverKeyPairs
from privatevault.cli.main import app
from privatevault.cli.session import Session, connect
from privatevault.quorum import changes, verify
from tests import builders
from tests.support import Kubectl
from tests.unit.fakes import MemoryKeyring

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("crds")]

ALICE = ApproverKeyPairs.generate("alice")


def _approver(pairs: ApproverKeyPairs, role: str, region: str) -> dict[str, Any]:
    keys = pairs.public_keys()
    return builders.approver(pairs.name, ed25519=keys["ed25519"], ml_dsa65=keys["mlDsa65"], roles=[role], region=region)


def test_sign_a_pending_deletion(kubectl: Kubectl) -> None:
    policy = builders.quorum_policy(
        "cli-two-person",
        approvers=[
            _approver(ALICE, "security", "eu-west-1"),
            _approver(ApproverKeyPairs.generate("bob"), "platform", "us-east-1"),
        ],
        rules=[builders.rule(min_approvals=2, required_roles=["security", "platform"])],
    )
    kubectl.apply(policy)
    kubectl.apply(builders.tenant("cli-acme", owners=[builders.user("alice")], quorum_policy_ref="cli-two-person"))
    tenant = kubectl.get("tenant", "cli-acme")
    assert tenant is not None
    change = changes.deletion(tenant)
    pending = builders.pending_action(
        policy="cli-two-person",
        target="cli-acme",
        target_uid=tenant["metadata"]["uid"],
        target_generation=tenant["metadata"]["generation"],
        digest=change.digest,
    )
    kubectl.run(
        "patch", "tenant", "cli-acme", "--subresource=status", "--type=merge", "-p",
        json.dumps({"status": {"pending": [pending]}}),
    )  # fmt: skip
    backend = MemoryKeyring()
    keystore.keyring_save(backend, ALICE)
    session = Session(connect=lambda _: connect(kubectl.kubeconfig), keyring=lambda: backend)

    def pvctl(*args: str) -> Any:
        return CliRunner().invoke(app, list(args), obj=session)

    status = pvctl("quorum", "status", "tenant/cli-acme", "--format", "json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["pending"] == [pending]

    created = pvctl("approvals", "create", "tenant/cli-acme", "--approver", "alice", "--yes")
    assert created.exit_code == 0, created.output
    name = f"cli-acme-deletetenant-alice-{change.digest[7:15]}"
    assert f"approval.privatevault.io/{name} created" in created.stdout
    stored = kubectl.get("approval", name)
    assert stored is not None
    judged = verify(
        Approval.model_validate(stored),
        "cli-two-person",
        QuorumPolicySpec.model_validate(policy["spec"]),
        datetime.now(UTC),
    )
    assert (judged.verdict, judged.reason) == ("Valid", "signed by alice (Ed25519 and ML-DSA-65)")

    listed = pvctl("approvals", "list", "--target", "tenant/cli-acme", "--format", "json")
    assert [row["name"] for row in json.loads(listed.stdout)] == [name]

    again = pvctl("approvals", "create", "tenant/cli-acme", "--approver", "alice", "--yes")
    assert again.exit_code == 1
    assert "exists already" in again.stderr
