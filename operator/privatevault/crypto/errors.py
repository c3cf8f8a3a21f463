"""The errors of the crypto core, a branch of PrivateVault's one exception tree.

    PrivateVaultError            (privatevault.errors)
    └── CryptoError              a cryptographic operation refused its input
        └── UnwrapError          a wrapped key could not be opened: wrong key, wrong context, or altered

Malformed arguments a caller controls (a key of the wrong length, an unknown algorithm name)
raise ``ValueError`` instead: they are programming or configuration mistakes, not events.
Signature checks answer ``False`` rather than raise, so a caller cannot forget a ``try``.

No message here ever carries key material, a shared secret or a plaintext: only lengths,
algorithm names and what to check next.
"""

from __future__ import annotations

from privatevault.errors import PrivateVaultError


class CryptoError(PrivateVaultError):
    """A cryptographic operation refused its input."""


class UnwrapError(CryptoError):
    """A wrapped data key could not be unwrapped.

    The cause is deliberately not narrowed down further than the caller can check for itself:
    an authenticated decryption failure looks the same whether the private key, the tenant,
    the workload, the key version or the stored bytes were wrong.
    """
