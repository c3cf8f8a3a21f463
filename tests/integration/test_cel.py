"""The real API server refuses bad specs with the CRDs' CEL rules and schema, with readable messages,
and accepts the good ones next to them."""

from __future__ import annotations

from typing import Any

import pytest

from tests import builders
from tests.support import Kubectl

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("crds")]


def tenant(name: str, **options: Any) -> dict[str, Any]:
    """A Tenant owned by the user alice: the cases are about its other fields."""
    options.setdefault("owners", [builders.user("alice")])
    return builders.tenant(name, **options)


def quorum(name: str, approvers: int, min_approvals: int) -> dict[str, Any]:
    """A QuorumPolicy of ``approvers`` approvers whose rule for deleting a tenant needs ``min_approvals``."""
    return builders.quorum_policy(
        name,
        approvers=[builders.approver(f"approver-{i}") for i in range(approvers)],
        rules=[builders.rule("DeleteTenant", min_approvals=min_approvals)],
    )


@pytest.mark.parametrize(
    ("good", "bad", "message"),
    [
        (
            builders.protection_policy("pp-hybrid", mode="Hybrid", kem="X-Wing", signature="Ed25519+ML-DSA-65"),
            builders.protection_policy("pp-x25519", mode="PQC", kem="X25519"),
            "mode PQC or Hybrid needs a post-quantum KEM",
        ),
        (
            builders.protection_policy("pp-pqc", mode="PQC", kem="ML-KEM-1024", signature="ML-DSA-87"),
            builders.protection_policy("pp-ed25519", mode="Hybrid", kem="X-Wing", signature="Ed25519"),
            "Ed25519 and ECDSA-P384 alone are classical",
        ),
        (
            builders.protection_policy("pp-classical", mode="Classical", kem="X25519", signature="ECDSA-P384"),
            builders.protection_policy("pp-ecdsa", mode="PQC", signature="ECDSA-P384"),
            "needs a post-quantum or composite signature",
        ),
        (
            quorum("qp-ok", approvers=3, min_approvals=3),
            quorum("qp-too-many", approvers=2, min_approvals=3),
            "a rule cannot require more approvals than the policy has approvers",
        ),
        (
            builders.evidence_export("ee-ok", start="2026-01-01T00:00:00Z", end="2026-02-01T00:00:00Z"),
            builders.evidence_export("ee-backwards", start="2026-02-01T00:00:00Z", end="2026-01-01T00:00:00Z"),
            "the evidence window must start before it ends",
        ),
        (tenant("t-ok"), tenant("t-region", region="Europe"), "spec.region: Invalid value"),
        (
            tenant("t-ns-ok", namespaces=["a-b"]),
            tenant("t-ns-bad", namespaces=["Not_A_Label"]),
            "spec.namespaces[0]: Invalid value",
        ),
        (
            tenant("t-owner-ok"),
            tenant("t-owner-bad", owners=[{"kind": "Robot", "name": "r2"}]),
            'Unsupported value: "Robot"',
        ),
        (
            tenant("t-sa-ok", owners=[builders.service_account("ci", "tools")]),
            tenant("t-sa-bad", owners=[{"kind": "ServiceAccount", "name": "ci"}]),
            "a ServiceAccount owner needs the namespace it lives in",
        ),
        (tenant("t-locale-ok", locale="de-DE"), tenant("t-locale-bad", locale="german"), "spec.locale: Invalid value"),
    ],
    ids=lambda v: v if isinstance(v, str) else v["metadata"]["name"] if isinstance(v, dict) else None,
)
def test_refused_with_message_and_good_neighbour_accepted(
    kubectl: Kubectl, good: dict[str, Any], bad: dict[str, Any], message: str
) -> None:
    kubectl.apply(good)
    refused = kubectl.apply(bad, check=False)
    assert refused.returncode != 0
    assert message in refused.stderr, refused.stderr
    assert kubectl.get(bad["kind"].lower(), bad["metadata"]["name"]) is None


def test_tenant_region_cannot_change(kubectl: Kubectl) -> None:
    kubectl.apply(tenant("t-residency", region="eu-central-1"))
    moved = kubectl.apply(tenant("t-residency", region="us-east-1"), check=False)
    assert moved.returncode != 0
    assert "region is immutable" in moved.stderr
    other_change = kubectl.apply(tenant("t-residency", region="eu-central-1", locale="fr-FR"), check=False)
    assert other_change.returncode == 0, other_change.stderr


def test_approval_is_immutable(kubectl: Kubectl) -> None:
    kubectl.apply(builders.approval("ap-frozen", digest="sha256:" + "a" * 64))
    refused = kubectl.apply(builders.approval("ap-frozen", digest="sha256:" + "b" * 64), check=False)
    assert refused.returncode != 0
    assert "an Approval is immutable once created" in refused.stderr
