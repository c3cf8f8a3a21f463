"""The Vault KMS: each tenant's key-encryption key is a Transit key in OpenBao (or Vault).

Why Transit: the key never leaves OpenBao, so neither the operator nor a workload ever holds it;
OpenBao audits every use; and deleting the key is a crypto-shred of everything wrapped under it.
The ``context`` of :class:`VaultKms` travels as Transit ``associated_data`` (AES-GCM AAD, as in
the local provider) rather than as a derived-key context: the key stays a plain aes256-gcm96 key,
and a ciphertext made for one context fails authentication under another.

:class:`VaultAdmin` is what the operator does with its own token, and nothing more: it keeps one
Transit mount, and per tenant a key ``tenant-<name>``, a policy ``privatevault-tenant-<name>``
that may only use that key, and a Kubernetes auth role ``tenant-<name>`` that gives the policy to
the tenant's ServiceAccounts. :func:`operator_policy` is the exact policy those calls need.

Kubernetes auth and TokenReview: OpenBao checks each login JWT with a TokenReview against the API
server. By default (``token_reviewer_jwt`` given) it authenticates that call as a dedicated
reviewer ServiceAccount bound to ``system:auth-delegator``, so tenant ServiceAccounts need no
extra cluster rights; the operator refreshes the reviewer's short-lived token by calling
:meth:`VaultAdmin.ensure_kubernetes_auth` again. Without one, OpenBao reviews each login JWT with
itself, which stores no credential but needs every tenant ServiceAccount bound to
``system:auth-delegator`` (which also lets workloads ask SubjectAccessReviews about anyone).

The operator's own login: a static token file (``PRIVATEVAULT_VAULT_TOKEN_FILE``, the local demo)
or, in a cluster, its ServiceAccount's token through Kubernetes auth (:class:`KubernetesLogin`),
so that no long-lived OpenBao token is stored anywhere: the client logs in before its first
request and again before the token's lease runs out, reading the (kubelet-rotated) projected
token file each time.

Errors: OpenBao unreachable, sealed, or answering 429/5xx raises ``KmsUnavailable``; a refusal
(400, 401, 403, 404) raises ``KmsError``. Messages name the action and the key, never a
plaintext, a JWT or a token.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import requests

from privatevault.errors import KmsError, KmsUnavailable
from privatevault.kms.facts import KeyFacts

DEFAULT_TRANSIT_MOUNT = "privatevault-transit"
DEFAULT_AUTH_MOUNT = "kubernetes"
DEFAULT_TIMEOUT = 5.0
KEY_TYPE = "aes256-gcm96"
TENANT_TOKEN_TTL = 600  # seconds: a workload logs in again rather than holding a long-lived token
TENANT_TOKEN_MAX_TTL = 1800

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_ACCOUNT = re.compile(r"^(\*|[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)$")
_MOUNT = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_]*[A-Za-z0-9])?$")
_TENANT_ENDPOINTS = ("encrypt", "decrypt", "rewrap", "datakey/plaintext", "datakey/wrapped")
# OpenBao answers 400, not 404, when asked about a mount that does not exist.
_NO_MOUNT = (hvac.exceptions.InvalidRequest,)
# Refusals: the request was understood and denied, so retrying the same request will not help.
_REFUSALS = (
    hvac.exceptions.InvalidRequest,
    hvac.exceptions.Unauthorized,
    hvac.exceptions.Forbidden,
    hvac.exceptions.InvalidPath,
    hvac.exceptions.UnsupportedOperation,
    hvac.exceptions.ParamValidationError,
)


#: The share of a login token's lease after which the client logs in again.
RELOGIN_AT = 0.75


@dataclass(frozen=True, kw_only=True)
class KubernetesLogin:
    """Log in at ``mount`` as ``role`` with the ServiceAccount token read from ``jwt_file``."""

    role: str
    jwt_file: Path
    mount: str = DEFAULT_AUTH_MOUNT


class _KubernetesAuthAdapter(hvac.adapters.JSONAdapter):  # type: ignore[misc]
    """hvac's JSON transport, logged in with a ServiceAccount token and renewed by a new login.

    A transport rather than a login call at start-up, so that every caller of the client (the
    admin, the per-tenant KMS) gets a valid token however long the operator runs.
    """

    def __init__(self, *, login: KubernetesLogin, clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._login, self._clock = login, clock
        self._path = f"/v1/auth/{_mount(login.mount)}/login"
        self._renew_at = 0.0

    def request(self, method: str, url: str, headers: Any = None, raise_exception: bool = True, **kwargs: Any) -> Any:
        if url != self._path and (not self.token or self._clock() >= self._renew_at):
            self._log_in()
        return super().request(method, url, headers=headers, raise_exception=raise_exception, **kwargs)

    def _log_in(self) -> None:
        try:
            jwt = self._login.jwt_file.read_text().strip()
        except OSError as exc:
            raise KmsError(
                f"cannot read the ServiceAccount token for Vault login at {self._login.jwt_file}: {exc}"
            ) from exc
        denied = "check that the Kubernetes auth role is bound to the operator's ServiceAccount and namespace"
        started = self._clock()
        self.token = None
        with _mapped(f"log in with Kubernetes auth role {self._login.role}", jwt, denied=denied):
            answer = super().request("post", self._path, json={"role": self._login.role, "jwt": jwt})
        auth = answer["auth"]
        self.token = auth["client_token"]
        lease = float(auth.get("lease_duration") or 0)
        self._renew_at = started + lease * RELOGIN_AT if lease > 0 else float("inf")


def vault_client(
    address: str,
    *,
    token: str | None = None,
    login: KubernetesLogin | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    verify: bool | str = True,
) -> hvac.Client:
    """An hvac client whose every request gives up after ``timeout`` seconds (``verify``: a CA file, or bool).

    With ``login``, it logs in through Kubernetes auth on first use and again before the token expires.
    """
    if login is not None:
        adapter = partial(_KubernetesAuthAdapter, login=login)
        return hvac.Client(url=address, timeout=timeout, verify=verify, adapter=adapter)
    return hvac.Client(url=address, token=token, timeout=timeout, verify=verify)


def operator_client(
    address: str, *, token_file: Path | None, login: KubernetesLogin | None, ca_file: Path | None = None
) -> hvac.Client:
    """The operator's own client: with the token in ``token_file``, else logged in by ``login``."""
    verify: bool | str = str(ca_file) if ca_file is not None else True
    if token_file is not None:
        return vault_client(address, token=token_file.read_text().strip(), verify=verify)
    if login is None:
        raise KmsError(
            "Vault is configured (PRIVATEVAULT_VAULT_ADDR) but not how the operator logs in: set"
            " PRIVATEVAULT_VAULT_AUTH_ROLE (Kubernetes auth with its ServiceAccount token)"
            " or PRIVATEVAULT_VAULT_TOKEN_FILE"
        )
    return vault_client(address, login=login, verify=verify)


