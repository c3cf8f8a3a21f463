"""The one exception tree of PrivateVault.

    PrivateVaultError
    ├── TransientError            retry later: a dependency is down or busy
    │   ├── LedgerUnavailable     PostgreSQL cannot be reached: audit fails closed, nothing changes
    │   ├── ClusterUnavailable    the Kubernetes API failed in a way worth retrying
    │   └── KmsUnavailable        the KMS cannot be reached (also a KmsError)
    ├── KmsError                  the KMS refused: wrong key, wrong context, changed ciphertext
    ├── IntegrityError            the ledger does not verify: a record, node or checkpoint is wrong
    │   (ledger.checkpoint.CheckpointError, ledger.merkle.MissingNodes and crypto.errors.CryptoError
    │    are PrivateVaultErrors too, kept beside the code that raises them)
    ├── SpecError                 the spec cannot be realised as written: reported as Stalled
    │   └── ConflictError         a child the tenant needs belongs to someone else
    └── GateClosed                a gated action waits for approvals (quorum): retried, not an error

One place maps the tree to status and to kopf (``handlers.wiring``): ``SpecError`` becomes
``Stalled`` with :attr:`SpecError.reason` and is not retried until the spec changes;
``TransientError`` becomes ``Reconciling`` naming :attr:`TransientError.dependency` and since when,
and is retried (``KmsUnavailable`` is also ``Stalled``: a KMS outage needs a person to look);
``GateClosed`` becomes ``Reconciling`` with the gate's reason and is retried less often.
"""

from __future__ import annotations


class PrivateVaultError(Exception):
    """Base of every error PrivateVault raises on purpose."""


class TransientError(PrivateVaultError):
    """A dependency failed in a way that may pass; the caller retries with backoff."""

    delay: float = 10.0
    #: What the reconcile waits for, as the ``Reconciling`` message names it.
    dependency: str = "a dependency"


class LedgerUnavailable(TransientError):
    """The audit ledger cannot be written. Audit is mandatory: the action is not taken."""

    dependency = "the ledger (PostgreSQL)"


class ClusterUnavailable(TransientError):
    """The Kubernetes API answered with an error worth retrying (5xx, 429, a timeout)."""

    dependency = "the Kubernetes API"


class KmsError(PrivateVaultError):
    """The KMS refused an operation: wrong key or context, or a changed ciphertext."""


class KmsUnavailable(TransientError, KmsError):
    """The KMS cannot be reached; nothing was changed."""

    dependency = "the KMS (Vault/OpenBao)"


class IntegrityError(PrivateVaultError):
    """The ledger does not verify; ``seq`` names the first record involved when one can be named."""

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


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


class GateClosed(PrivateVaultError):
    """A gated action (deletion, crypto-shred, …) waits until its gate opens; retried later."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
