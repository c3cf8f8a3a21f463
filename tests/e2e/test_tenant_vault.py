"""Tenants with keys in OpenBao, made by the operator (with a least-privilege Vault token) on the real
control plane: a tenant's workload token uses its own key and is refused another tenant's, an
unrelated namespace gets nothing; CryptoShred makes old data undecryptable, Retain keeps it; with
OpenBao down a new tenant is Stalled/KMSUnavailable with nothing made, and Ready once it returns."""

from __future__ import annotations

import uuid
from typing import Any

import hvac
import pytest

from privatevault.errors import KmsError
from privatevault.kms.vault import VaultKms, kubernetes_login, role_name, vault_client
from privatevault.testbench import Bench
from tests import builders
from tests.e2e.conftest import grant_operator
from tests.support import Kubectl, Operator, condition, wait_for_condition

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]


def vault_tenant(name: str, **options: Any) -> dict[str, Any]:
    """A Tenant owned by the user ops, keeping its key in OpenBao."""
    return builders.tenant(name, owners=[builders.user("ops")], kms="vault", **options)


def ready(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return wait_for_condition(kubectl, "tenant", name, "Ready", timeout=90)


def workload_client(bench: Bench, kubectl: Kubectl, namespace: str, role: str) -> hvac.Client:
    kubectl.run("create", "serviceaccount", "app", "-n", namespace)
    jwt = kubectl.run("create", "token", "app", "-n", namespace, "--duration=10m").stdout.strip()
    client = vault_client(bench.openbao.address)
    kubernetes_login(client, role=role, jwt=jwt)
    return client


def test_isolation_and_deletion_policies(kubectl: Kubectl, bench: Bench, vault_operator: Operator) -> None:
    suffix = uuid.uuid4().hex[:6]
    a, b, other = f"va-{suffix}", f"vb-{suffix}", f"vx-{suffix}"
    kubectl.apply(vault_tenant(a, deletion_policy="CryptoShred"))
    kubectl.apply(vault_tenant(b, deletion_policy="Retain"))
    status_a = ready(kubectl, a)["status"]
    ready(kubectl, b)
    assert status_a["kms"].items() >= {"provider": "vault", "keyName": f"tenant-{a}", "latestVersion": 1}.items()

    client_a = workload_client(bench, kubectl, a, role_name(a))
    mine = VaultKms.for_tenant(client_a, a)
    assert mine.unwrap(mine.wrap(b"data key of a", context=b"ctx"), context=b"ctx") == b"data key of a"
    with pytest.raises(KmsError):
        VaultKms.for_tenant(client_a, b).wrap(b"x", context=b"ctx")
    token_a = kubectl.run("create", "token", "app", "-n", a, "--duration=10m").stdout.strip()
    with pytest.raises(KmsError):
        kubernetes_login(vault_client(bench.openbao.address), role=role_name(b), jwt=token_a)
    kubectl.run("create", "namespace", other)
    with pytest.raises(KmsError):
        workload_client(bench, kubectl, other, role_name(a))

    # Data wrapped before deletion: gone with CryptoShred, still there with Retain.
    root = vault_client(bench.openbao.address, token=bench.openbao.root_token)
    secret_a = VaultKms.for_tenant(root, a).wrap(b"shred me", context=b"ctx")
    secret_b = VaultKms.for_tenant(root, b).wrap(b"keep me", context=b"ctx")
    kubectl.run("delete", "tenant", a, b, "--wait=true")
    with pytest.raises(KmsError):
        VaultKms.for_tenant(root, a).unwrap(secret_a, context=b"ctx")
    assert VaultKms.for_tenant(root, b).unwrap(secret_b, context=b"ctx") == b"keep me"
    kubectl.run("delete", "namespace", other, "--wait=false")


def test_openbao_outage_stalls_then_recovers(kubectl: Kubectl, bench: Bench, vault_operator: Operator) -> None:
    name = f"vc-{uuid.uuid4().hex[:6]}"
    bench.openbao.stop()
    try:
        kubectl.apply(vault_tenant(name))

        cond = condition(wait_for_condition(kubectl, "tenant", name, "Stalled"), "Stalled")
        assert cond is not None
        assert cond["reason"] == "KMSUnavailable"
        assert kubectl.get("namespace", name) is None  # nothing half-made
    finally:
        bench.openbao.start()
        grant_operator(bench)  # dev mode starts empty: the operator's token is made again
    status = ready(kubectl, name)["status"]
    assert status["kms"]["provider"] == "vault"
    assert kubectl.get("namespace", name) is not None
    kubectl.run("delete", "tenant", name, "--wait=true")
