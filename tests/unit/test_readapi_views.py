"""The read API's tenant and status views, shaped from objects as the API server holds them, and
its OpenAPI document matching the committed file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from privatevault.readapi import openapi, views
from privatevault.readapi.models import KeyView, PendingView, TenantView
from tests.unit.fakes import FakeCluster

NOTE = (
    "privatevault.io/ledger\n12\nq83vEjoRzuoebLvJSNaBQLg4E1hgu3/YNNT7cOq6IXc=\n\n"
    "\u2014 privatevault.io/ledger AAAAAQ==\n\u2014 witness.example/w1 AAAAAg==\n"
)


def tenant(name: str, ready: str, reason: str, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "privatevault.io/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": name},
        "spec": {"region": "eu-west-1", "quorumPolicyRef": "two-person", "protectionPolicyRef": "hybrid"},
        "status": {"conditions": [{"type": "Ready", "status": ready, "reason": reason}], **status},
    }


def test_tenant_view() -> None:
    obj = tenant(
        "acme",
        "False",
        "AwaitingQuorum",
        mcsLevel="s0:c1,c2",
        namespaces=["acme"],
        kms={"provider": "vault", "keyName": "tenant-acme", "latestVersion": 2},
        pending=[
            {"action": "DeleteTenant", "approvals": "0/2", "message": "m", "state": "Pending"},
            {"action": "CryptoShred", "approvals": "2/2", "message": "m", "state": "Approved"},
        ],
    )
    assert views.tenant_view(obj) == TenantView(
        name="acme",
        ready="False",
        reason="AwaitingQuorum",
        region="eu-west-1",
        level="s0:c1,c2",
        namespaces=["acme"],
        key=KeyView(provider="vault", key_name="tenant-acme", latest_version=2),
        protection_policy="hybrid",
        quorum_policy="two-person",
        pending=[PendingView(action="DeleteTenant", approvals="0/2", message="m")],
    )
    bare = {"metadata": {"name": "new"}}
    assert views.tenant_view(bare).ready == "Unknown"


def test_note_and_cosigners() -> None:
    view = views.note_view(NOTE)
    assert view is not None and view.size == 12 and view.origin == "privatevault.io/ledger"
    assert views.signers(NOTE, origin="privatevault.io/ledger") == ["witness.example/w1"]
    assert views.note_view(None) is None and views.note_view("garbage") is None


class Sized:
    def size(self) -> int:
        return 12


def test_status() -> None:
    cluster = FakeCluster()
    cluster.put(tenant("acme", "True", "Reconciled"))
    cluster.put(tenant("globex", "True", "Reconciled"))
    cluster.put(tenant("sandbox", "False", "AwaitingQuorum", pending=[{"action": "DeleteTenant", "approvals": "0/2"}]))
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "privatevault-ledger-checkpoint", "namespace": "pv"},
            "data": {"checkpoint": NOTE},
        }
    )

    cluster.put(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "privatevault-operator", "namespace": "pv"},
            "spec": {"holderIdentity": "pod-a-1"},
        }
    )

    def down() -> bool:
        raise OSError("refused")

    found = views.status(
        views.Sources(cluster=cluster, ledger=Sized(), namespace="pv", kms={"local": lambda: True, "vault": down})
    )
    assert found.ledger.size == 12 and found.ledger.integrity_ok is None
    assert found.operator == {"namespace": "pv", "version": "0.1.0", "leader": "pod-a-1"}
    assert found.checkpoint is not None and found.checkpoint.size == 12
    assert found.cosignatures == ["witness.example/w1"]
    assert found.kms == {"local": "Reachable", "vault": "Unreachable: OSError"}
    assert found.tenants_by_condition == {"True/Reconciled": 2, "False/AwaitingQuorum": 1}
    assert found.awaiting_quorum == ["tenant/sandbox: DeleteTenant 0/2"]


def test_openapi_committed() -> None:
    committed = Path(__file__).parents[2] / "docs" / "openapi" / "read-api.json"
    assert not openapi.drifted(committed), "run `make generate` and commit docs/openapi/read-api.json"
    paths = openapi.document()["paths"]
    assert {"/healthz", "/readyz", "/api/v1/audit", "/api/v1/proofs/{seq}", "/api/v1/evidence/{name}"} <= set(paths)