def key_name(tenant: str) -> str:
    return f"tenant-{_label(tenant, 'tenant name')}"


def policy_name(tenant: str) -> str:
    return f"privatevault-tenant-{_label(tenant, 'tenant name')}"


def role_name(tenant: str) -> str:
    return f"tenant-{_label(tenant, 'tenant name')}"


def tenant_policy(tenant: str, *, transit_mount: str = DEFAULT_TRANSIT_MOUNT) -> str:
    """The HCL of the tenant's policy: ``update`` on its own key's data endpoints, nothing else."""
    key = key_name(tenant)
    mount = _mount(transit_mount)
    paths = [(f"{mount}/{endpoint}/{key}", ("update",)) for endpoint in _TENANT_ENDPOINTS]
    return _render(f"{policy_name(tenant)}: workloads of tenant {tenant} use its key, and nothing else", paths)


def operator_policy(*, transit_mount: str = DEFAULT_TRANSIT_MOUNT, auth_mount: str = DEFAULT_AUTH_MOUNT) -> str:
    """The HCL of the operator's own policy: exactly what :class:`VaultAdmin` and wrapping need."""
    transit, auth = _mount(transit_mount), _mount(auth_mount)
    paths: list[tuple[str, tuple[str, ...]]] = [
        (f"sys/mounts/{transit}", ("create", "read", "update")),
        (f"sys/mounts/auth/{auth}", ("read",)),
        # Enabling an auth method is a sudo operation in OpenBao and Vault.
        (f"sys/auth/{auth}", ("create", "update", "sudo")),
        (f"auth/{auth}/config", ("create", "read", "update")),
        (f"auth/{auth}/role/tenant-*", ("create", "read", "update", "delete")),
        ("sys/policies/acl/privatevault-tenant-*", ("create", "read", "update", "delete")),
        # `+` is one path segment: a key itself, not the import or backup endpoints below it.
        (f"{transit}/keys/+", ("create", "read", "update", "delete")),
        (f"{transit}/keys/+/config", ("update",)),
        (f"{transit}/keys/+/rotate", ("update",)),
        # The operator wraps the data keys and signing seeds it provisions for tenants.
        (f"{transit}/encrypt/+", ("update",)),
        (f"{transit}/decrypt/+", ("update",)),
    ]
    return _render("privatevault-operator: tenant keys, policies and roles, and wrapping under tenant keys", paths)


