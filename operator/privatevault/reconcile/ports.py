"""What the decisions need from the outside world, as protocols: defined once, here.

The real adapters (``cache.ClusterView`` over ``cluster.Cluster``, ``ledger.store.Ledger``,
``mcs.store.LevelStore``, ``kms.tenants.Providers``) satisfy them and are built by the
composition root (``privatevault.app``); unit tests hand in the fakes of ``tests/unit/fakes.py``,
and the contract tests run one table against both so a fake cannot drift from its adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from privatevault.crypto import KeyWrapper
from privatevault.evidence.exporter import Job, Result
from privatevault.kms.facts import KeyFacts
from privatevault.ledger import Event, Record
from privatevault.mcs import Allocation


class ClusterPort(Protocol):
    """Reads come from the watch caches where the operator has them; writes are server-side apply."""

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def list(
        self, api_version: str, kind: str, *, label_selector: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]: ...

    def drifted(self, desired: dict[str, Any], current: dict[str, Any] | None) -> bool:
        """Whether applying ``desired`` would change ``current`` (always, when there is none)."""
        ...

    def check(self, obj: dict[str, Any]) -> None:
        """Raise ``SpecError`` when the API server would refuse ``obj`` (a dry run: nothing is stored)."""
        ...

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool: ...


class LedgerPort(Protocol):
    def append(self, event: Event) -> Record: ...

    def find(self, prefix: str, *, limit: int = 1000) -> list[Record]:
        """Records whose idempotency key starts with ``prefix``, oldest first."""
        ...


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
    """A tenant's key-encryption key in one provider; only facts about keys come back."""

    @property
    def provider(self) -> str: ...

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
class ProtectionPolicyPorts:
    cluster: ClusterPort
    ledger: LedgerPort
    keys: ProvidersPort


class ExporterPort(Protocol):
    """Writes evidence bundles to their destination (``evidence.exporter.Exporter``)."""

    def export(self, job: Job, *, sign: Callable[[bytes], bytes]) -> Result: ...

    def existing(self, location: str) -> str | None:
        """``sha256:<hex>`` of the bundle at ``location``, or None when there is none."""
        ...


@dataclass(frozen=True)
class EvidenceExportPorts:
    cluster: ClusterPort
    ledger: LedgerPort
    exporter: ExporterPort
    #: Signs a manifest Statement with the operator's evidence keys of the algorithms named: the
    #: DSSE envelope's bytes.
    sign: Callable[[bytes, frozenset[str]], bytes]
