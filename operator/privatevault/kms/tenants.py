"""Tenant key-encryption keys behind one interface, whichever provider holds them.

``vault``: a Transit key per tenant, a policy allowing only that key's encrypt, decrypt, rewrap
and data-key endpoints, and a Kubernetes-auth role bound to the tenant's namespaces (see
``kms.vault``). ``local``: a random 256-bit KEK per tenant, wrapped by the local master key and
kept (ciphertext only) in a Secret in the operator's namespace; destroying that Secret is the
crypto-shred. Either way, only facts about keys (names, versions, times) leave this module.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from privatevault.crypto import KeyWrapper, LocalAesGcmWrapper
from privatevault.errors import KmsUnavailable, SpecError
from privatevault.kms.facts import KeyFacts
from privatevault.kms.local import LocalKms, SecretStore
from privatevault.kms.vault import VaultAdmin, key_name


class KekStore(SecretStore, Protocol):
    """Secrets in the operator's namespace (``cluster.SecretStore``), which can also be deleted."""

    def delete(self, name: str) -> None: ...


@dataclass
class VaultTenantKeys:
    """Tenant keys in Vault/OpenBao Transit, with their policies and Kubernetes-auth roles.

    ``ensure`` brings key, policy and role to their desired state (five calls to OpenBao). A
    resync of an unchanged tenant within ``recheck_seconds`` of the last check answers from what
    that check found, so idle tenants cost OpenBao nothing; a change of namespaces, a rotation,
    or the interval passing checks again, which is how drift on the OpenBao side is repaired.
    """

    admin: VaultAdmin
    setup: Callable[[], None]
    provider: str = "vault"
    configured: bool = False
    recheck_seconds: float = 600.0
    clock: Callable[[], float] = time.monotonic
    _checked: dict[str, tuple[tuple[str, ...], KeyFacts, float]] = field(default_factory=dict)

    def ensure(self, tenant: str, namespaces: Sequence[str]) -> KeyFacts:
        wanted = tuple(sorted(namespaces))
        known = self._checked.get(tenant)
        if known is not None and known[0] == wanted and self.clock() - known[2] < self.recheck_seconds:
            return known[1]
        if not self.admin.healthy():
            raise KmsUnavailable("Vault/OpenBao is unreachable or sealed; the tenant's key cannot be made")
        if self.admin.ensure_transit_mount() or not self.configured:
            # First use by this process, or a new (or wiped) server: the Kubernetes auth method is
            # configured (again) too; a Transit mount made by someone else says nothing about it.
            self.setup()
            self.configured = True
        facts = self.admin.ensure_tenant_key(tenant)
        self.admin.ensure_tenant_policy(tenant)
        self.admin.ensure_tenant_role(tenant, list(namespaces))
        self._checked[tenant] = (wanted, facts, self.clock())
        return facts

    def wrapper(self, tenant: str) -> KeyWrapper:
        return self.admin.kms_for(tenant)

    def facts(self, tenant: str) -> KeyFacts | None:
        return self.admin.tenant_key(tenant)

    def rotate(self, tenant: str) -> KeyFacts | None:
        """A new Transit key version for new wraps; older versions still decrypt until :meth:`limit`."""
        self._checked.pop(tenant, None)
        return self.admin.rotate_tenant_key(tenant)

    def limit(self, tenant: str, min_version: int) -> None:
        self._checked.pop(tenant, None)
        self.admin.limit_decryption(tenant, min_version)

    def retain(self, tenant: str) -> None:
        self._checked.pop(tenant, None)
        self.admin.retain_tenant_key(tenant)

    def shred(self, tenant: str) -> None:
        self._checked.pop(tenant, None)
        self.admin.destroy_tenant_key(tenant)


@dataclass
class LocalTenantKeys:
    kms: LocalKms
    store: KekStore
    provider: str = "local"

    @staticmethod
    def secret(tenant: str) -> str:
        return f"privatevault-kek-{tenant}"

    @staticmethod
    def _context(tenant: str) -> bytes:
        return f"privatevault/tenant-kek/v1\n{tenant}".encode()

    def _kek(self, tenant: str) -> tuple[bytes, str]:
        """The tenant's KEK (made on first use) and when it was made."""
        context = self._context(tenant)
        stored = self.store.read_or_create(
            self.secret(tenant), lambda: {"kek": self.kms.wrap(os.urandom(32), context=context)}
        )
        return self.kms.unwrap(stored.data["kek"], context=context), stored.created

    def wrapper(self, tenant: str) -> KeyWrapper:
        return LocalAesGcmWrapper(self._kek(tenant)[0])

    def facts(self, tenant: str) -> KeyFacts | None:
        return None  # a local KEK has one version and is not rotated

    def rotate(self, tenant: str) -> KeyFacts | None:
        return None

    def limit(self, tenant: str, min_version: int) -> None:
        """Nothing to limit: a local KEK has one version."""

    def ensure(self, tenant: str, namespaces: Sequence[str]) -> KeyFacts:
        _, created = self._kek(tenant)  # made on first use; opening it proves it is under this master key
        return KeyFacts(
            name=key_name(tenant),
            latest_version=1,
            min_decryption_version=1,
            created=created,
            rotated=created,
            deletion_allowed=False,
        )

    def retain(self, tenant: str) -> None:
        """Nothing to do: the wrapped KEK stays in its Secret."""

    def shred(self, tenant: str) -> None:
        self.store.delete(self.secret(tenant))


@dataclass
class Providers:
    """The providers this operator has; a tenant naming one that is not configured is Stalled."""

    local: LocalTenantKeys
    vault: VaultTenantKeys | None = None

    def for_provider(self, provider: str) -> LocalTenantKeys | VaultTenantKeys:
        if provider == "vault":
            if self.vault is None:
                raise SpecError(
                    "spec.kms.provider is vault but the operator has no Vault configured"
                    " (PRIVATEVAULT_VAULT_ADDR); use provider local or configure Vault",
                    reason="KMSNotConfigured",
                )
            return self.vault
        return self.local