OPERATOR_POLICY_NAME = "privatevault-operator"


def create_operator_token(root: hvac.Client, *, token_id: str | None = None, ttl: str = "768h") -> str:
    """Write the operator's policy and issue a token holding only it (as an administrator, once).

    With ``token_id`` an existing token of that id is kept; the returned string is the token.
    """
    with _mapped("write the operator policy", root.token or ""):
        root.sys.create_or_update_policy(OPERATOR_POLICY_NAME, operator_policy())
    if token_id is not None:
        try:
            root.auth.token.lookup(token_id)
            return token_id
        except hvac.exceptions.Forbidden:
            pass
    with _mapped("create the operator token", root.token or ""):
        answer = root.auth.token.create(id=token_id, policies=[OPERATOR_POLICY_NAME], ttl=ttl, no_parent=True)
    return str(answer["auth"]["client_token"])


def kubernetes_login(client: hvac.Client, *, role: str, jwt: str, mount: str = DEFAULT_AUTH_MOUNT) -> None:
    """Log ``client`` in with a ServiceAccount token; it then acts with the role's policies."""
    denied = "check that the ServiceAccount and its namespace are bound to this role and the token is valid"
    with _mapped(f"log in with Kubernetes auth role {role}", jwt, denied=denied):
        client.auth.kubernetes.login(role=role, jwt=jwt, mount_point=_mount(mount))


def healthy(client: hvac.Client) -> bool:
    """Whether OpenBao answers and is initialised and unsealed (standbys count as healthy)."""
    try:
        response: Any = client.adapter.get(
            "/v1/sys/health", params={"standbyok": "true", "perfstandbyok": "true"}, raise_exception=False
        )
        body: Any = response if isinstance(response, dict) else response.json()
    except (requests.RequestException, ValueError):
        return False
    return isinstance(body, dict) and body.get("initialized") is True and body.get("sealed") is False


class VaultKms:
    """One Transit key as a :class:`~privatevault.kms.KeyProvider`, used with the client's token.

    Every call is bounded by the client's timeout (see :func:`vault_client`): an OpenBao that
    does not answer is ``KmsUnavailable`` after it, never a hang.
    """

    name = "vault"

    def __init__(self, client: hvac.Client, key: str, *, mount: str = DEFAULT_TRANSIT_MOUNT) -> None:
        self._client, self._key, self._mount = client, key, _mount(mount)

    @classmethod
    def for_tenant(cls, client: hvac.Client, tenant: str, *, mount: str = DEFAULT_TRANSIT_MOUNT) -> VaultKms:
        return cls(client, key_name(tenant), mount=mount)

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
        encoded = _b64(plaintext)
        with _mapped(f"encrypt with Transit key {self._key}", encoded, self._client.token or ""):
            result = self._client.secrets.transit.encrypt_data(
                name=self._key, plaintext=encoded, associated_data=_b64(context), mount_point=self._mount
            )
        ciphertext = _data(result).get("ciphertext")
        if not isinstance(ciphertext, str) or not ciphertext.startswith("vault:v"):
            raise KmsError(f"OpenBao answered encrypt with Transit key {self._key} without a ciphertext")
        return ciphertext.encode("ascii")

    def unwrap(self, ciphertext: bytes, *, context: bytes) -> bytes:
        try:
            text = ciphertext.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        if not text.startswith("vault:v"):
            raise KmsError("not a Transit ciphertext (it must start with vault:v)")
        with _mapped(f"decrypt with Transit key {self._key}", self._client.token or ""):
            result = self._client.secrets.transit.decrypt_data(
                name=self._key, ciphertext=text, associated_data=_b64(context), mount_point=self._mount
            )
        plaintext = _data(result).get("plaintext")
        if not isinstance(plaintext, str):
            raise KmsError(f"OpenBao answered decrypt with Transit key {self._key} without a plaintext")
        return base64.b64decode(plaintext)

    def healthy(self) -> bool:
        return healthy(self._client)


