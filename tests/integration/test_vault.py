"""The Vault KMS on a real OpenBao and kube-apiserver: a tenant's ServiceAccount token logs in to
its own role and uses only its own key; other tenants' keys and roles, and unrelated namespaces,
get nothing; the operator's policy suffices for administration, and the operator logs in with its
own ServiceAccount token through Kubernetes auth (again once its token's lease runs out); destroy
crypto-shreds and retain keeps; secrets stay out of errors; and an OpenBao that is down, sealed or
silent is KmsUnavailable promptly, working again once it is back."""

from __future__ import annotations

import base64
import logging
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import hvac.exceptions
import pytest

from privatevault.errors import KmsError, KmsUnavailable
from privatevault.kms import KeyProvider
from privatevault.kms.vault import (
    KubernetesLogin,
    VaultAdmin,
    VaultKms,
    healthy,
    key_name,
    kubernetes_login,
    operator_policy,
    policy_name,
    role_name,
    vault_client,
)
from privatevault.testbench import Bench
from tests.support import Kubectl, eventually

pytestmark = pytest.mark.integration

SUFFIX = uuid.uuid4().hex[:8]
AUTH_MOUNT = f"kubernetes-{SUFFIX}"  # the dev server is shared: a mount of this module's own
ACCOUNT = "app"
PLAINTEXT = b"data key 0123456789abcdef0123456789abcdef"
TIMEOUT = 3.0

ClientFactory = Callable[..., hvac.Client]


@dataclass(frozen=True)
class World:
    """Tenants a and b (each a namespace with ServiceAccount ``app``) and an unrelated namespace c."""

    admin: VaultAdmin
    operator_token: str
    reviewer_jwt: str
    a: str
    b: str
    outsider: str


@pytest.fixture(scope="module")
def clients(bench: Bench) -> Iterator[ClientFactory]:
    """Makes clients of the bench's OpenBao (3 s timeout), closing them all at the end."""
    made: list[hvac.Client] = []

    def make(token: str | None = None, address: str | None = None, timeout: float = TIMEOUT) -> hvac.Client:
        client = vault_client(address or bench.openbao.address, token=token, timeout=timeout)
        made.append(client)
        return client

    yield make
    for client in made:
        client.adapter.close()


def operator_token(bench: Bench, clients: ClientFactory) -> str:
    """As the platform team would: the operator's policy written with the root token, and a token of it."""
    root = clients(bench.openbao.root_token)
    name = f"privatevault-operator-{SUFFIX}"
    root.write_data(f"sys/policies/acl/{name}", data={"policy": operator_policy(auth_mount=AUTH_MOUNT)})
    created = root.write_data("auth/token/create", data={"policies": [name], "ttl": "1h", "no_default_policy": True})
    token: str = created["auth"]["client_token"]
    return token


def provision(bench: Bench, admin: VaultAdmin, reviewer_jwt: str, tenants: dict[str, str]) -> None:
    """Every ensure_* the operator runs, for tenants mapped to their one namespace."""
    admin.ensure_transit_mount()
    admin.ensure_kubernetes_auth(
        bench.control_plane.server,
        bench.control_plane.ca_file.read_text(),
        issuer=bench.control_plane.service_account_issuer,
        token_reviewer_jwt=reviewer_jwt,
    )
    for tenant, namespace in tenants.items():
        admin.ensure_tenant_key(tenant)
        admin.ensure_tenant_policy(tenant)
        admin.ensure_tenant_role(tenant, [namespace], [ACCOUNT])


def namespace_with_account(kubectl: Kubectl, namespace: str, account: str = ACCOUNT) -> None:
    kubectl.run("create", "namespace", namespace)
    kubectl.run("create", "serviceaccount", account, "-n", namespace)


def sa_token(kubectl: Kubectl, namespace: str, account: str = ACCOUNT, duration: str = "10m") -> str:
    """A bound ServiceAccount token from the TokenRequest API, as a workload would have."""
    return kubectl.run("create", "token", account, "-n", namespace, f"--duration={duration}").stdout.strip()


