"""What the reconcile loops need from the outside world, as protocols.

The real adapters (``cluster.Cluster``, ``ledger.Ledger``, ``mcs.LevelStore``,
``kms.tenants.Providers``) satisfy them; unit tests hand in small fakes instead of patching.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from privatevault.crypto import KeyWrapper
from privatevault.kms.vault import KeyFacts
from privatevault.ledger import Event, Record
from privatevault.mcs import Allocation


class ClusterPort(Protocol):
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def list(
        self, api_version: str, kind: str, *, label_selector: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]: ...

    def apply(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]: ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool: ...


class LedgerPort(Protocol):
    def append(self, event: Event) -> Record: ...


class LevelPort(Protocol):
    def allocate(
        self,
        *,
        tenant: str,
        tenant_uid: str,
        confidentiality: str,
        integrity: str,
        compartments: Sequence[str],
        requested: str | None = None,
    ) -> Allocation: ...

    def release(self, tenant_uid: str) -> None: ...


class KeysPort(Protocol):
    provider: str

    def wrapper(self, tenant: str) -> KeyWrapper: ...

    def facts(self, tenant: str) -> KeyFacts | None: ...

    def rotate(self, tenant: str) -> KeyFacts | None: ...

    def limit(self, tenant: str, min_version: int) -> None: ...

    def ensure(self, tenant: str, namespaces: Sequence[str]) -> KeyFacts: ...

    def retain(self, tenant: str) -> None: ...

    def shred(self, tenant: str) -> None: ...


class ProvidersPort(Protocol):
    def for_provider(self, provider: str) -> KeysPort: ...


@dataclass(frozen=True)
class TenantPorts:
    cluster: ClusterPort
    ledger: LedgerPort
    levels: LevelPort
    keys: ProvidersPort


@dataclass(frozen=True)
class ProtectionPorts:
    cluster: ClusterPort
    ledger: LedgerPort
    keys: ProvidersPort