class VaultAdmin:
    """Idempotent administration of tenant keys, policies and roles with the operator's token.

    Each ``ensure_*`` brings one object to its desired state and says whether it changed anything.
    """

    def __init__(
        self, client: hvac.Client, *, transit_mount: str = DEFAULT_TRANSIT_MOUNT, auth_mount: str = DEFAULT_AUTH_MOUNT
    ) -> None:
        self._client = client
        self.transit_mount, self.auth_mount = _mount(transit_mount), _mount(auth_mount)

    def kms_for(self, tenant: str) -> VaultKms:
        """Wrapping under the tenant's key with the operator's own token."""
        return VaultKms.for_tenant(self._client, tenant, mount=self.transit_mount)

    def healthy(self) -> bool:
        return healthy(self._client)

    def ensure_transit_mount(self) -> bool:
        path = self.transit_mount
        mounted = self._read(f"sys/mounts/{path}", f"read the mount {path}", missing=_NO_MOUNT)
        if mounted is not None:
            if mounted.get("type") != "transit":
                raise KmsError(f"{path} is mounted as {mounted.get('type')}, not transit: configure another mount")
            return False
        self._write(
            f"sys/mounts/{path}",
            {"type": "transit", "description": "PrivateVault tenant keys"},
            f"mount Transit at {path}",
        )
        return True

    def tenant_key(self, tenant: str) -> KeyFacts | None:
        """The facts of the tenant's key, or None when it does not exist."""
        key = key_name(tenant)
        data = self._read(f"{self.transit_mount}/keys/{key}", f"read Transit key {key}")
        return None if data is None else _facts(key, data)

    def ensure_tenant_key(self, tenant: str) -> KeyFacts:
        """The tenant's key: aes256-gcm96, not exportable, no plaintext backup, deletion disabled."""
        key = key_name(tenant)
        path = f"{self.transit_mount}/keys/{key}"
        data = self._read(path, f"read Transit key {key}")
        if data is None:
            self._write(path, {"type": KEY_TYPE, "exportable": False, "allow_plaintext_backup": False}, f"create {key}")
            data = self._read(path, f"read Transit key {key}") or {}
        if data.get("type") != KEY_TYPE or data.get("exportable") or data.get("allow_plaintext_backup"):
            raise KmsError(
                f"Transit key {key} exists but is not a non-exportable {KEY_TYPE} key; it cannot be"
                " changed in place: move its data and delete it, or use another tenant name"
            )
        if data.get("deletion_allowed"):
            self._write(f"{path}/config", {"deletion_allowed": False}, f"disable deletion of {key}")
            data = {**data, "deletion_allowed": False}
        return _facts(key, data)

    def rotate_tenant_key(self, tenant: str, min_decryption_version: int | None = None) -> KeyFacts:
        """A new key version for new wraps; older ciphertexts stay readable from ``min_decryption_version``."""
        key = key_name(tenant)
        self._write(f"{self.transit_mount}/keys/{key}/rotate", {}, f"rotate Transit key {key}")
        if min_decryption_version is not None:
            return self.limit_decryption(tenant, min_decryption_version)
        return self._facts_of(key, "rotated")

    def limit_decryption(self, tenant: str, min_decryption_version: int) -> KeyFacts:
        """Stop decrypting ciphertexts older than ``min_decryption_version`` (after they were rewrapped)."""
        key = key_name(tenant)
        config = {"min_decryption_version": min_decryption_version}
        self._write(f"{self.transit_mount}/keys/{key}/config", config, f"set the minimum decryption version of {key}")
        return self._facts_of(key, "given a minimum version")

    def _facts_of(self, key: str, doing: str) -> KeyFacts:
        data = self._read(f"{self.transit_mount}/keys/{key}", f"read Transit key {key}")
        if data is None:
            raise KmsError(f"Transit key {key} disappeared while it was {doing}")
        return _facts(key, data)

    def ensure_tenant_policy(self, tenant: str) -> bool:
        name = policy_name(tenant)
        wanted = tenant_policy(tenant, transit_mount=self.transit_mount)
        current = self._read(f"sys/policies/acl/{name}", f"read policy {name}")
        if current is not None and current.get("policy") == wanted:
            return False
        self._write(f"sys/policies/acl/{name}", {"policy": wanted}, f"write policy {name}")
        return True

    def ensure_kubernetes_auth(
        self,
        kubernetes_host: str,
        ca_pem: str,
        *,
        issuer: str | None = None,
        token_reviewer_jwt: str | None = None,
    ) -> bool:
        """Kubernetes auth at the auth mount, checking login JWTs by TokenReview at ``kubernetes_host``.

        With ``token_reviewer_jwt`` (a token of a ServiceAccount bound to ``system:auth-delegator``)
        OpenBao makes TokenReviews as that account; it is written on every call, since OpenBao never
        returns it, so calling again is how the operator rotates it. Without one each login JWT
        reviews itself. ``issuer`` additionally checks the JWT's ``iss`` claim.
        """
        mount = self.auth_mount
        changed = False
        mounted = self._read(f"sys/mounts/auth/{mount}", f"read the auth mount {mount}", missing=_NO_MOUNT)
        if mounted is None:
            self._write(f"sys/auth/{mount}", {"type": "kubernetes"}, f"enable Kubernetes auth at {mount}")
            changed = True
        elif mounted.get("type") != "kubernetes":
            raise KmsError(f"auth/{mount} is a {mounted.get('type')} auth method, not kubernetes: use another mount")
        wanted: dict[str, Any] = {
            "kubernetes_host": kubernetes_host,
            "kubernetes_ca_cert": ca_pem,
            "disable_local_ca_jwt": True,
            "issuer": issuer or "",
            "disable_iss_validation": issuer is None,
        }
        current = self._read(f"auth/{mount}/config", f"read the Kubernetes auth config at {mount}") or {}
        if token_reviewer_jwt is None and not current.get("token_reviewer_jwt_set") and _same(current, wanted):
            return changed
        config = wanted if token_reviewer_jwt is None else {**wanted, "token_reviewer_jwt": token_reviewer_jwt}
        with _mapped(f"configure Kubernetes auth at {mount}", token_reviewer_jwt or ""):
            self._client.write_data(f"auth/{mount}/config", data=config)
        return True

    def ensure_tenant_role(
        self,
        tenant: str,
        namespaces: Sequence[str],
        service_accounts: Sequence[str] = ("*",),
        *,
        audience: str | None = None,
    ) -> bool:
        """The role ``tenant-<name>``: the tenant's ServiceAccounts get its policy, for minutes.

        ``audience`` makes OpenBao accept only tokens requested for it (``kubectl create token
        --audience``), so they are useless against the API server; it needs a reviewer JWT, as a
        login token reviewing itself must be one the API server accepts.
        """
        if not namespaces:
            raise ValueError(f"tenant {tenant} has no namespaces to bind its Kubernetes auth role to")
        for namespace in namespaces:
            _label(namespace, "namespace")
        for account in service_accounts:
            if not _ACCOUNT.match(account):
                raise ValueError(f"{account!r} is not a ServiceAccount name (or *)")
        name = role_name(tenant)
        path = f"auth/{self.auth_mount}/role/{name}"
        wanted: dict[str, Any] = {
            "bound_service_account_names": sorted(set(service_accounts)),
            "bound_service_account_namespaces": sorted(set(namespaces)),
            "token_policies": [policy_name(tenant)],
            "token_ttl": TENANT_TOKEN_TTL,
            "token_max_ttl": TENANT_TOKEN_MAX_TTL,
            "audience": audience or "",
        }
        current = self._read(path, f"read Kubernetes auth role {name}")
        if current is not None and _same(current, wanted):
            return False
        self._write(path, wanted, f"write Kubernetes auth role {name}")
        return True

    def destroy_tenant_key(self, tenant: str) -> None:
        """Crypto-shred: remove the role and policy, then delete the key and every version of it.

        Nothing wrapped under the key can be unwrapped afterwards, by anyone. Idempotent.
        """
        self._remove_access(tenant)
        key = key_name(tenant)
        path = f"{self.transit_mount}/keys/{key}"
        if self._read(path, f"read Transit key {key}") is None:
            return
        self._write(f"{path}/config", {"deletion_allowed": True}, f"allow deletion of {key}")
        with _mapped(f"delete Transit key {key}"):
            self._client.delete(path)

    def retain_tenant_key(self, tenant: str) -> KeyFacts | None:
        """Remove the role and policy but keep the key, with deletion disabled, for later unwrapping."""
        self._remove_access(tenant)
        if self.tenant_key(tenant) is None:
            return None
        return self.ensure_tenant_key(tenant)

    def _remove_access(self, tenant: str) -> None:
        role, policy = role_name(tenant), policy_name(tenant)
        with _mapped(f"delete Kubernetes auth role {role}"):
            self._client.delete(f"auth/{self.auth_mount}/role/{role}")
        with _mapped(f"delete policy {policy}"):
            self._client.delete(f"sys/policies/acl/{policy}")

    def _read(self, path: str, action: str, *, missing: tuple[type[Exception], ...] = ()) -> dict[str, Any] | None:
        """The ``data`` at ``path``, or None when it does not exist (404, or one of ``missing``)."""
        with _mapped(action):
            try:
                response: Any = self._client.adapter.get(f"/v1/{path}")
            except (hvac.exceptions.InvalidPath, *missing):
                return None
        return _data(response)

    def _write(self, path: str, data: Mapping[str, Any], action: str) -> None:
        with _mapped(action):
            self._client.write_data(path, data=dict(data))


