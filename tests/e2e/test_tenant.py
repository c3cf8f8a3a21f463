"""A Tenant end to end through kubectl on the real control plane, with the operator as a real
process and the ledger in the real PostgreSQL: children made and labelled, quota followed, drift
restored, conflicts Stalled, deletion garbage-collected, one audit record per change in a valid
chain, and a crash mid-reconcile converging with no duplicate record."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from privatevault.ledger import verify_chain
from privatevault.ledger.schema import Database
from privatevault.ledger.store import Ledger
from privatevault.testbench.ports import free_port
from tests import builders
from tests.support import Kubectl, Operator, condition, eventually, wait_for_condition

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]


@pytest.fixture
def operator(kubectl: Kubectl, operator_dsn_file: Path, tmp_path: Path) -> Iterator[Operator]:
    running = Operator(
        tmp_path,
        kubectl.kubeconfig,
        operator_dsn_file,
        PRIVATEVAULT_METRICS_PORT=str(free_port()),
        PRIVATEVAULT_METRICS_ADDR="127.0.0.1",
    ).start()
    yield running
    running.stop()


def ready(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return wait_for_condition(kubectl, "tenant", name, "Ready", current=True)


def records(database: Database, tenant_name: str) -> list[dict[str, Any]]:
    """The tenant's ledger records as written, once the whole chain is checked."""
    ledger = Ledger(database.operator_dsn)
    try:
        assert verify_chain(ledger.records()) is None
        return [json.loads(r.canonical) for r in ledger.records(tenant=tenant_name)]
    finally:
        ledger.close()


def actions(database: Database, tenant_name: str) -> list[str]:
    return [record["action"] for record in records(database, tenant_name)]


def exists(kubectl: Kubectl, resource: dict[str, Any]) -> bool:
    """Whether the object a ledger record names is in the cluster."""
    return kubectl.get(resource["kind"].lower(), resource["name"], resource.get("namespace")) is not None


def test_tenant_lifecycle(kubectl: Kubectl, operator: Operator, database: Database, tmp_path: Path) -> None:
    kubectl.apply(
        builders.tenant("e2e-life", quota={"pods": 10, "requests.cpu": "2"}, limits={"default": {"cpu": "500m"}})
    )
    obj = ready(kubectl, "e2e-life")
    assert obj["status"]["namespaces"] == ["e2e-life"]

    ns = kubectl.get("namespace", "e2e-life")
    assert ns is not None
    labels = ns["metadata"]["labels"]
    assert labels["privatevault.io/tenant"] == "e2e-life"
    assert labels["privatevault.io/region"] == "eu-west-1"
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert ns["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    quota = kubectl.get("resourcequota", "privatevault-quota", "e2e-life")
    assert quota is not None and quota["spec"]["hard"] == {"pods": "10", "requests.cpu": "2"}
    limits = kubectl.get("limitrange", "privatevault-limits", "e2e-life")
    assert limits is not None and limits["spec"]["limits"][0]["default"] == {"cpu": "500m"}
    # The owners are admins in the tenant's namespace and nothing elsewhere.
    as_owner = ["--as=someone", "--as-group=e2e-life-admins"]
    eventually(
        lambda: (
            kubectl.run(
                "auth", "can-i", "create", "deployments", "-n", "e2e-life", *as_owner, check=False
            ).stdout.strip()
            == "yes"
        ),
        what="the owners' RoleBinding in force",
    )
    refused = kubectl.run("auth", "can-i", "create", "deployments", "-n", "default", *as_owner, check=False)
    assert refused.stdout.strip() == "no"
    policy = kubectl.get("networkpolicy", "privatevault-isolation", "e2e-life")
    assert policy is not None and policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "privatevault.io/tenant": "e2e-life"
    }

    # The quota follows the spec.
    kubectl.run("patch", "tenant", "e2e-life", "--type=merge", "-p", '{"spec":{"quota":{"hard":{"pods":20}}}}')
    ready(kubectl, "e2e-life")
    eventually(
        lambda: (
            (kubectl.get("resourcequota", "privatevault-quota", "e2e-life") or {}).get("spec", {}).get("hard")
            == {"pods": "20", "requests.cpu": "2"}
        ),
        what="quota updated",
    )

    # A TLS certificate in the tenant's namespace shows in the crypto inventory and the metrics.
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pay.e2e.example")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=400))
        .sign(key, hashes.SHA384())
    )
    (tmp_path / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "tls.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    kubectl.run(
        "create",
        "secret",
        "tls",
        "pay-tls",
        "-n",
        "e2e-life",
        f"--cert={tmp_path / 'tls.crt'}",
        f"--key={tmp_path / 'tls.key'}",
    )
    eventually(
        lambda: (
            ((kubectl.get("tenant", "e2e-life") or {}).get("status", {}).get("cryptoInventory") or {}).get(
                "quantumVulnerable"
            )
            == 1
        ),
        what="the certificate in the crypto inventory",
    )
    port = operator.process.env["PRIVATEVAULT_METRICS_PORT"]  # type: ignore[index]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        scraped = response.read().decode()
    assert (
        'privatevault_crypto_assets{algorithm="ECDSA-P384",quantum_vulnerable="true",tenant="e2e-life"} 1.0' in scraped
    )

    # A deleted child is restored by the drift timer.
    kubectl.run("delete", "networkpolicy", "privatevault-isolation", "-n", "e2e-life")
    eventually(lambda: kubectl.get("networkpolicy", "privatevault-isolation", "e2e-life"), what="policy restored")

    made = [
        "create-namespace",
        "create-resourcequota",
        "create-limitrange",
        "create-networkpolicy",
        "create-rolebinding",
    ]
    assert actions(database, "e2e-life") == [
        "assign-mcs-level",
        "provision-kek",
        *made,
        "update-resourcequota",
        "crypto-inventory",
        "create-networkpolicy",
    ]
    assert ns["metadata"]["annotations"]["privatevault.io/mcs-level"] == obj["status"]["mcsLevel"]
    assert obj["status"]["kms"]["provider"] == "local"

    # Deleting the tenant: the finalizer retains the key and tombstones the level, then the
    # garbage collector removes every child.
    kubectl.run("delete", "tenant", "e2e-life", "--wait=true")
    eventually(lambda: kubectl.get("namespace", "e2e-life") is None, timeout=90, what="namespace gone")
    assert actions(database, "e2e-life")[-3:] == ["delete-tenant", "retain-kek", "release-mcs-level"]