@pytest.fixture(scope="module")
def world(bench: Bench, kubectl: Kubectl, clients: ClientFactory) -> Iterator[World]:
    reviewer_ns, binding = f"pv-reviewer-{SUFFIX}", f"pv-openbao-reviewer-{SUFFIX}"
    a, b, outsider = f"a-{SUFFIX}", f"b-{SUFFIX}", f"c-{SUFFIX}"
    # The reviewer: a ServiceAccount that may only create TokenReviews (and SubjectAccessReviews).
    namespace_with_account(kubectl, reviewer_ns, "openbao-reviewer")
    kubectl.run(
        "create",
        "clusterrolebinding",
        binding,
        "--clusterrole=system:auth-delegator",
        f"--serviceaccount={reviewer_ns}:openbao-reviewer",
    )
    for namespace in (a, b, outsider):
        namespace_with_account(kubectl, namespace)
    reviewer_jwt = sa_token(kubectl, reviewer_ns, "openbao-reviewer", "1h")
    token = operator_token(bench, clients)
    admin = VaultAdmin(clients(token), auth_mount=AUTH_MOUNT)
    provision(bench, admin, reviewer_jwt, {a: a, b: b})
    yield World(admin, token, reviewer_jwt, a, b, outsider)
    kubectl.run("delete", "clusterrolebinding", binding, "--wait=false", check=False)
    extra = [f"shred-{SUFFIX}", f"keep-{SUFFIX}"]  # made by the crypto-shred and retain tests
    kubectl.run("delete", "namespace", reviewer_ns, a, b, outsider, *extra, "--wait=false", "--ignore-not-found")


@pytest.fixture(scope="module")
def operator_kms(world: World, clients: ClientFactory) -> Callable[[str], VaultKms]:
    """The operator's own wrapping under a tenant's key, with the operator's token."""
    return lambda tenant: VaultKms.for_tenant(clients(world.operator_token), tenant)


def logged_in(clients: ClientFactory, tenant: str, jwt: str) -> hvac.Client:
    client = clients()
    kubernetes_login(client, role=role_name(tenant), jwt=jwt, mount=AUTH_MOUNT)
    return client


def refused(error: pytest.ExceptionInfo[KmsError], *secrets: str | bytes) -> str:
    """The message of a refusal (never an outage), checked to hold none of ``secrets``."""
    assert not isinstance(error.value, KmsUnavailable), error.value
    message = str(error.value)
    for secret in secrets:
        text = secret.decode() if isinstance(secret, bytes) else secret
        assert text not in message
    return message


def test_vault_kms_is_a_key_provider(world: World, operator_kms: Callable[[str], VaultKms]) -> None:
    provider: KeyProvider = operator_kms(world.a)
    assert provider.name == "vault"


def test_a_tenant_token_uses_its_own_key_and_nothing_else(
    world: World, kubectl: Kubectl, clients: ClientFactory, operator_kms: Callable[[str], VaultKms]
) -> None:
    jwt = sa_token(kubectl, world.a)
    client = logged_in(clients, world.a, jwt)
    own = VaultKms.for_tenant(client, world.a)

    wrapped = own.wrap(PLAINTEXT, context=b"tenant=a")
    assert wrapped.startswith(b"vault:v1:")
    assert own.unwrap(wrapped, context=b"tenant=a") == PLAINTEXT

    other = VaultKms.for_tenant(client, world.b)
    with pytest.raises(KmsError) as denied:
        other.wrap(PLAINTEXT, context=b"tenant=a")
    assert "permission denied" in refused(denied, PLAINTEXT, jwt, client.token)
    b_wrapped = operator_kms(world.b).wrap(PLAINTEXT, context=b"tenant=b")
    with pytest.raises(KmsError) as denied:
        other.unwrap(b_wrapped, context=b"tenant=b")
    assert "permission denied" in refused(denied, PLAINTEXT, jwt, client.token)
    # Nor may the tenant read, rotate or delete its own key: its policy is use, not administration.
    with pytest.raises(KmsError):
        VaultAdmin(client, auth_mount=AUTH_MOUNT).tenant_key(world.a)
    with pytest.raises(KmsError):
        VaultAdmin(client, auth_mount=AUTH_MOUNT).rotate_tenant_key(world.a)


def test_a_tenant_token_cannot_log_in_to_another_tenants_role(
    world: World, kubectl: Kubectl, clients: ClientFactory
) -> None:
    jwt = sa_token(kubectl, world.a)
    with pytest.raises(KmsError) as denied:
        logged_in(clients, world.b, jwt)
    assert "namespace not authorized" in refused(denied, jwt)


def test_a_token_from_an_unrelated_namespace_gets_nothing(
    world: World, kubectl: Kubectl, clients: ClientFactory
) -> None:
    jwt = sa_token(kubectl, world.outsider)
    for tenant in (world.a, world.b):
        with pytest.raises(KmsError) as denied:
            logged_in(clients, tenant, jwt)
        assert "namespace not authorized" in refused(denied, jwt)


