"""The one exception tree of PrivateVault.

    PrivateVaultError
    ├── TransientError            retry later: a dependency is down or busy
    │   ├── LedgerUnavailable     PostgreSQL cannot be reached: audit fails closed, nothing changes
    │   └── ClusterUnavailable    the Kubernetes API failed in a way worth retrying
    └── SpecError                 the spec cannot be realised as written: reported as Stalled
        └── ConflictError         a child the tenant needs belongs to someone else

Handlers map ``TransientError`` to ``kopf.TemporaryError`` and ``SpecError`` to a ``Stalled``
condition carrying :attr:`SpecError.reason`; nothing else crosses that boundary.
"""

from __future__ import annotations


class PrivateVaultError(Exception):
    """Base of every error PrivateVault raises on purpose."""


class TransientError(PrivateVaultError):
    """A dependency failed in a way that may pass; the caller retries with backoff."""

    delay: float = 10.0


class LedgerUnavailable(TransientError):
    """The audit ledger cannot be written. Audit is mandatory: the action is not taken."""


class ClusterUnavailable(TransientError):
    """The Kubernetes API answered with an error worth retrying (5xx, 429, a timeout)."""


class SpecError(PrivateVaultError):
    """The spec cannot be realised; ``reason`` is the CamelCase reason of the Stalled condition."""

    reason: str = "InvalidSpec"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class ConflictError(SpecError):
    """An object the spec needs already exists and belongs to another owner."""

    reason = "NamespaceConflict"
