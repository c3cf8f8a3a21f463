"""The real API server refuses bad specs with the CRDs' CEL rules and schema, with readable messages,
and accepts the good ones next to them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support import Kubectl

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("crds")]

API = "privatevault.io/v1alpha1"


def tenant(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Tenant",
        "metadata": {"name": name},
        "spec": {"owners": [{"kind": "User", "name": "alice"}], "region": "eu-west-1", **spec},
    }


def protection(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "ProtectionPolicy", "metadata": {"name": name}, "spec": spec}


def quorum(name: str, approvers: int, min_approvals: int) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "QuorumPolicy",
        "metadata": {"name": name},
        "spec": {
            "approvers": [{"name": f"approver-{i}", "publicKeys": {"ed25519": "AAAA"}} for i in range(approvers)],
            "rules": [{"action": "DeleteTenant", "minApprovals": min_approvals}],
        },
    }


def export(name: str, start: str, end: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "EvidenceExport",
        "metadata": {"name": name},
        "spec": {"tenants": ["acme"], "window": {"from": start, "to": end}},
    }


def approval(name: str, digest: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Approval",
        "metadata": {"name": name},
        "spec": {
            "action": {"verb": "DeleteTenant", "kind": "Tenant", "name": "acme", "digest": f"sha256:{digest * 64}"},
            "approver": "approver-0",
            "signatures": [{"algorithm": "Ed25519", "keyId": "k1", "signature": "c2ln"}],
            "expires": "2030-01-01T00:00:00Z",
        },
    }


@pytest.mark.parametrize(
    ("good", "bad", "message"),
    [
        (
            protection("pp-hybrid", mode="Hybrid", kem="X-Wing", signature="Ed25519+ML-DSA-65"),
            protection("pp-x25519", mode="PQC", kem="X25519"),
            "mode PQC or Hybrid needs a post-quantum KEM",
        ),
        (
            protection("pp-pqc", mode="PQC", kem="ML-KEM-1024", signature="ML-DSA-87"),
            protection("pp-ed25519", mode="Hybrid", kem="X-Wing", signature="Ed25519"),
            "Ed25519 and ECDSA-P384 alone are classical",
        ),
        (
            protection("pp-classical", mode="Classical", kem="X25519", signature="ECDSA-P384"),
            protection("pp-ecdsa", mode="PQC", signature="ECDSA-P384"),
            "needs a post-quantum or composite signature",
        ),
        (
            quorum("qp-ok", approvers=3, min_approvals=3),
            quorum("qp-too-many", approvers=2, min_approvals=3),
            "a rule cannot require more approvals than the policy has approvers",
        ),
        (
            export("ee-ok", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"),
            export("ee-backwards", "2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z"),
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
            tenant("t-sa-ok", owners=[{"kind": "ServiceAccount", "name": "ci", "namespace": "tools"}]),
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
    original = approval("ap-frozen", "a")
    kubectl.apply(original)
    changed = copy.deepcopy(original)
    changed["spec"]["action"]["digest"] = "sha256:" + "b" * 64
    refused = kubectl.apply(changed, check=False)
    assert refused.returncode != 0
    assert "an Approval is immutable once created" in refused.stderr