@contextmanager
def _mapped(action: str, *secrets: str, denied: str = "the token's policies do not allow it") -> Iterator[None]:
    """Turn hvac and transport errors into the error tree, with ``secrets`` kept out of messages.

    ``denied`` explains a 403 to the reader: what to check or change.
    """
    try:
        yield
    except requests.RequestException as exc:
        raise KmsUnavailable(
            f"OpenBao cannot be reached to {action} ({type(exc).__name__}): check its address and that it is running"
        ) from exc
    except hvac.exceptions.VaultError as exc:
        reason = _scrub(_reason(exc), secrets)
        if isinstance(exc, hvac.exceptions.Forbidden):
            raise KmsError(f"OpenBao refused to {action}: {reason} ({denied})") from exc
        if isinstance(exc, _REFUSALS):
            raise KmsError(f"OpenBao refused to {action}: {reason}") from exc
        raise KmsUnavailable(f"OpenBao could not {action} now, retry later: {reason}") from exc


def _reason(exc: Exception) -> str:
    """OpenBao's error strings on one line, without the "N errors occurred" wrapping."""
    errors: Any = getattr(exc, "errors", None)
    lines: list[str] = []
    for error in errors if isinstance(errors, list) else []:
        text = str(error)
        bullets = [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("* ")]
        lines.extend(bullets or [" ".join(text.split())])
    return "; ".join(line for line in lines if line) or type(exc).__name__


