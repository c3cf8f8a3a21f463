"""What the reconcile loops need from the outside world, as protocols.

The real adapters (``privatevault.cluster.Cluster``, ``privatevault.ledger.Ledger``) satisfy
them; unit tests hand in small fakes instead of patching.
"""

from __future__ import annotations

from typing import Any, Protocol

from privatevault.ledger import Event, Record


class ClusterPort(Protocol):
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def apply(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]: ...


class LedgerPort(Protocol):
    def append(self, event: Event) -> Record: ...