def test_the_operator_token_administers_tenants_but_nothing_else(
    bench: Bench, world: World, clients: ClientFactory
) -> None:
    operator = clients(world.operator_token)
    with pytest.raises(hvac.exceptions.Forbidden):
        operator.write_data("sys/policies/acl/default", data={"policy": ""})
    with pytest.raises(hvac.exceptions.Forbidden):
        operator.write_data("sys/mounts/elsewhere", data={"type": "transit"})
    with pytest.raises(hvac.exceptions.Forbidden):
        operator.read(f"privatevault-transit/export/encryption-key/{key_name(world.a)}")
    # Every ensure_* is idempotent: a second run changes nothing.
    admin = world.admin
    assert admin.ensure_transit_mount() is False
    assert admin.ensure_tenant_policy(world.a) is False
    assert admin.ensure_tenant_role(world.a, [world.a], [ACCOUNT]) is False
    assert admin.ensure_tenant_key(world.a) == admin.tenant_key(world.a)
    # OpenBao never shows the reviewer JWT it holds, so a call that passes one always writes it.
    server, ca_pem = bench.control_plane.server, bench.control_plane.ca_file.read_text()
    issuer = bench.control_plane.service_account_issuer
    assert admin.ensure_kubernetes_auth(server, ca_pem, issuer=issuer, token_reviewer_jwt=world.reviewer_jwt)


def test_the_operator_logs_in_with_its_service_account_and_again_when_its_token_expires(
    bench: Bench, kubectl: Kubectl, world: World, tmp_path: Path
) -> None:
    # As the platform team would, once: a role for the operator's ServiceAccount with its policy.
    namespace, role = f"pv-operator-{SUFFIX}", f"privatevault-operator-{SUFFIX}"
    namespace_with_account(kubectl, namespace, "privatevault")
    root = vault_client(bench.openbao.address, token=bench.openbao.root_token)
    root.write_data(
        f"auth/{AUTH_MOUNT}/role/{role}",
        data={
            "bound_service_account_names": ["privatevault"],
            "bound_service_account_namespaces": [namespace],
            "token_policies": [role],
            "token_ttl": "3s",
            "token_max_ttl": "3s",
        },
    )
    jwt_file = tmp_path / "token"
    jwt_file.write_text(sa_token(kubectl, namespace, "privatevault"))
    client = vault_client(bench.openbao.address, login=KubernetesLogin(role=role, jwt_file=jwt_file, mount=AUTH_MOUNT))
    admin = VaultAdmin(client, auth_mount=AUTH_MOUNT)
    tenant = f"login-{SUFFIX}"
    assert admin.ensure_tenant_key(tenant).latest_version == 1
    first = client.token
    assert first and role in client.auth.token.lookup_self()["data"]["policies"]
    time.sleep(3.5)  # the token's lease is over: the next call logs in again
    assert admin.ensure_tenant_key(tenant).latest_version == 1
    assert client.token and client.token != first
    with pytest.raises(hvac.exceptions.Forbidden):
        vault_client(bench.openbao.address, token=first).lookup_token()
    # Another namespace's ServiceAccount is refused, and the JWT stays out of the message.
    outsider = tmp_path / "outsider"
    outsider.write_text(sa_token(kubectl, world.a))
    stranger = VaultAdmin(
        vault_client(bench.openbao.address, login=KubernetesLogin(role=role, jwt_file=outsider, mount=AUTH_MOUNT)),
        auth_mount=AUTH_MOUNT,
    )
    with pytest.raises(KmsError) as error:
        stranger.ensure_tenant_key(tenant)
    assert f"role {role}" in str(error.value) and outsider.read_text() not in str(error.value)
    kubectl.run("delete", "namespace", namespace, "--wait=false")