def _scrub(message: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            message = message.replace(secret, "[redacted]")
    return message


def _same(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether ``current`` already has every ``wanted`` value (lists compared as sets)."""
    for field, value in wanted.items():
        have = current.get(field)
        if isinstance(value, list):
            if not isinstance(have, list) or sorted(map(str, have)) != sorted(map(str, value)):
                return False
        elif have != value and not (value == "" and have is None):
            return False
    return True


def _facts(key: str, data: Mapping[str, Any]) -> KeyFacts:
    versions: Mapping[str, Any] = data.get("keys") or {}
    times = {int(version): _timestamp(made) for version, made in versions.items()}
    latest = int(data.get("latest_version", max(times, default=0)))
    return KeyFacts(
        name=key,
        latest_version=latest,
        min_decryption_version=int(data.get("min_decryption_version", 1)),
        created=times[min(times)] if times else "",
        rotated=times.get(latest, ""),
        deletion_allowed=bool(data.get("deletion_allowed")),
    )


def _timestamp(made: Any) -> str:
    """A key version's creation time: Unix seconds for symmetric keys, a dict for asymmetric ones."""
    if isinstance(made, Mapping):
        return str(made.get("creation_time", ""))
    return datetime.fromtimestamp(int(made), tz=UTC).isoformat()


def _data(response: Any) -> dict[str, Any]:
    data = response.get("data") if isinstance(response, dict) else None
    return dict(data) if isinstance(data, dict) else {}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _label(value: str, what: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError(f"{what} {value!r} is not a DNS label (lower-case letters, digits and -, at most 63)")
    return value


def _mount(path: str) -> str:
    if not _MOUNT.match(path):
        raise ValueError(f"mount path {path!r} must be one segment of letters, digits, - and _")
    return path


def _render(comment: str, paths: Sequence[tuple[str, tuple[str, ...]]]) -> str:
    """Policy HCL, one block per path in the given order, so the same input gives the same text."""
    blocks = [f"# {comment}"]
    for path, capabilities in paths:
        listed = ", ".join(f'"{capability}"' for capability in capabilities)
        blocks.append(f'path "{path}" {{\n  capabilities = [{listed}]\n}}')
    return "\n\n".join(blocks) + "\n"


# Defined last: rendering it needs the helpers above.
OPERATOR_POLICY = operator_policy()