def test_namespace_owned_by_nobody_stalls(kubectl: Kubectl, operator: Operator, database: Database) -> None:
    kubectl.run("create", "namespace", "e2e-taken")
    kubectl.apply(builders.tenant("e2e-grabber", namespaces=["e2e-grabber", "e2e-taken"]))

    cond = condition(wait_for_condition(kubectl, "tenant", "e2e-grabber", "Stalled"), "Stalled")
    assert cond is not None
    assert cond["reason"] == "NamespaceConflict"
    assert "e2e-taken already exists and is not managed by PrivateVault" in cond["message"]
    assert kubectl.get("namespace", "e2e-grabber") is None  # nothing half-made
    assert actions(database, "e2e-grabber") == []

    # Fixing the spec clears the stall.
    kubectl.run("patch", "tenant", "e2e-grabber", "--type=merge", "-p", '{"spec":{"namespaces":["e2e-grabber"]}}')
    ready(kubectl, "e2e-grabber")
    kubectl.run("delete", "tenant", "e2e-grabber", "--wait=true")


def test_crash_mid_reconcile_converges_without_duplicates(
    kubectl: Kubectl,
    operator_dsn_file: Path,
    database: Database,
    tmp_path: Path,
) -> None:
    crashing = Operator(
        tmp_path, kubectl.kubeconfig, operator_dsn_file, PRIVATEVAULT_FAILPOINTS="after-audit=5"
    ).start()
    kubectl.apply(builders.tenant("e2e-crash", namespaces=["e2e-crash-a", "e2e-crash-b"]))
    eventually(lambda: not crashing.process.is_running, what="the operator to crash at the failpoint")
    crashing.stop()
    # The fifth change was recorded, then the process died before making it; every change
    # recorded before it was made. The crash falls inside a namespace already made.
    before = records(database, "e2e-crash")
    assert [r["action"] for r in before][:2] == ["assign-mcs-level", "provision-kek"]
    assert len(before) == 5
    *made, announced = [r["resource"] for r in before[2:]]
    assert [ref for ref in made if not exists(kubectl, ref)] == []
    assert not exists(kubectl, announced)
    assert announced.get("namespace") in {ref["name"] for ref in made if ref["kind"] == "Namespace"}

    # Restarted as a Deployment would be: the same namespace, so the same keys and published checkpoint.
    restarted = Operator(
        tmp_path, kubectl.kubeconfig, operator_dsn_file, PRIVATEVAULT_NAMESPACE=crashing.namespace
    ).start()
    try:
        obj = ready(kubectl, "e2e-crash")
        assert sorted(obj["status"]["namespaces"]) == ["e2e-crash-a", "e2e-crash-b"]
        recorded = actions(database, "e2e-crash")
        assert len(recorded) == 12  # level, key, 2 namespaces and 4 policies in each: one record per change
        per_namespace = ["create-resourcequota", "create-limitrange", "create-networkpolicy", "create-rolebinding"]
        assert sorted(recorded) == sorted(
            ["assign-mcs-level", "provision-kek"] + ["create-namespace"] * 2 + per_namespace * 2
        )
    finally:
        kubectl.run("delete", "tenant", "e2e-crash", "--wait=true")
        restarted.stop()