def test_context_is_authenticated_and_secrets_stay_out_of_errors(
    world: World, operator_kms: Callable[[str], VaultKms], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    kms = operator_kms(world.a)
    wrapped = kms.wrap(PLAINTEXT, context=b"purpose=one")
    encoded = base64.b64encode(PLAINTEXT).decode()
    token = world.operator_token
    with pytest.raises(KmsError) as wrong_context:
        kms.unwrap(wrapped, context=b"purpose=two")
    assert "message authentication failed" in refused(wrong_context, PLAINTEXT, encoded, token)
    assert encoded not in str(wrong_context.value.__cause__)
    tampered = wrapped[:-6] + (b"AAAA==" if not wrapped.endswith(b"AAAA==") else b"BBBB==")
    with pytest.raises(KmsError) as changed:
        kms.unwrap(tampered, context=b"purpose=one")
    refused(changed, PLAINTEXT, encoded, token)
    with pytest.raises(KmsError, match="not a Transit ciphertext"):
        kms.unwrap(b"\x01local-format", context=b"purpose=one")
    assert PLAINTEXT.decode() not in caplog.text and encoded not in caplog.text and token not in caplog.text


def test_rotation_keeps_old_ciphertexts_until_the_minimum_version_moves(
    world: World, operator_kms: Callable[[str], VaultKms]
) -> None:
    tenant = f"rot-{SUFFIX}"
    admin, kms = world.admin, operator_kms(tenant)
    first = admin.ensure_tenant_key(tenant)
    assert (first.latest_version, first.min_decryption_version, first.deletion_allowed) == (1, 1, False)
    assert first.created == first.rotated and first.created.endswith("+00:00")
    old = kms.wrap(PLAINTEXT, context=b"c")
    rotated = admin.rotate_tenant_key(tenant)
    assert rotated.latest_version == 2 and rotated.rotated >= first.rotated
    assert kms.wrap(PLAINTEXT, context=b"c").startswith(b"vault:v2:")
    assert kms.unwrap(old, context=b"c") == PLAINTEXT
    assert admin.rotate_tenant_key(tenant, min_decryption_version=3).min_decryption_version == 3
    with pytest.raises(KmsError):
        kms.unwrap(old, context=b"c")
    admin.destroy_tenant_key(tenant)


def tenant_with_workload(bench: Bench, world: World, kubectl: Kubectl, clients: ClientFactory, tenant: str) -> VaultKms:
    """A provisioned tenant whose workload is logged in: its KMS."""
    namespace_with_account(kubectl, tenant)
    provision(bench, world.admin, world.reviewer_jwt, {tenant: tenant})
    return VaultKms.for_tenant(logged_in(clients, tenant, sa_token(kubectl, tenant)), tenant)


def test_destroy_crypto_shreds(
    bench: Bench,
    world: World,
    kubectl: Kubectl,
    clients: ClientFactory,
    operator_kms: Callable[[str], VaultKms],
) -> None:
    tenant, admin = f"shred-{SUFFIX}", world.admin
    workload = tenant_with_workload(bench, world, kubectl, clients, tenant)
    kms = operator_kms(tenant)
    wrapped = kms.wrap(PLAINTEXT, context=b"c")
    assert workload.unwrap(wrapped, context=b"c") == PLAINTEXT

    admin.destroy_tenant_key(tenant)
    admin.destroy_tenant_key(tenant)  # idempotent

    for anyone in (kms, workload):
        with pytest.raises(KmsError) as gone:
            anyone.unwrap(wrapped, context=b"c")
        refused(gone, PLAINTEXT)
    assert admin.tenant_key(tenant) is None
    root = clients(bench.openbao.root_token)
    assert root.read(f"sys/policies/acl/{policy_name(tenant)}") is None
    assert root.read(f"auth/{AUTH_MOUNT}/role/{role_name(tenant)}") is None


def test_retain_keeps_the_key_undeletable(
    bench: Bench,
    world: World,
    kubectl: Kubectl,
    clients: ClientFactory,
    operator_kms: Callable[[str], VaultKms],
) -> None:
    tenant, admin = f"keep-{SUFFIX}", world.admin
    workload = tenant_with_workload(bench, world, kubectl, clients, tenant)
    kms = operator_kms(tenant)
    wrapped = kms.wrap(PLAINTEXT, context=b"c")

    facts = admin.retain_tenant_key(tenant)

    assert facts is not None and facts.deletion_allowed is False
    assert kms.unwrap(wrapped, context=b"c") == PLAINTEXT
    # The workload's OpenBao token is still within its TTL, but its policy is gone.
    with pytest.raises(KmsError) as denied:
        workload.unwrap(wrapped, context=b"c")
    assert "permission denied" in refused(denied, PLAINTEXT)
    root = clients(bench.openbao.root_token)
    assert root.read(f"sys/policies/acl/{policy_name(tenant)}") is None
    assert root.read(f"auth/{AUTH_MOUNT}/role/{role_name(tenant)}") is None
    with pytest.raises(hvac.exceptions.InvalidRequest, match="deletion is not allowed"):
        root.delete(f"privatevault-transit/keys/{key_name(tenant)}")
    admin.destroy_tenant_key(tenant)


def test_without_a_reviewer_each_login_jwt_reviews_itself(
    bench: Bench, kubectl: Kubectl, clients: ClientFactory
) -> None:
    """The alternative TokenReview mode: it works only once the workload may create TokenReviews."""
    tenant, mount, binding = f"self-{SUFFIX}", f"k8s-self-{SUFFIX}", f"pv-self-review-{SUFFIX}"
    admin = VaultAdmin(clients(bench.openbao.root_token), auth_mount=mount)
    admin.ensure_transit_mount()
    server, ca_pem = bench.control_plane.server, bench.control_plane.ca_file.read_text()
    assert admin.ensure_kubernetes_auth(server, ca_pem) is True
    assert admin.ensure_kubernetes_auth(server, ca_pem) is False
    admin.ensure_tenant_key(tenant)
    admin.ensure_tenant_policy(tenant)
    admin.ensure_tenant_role(tenant, [tenant], [ACCOUNT])
    namespace_with_account(kubectl, tenant)
    try:
        jwt = sa_token(kubectl, tenant)
        with pytest.raises(KmsError) as denied:
            kubernetes_login(clients(), role=role_name(tenant), jwt=jwt, mount=mount)
        refused(denied, jwt)

        kubectl.run(
            "create",
            "clusterrolebinding",
            binding,
            "--clusterrole=system:auth-delegator",
            f"--serviceaccount={tenant}:{ACCOUNT}",
        )
        client = clients()

        def login() -> bool:
            try:
                kubernetes_login(client, role=role_name(tenant), jwt=jwt, mount=mount)
            except KmsError:
                return False
            return True

        eventually(login, timeout=30, what="a self-reviewed login")
        kms = VaultKms.for_tenant(client, tenant)
        assert kms.unwrap(kms.wrap(PLAINTEXT, context=b"c"), context=b"c") == PLAINTEXT
    finally:
        admin.destroy_tenant_key(tenant)
        kubectl.run("delete", "clusterrolebinding", binding, "--wait=false", check=False)
        kubectl.run("delete", "namespace", tenant, "--wait=false", check=False)


def test_a_silent_server_is_unavailable_after_the_timeout(clients: ClientFactory) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        kms = VaultKms(clients("token", address=address, timeout=1.0), "tenant-x")
        began = time.monotonic()
        with pytest.raises(KmsUnavailable, match="cannot be reached"):
            kms.wrap(PLAINTEXT, context=b"c")
        assert time.monotonic() - began < 3
        assert not kms.healthy()


def test_openbao_down_or_sealed_is_unavailable_then_recovers(
    bench: Bench, world: World, kubectl: Kubectl, clients: ClientFactory
) -> None:
    """Last in this module: the restarted dev server starts empty, so everything is provisioned again."""
    root = clients(bench.openbao.root_token)
    kms = VaultKms.for_tenant(clients(bench.openbao.root_token), world.a)
    assert kms.healthy()
    try:
        root.sys.seal()
        with pytest.raises(KmsUnavailable) as sealed:
            kms.wrap(PLAINTEXT, context=b"c")
        assert "sealed" in str(sealed.value) and PLAINTEXT.decode() not in str(sealed.value)
        assert not kms.healthy()

        bench.openbao.stop()
        began = time.monotonic()
        with pytest.raises(KmsUnavailable, match="cannot be reached"):
            kms.wrap(PLAINTEXT, context=b"c")
        with pytest.raises(KmsUnavailable):
            kms.unwrap(b"vault:v1:AAAA", context=b"c")
        assert time.monotonic() - began < TIMEOUT
        assert not kms.healthy() and not world.admin.healthy()
        with pytest.raises(KmsUnavailable):
            world.admin.ensure_tenant_key(world.a)
    finally:
        if not healthy(clients()):
            bench.openbao.stop()
            bench.openbao.start()

    assert kms.healthy()
    admin = VaultAdmin(clients(operator_token(bench, clients)), auth_mount=AUTH_MOUNT)
    provision(bench, admin, world.reviewer_jwt, {world.a: world.a})
    client = logged_in(clients, world.a, sa_token(kubectl, world.a))
    again = VaultKms.for_tenant(client, world.a)
    assert again.unwrap(again.wrap(PLAINTEXT, context=b"c"), context=b"c") == PLAINTEXT
