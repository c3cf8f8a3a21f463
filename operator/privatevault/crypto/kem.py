"""The shape every key-encapsulation mechanism here shares, so the envelope can take any of them.

A KEM has three operations over plain bytes: ``generate_keypair`` gives ``(private, public)``,
``encapsulate`` gives ``(ciphertext, shared_secret)`` for a public key, and ``decapsulate`` gives
the same shared secret back from the private key and the ciphertext. Keys travel as bytes so that
callers store and pass them without importing any library's key classes.
"""

from __future__ import annotations

from typing import Protocol


class Kem(Protocol):
    """A key-encapsulation mechanism named as in the ProtectionPolicy API (``"X-Wing"``, ...)."""

    @property
    def name(self) -> str: ...

    @property
    def private_key_size(self) -> int: ...

    @property
    def public_key_size(self) -> int: ...

    @property
    def ciphertext_size(self) -> int: ...

    def generate_keypair(self, seed: bytes | None = None) -> tuple[bytes, bytes]:
        """Return ``(private_key, public_key)``; the same ``seed`` always gives the same pair."""
        ...

    def encapsulate(self, public_key: bytes) -> tuple[bytes, bytes]:
        """Return ``(ciphertext, shared_secret)``: a fresh 32-byte secret only the private key recovers."""
        ...

    def decapsulate(self, private_key: bytes, ciphertext: bytes) -> bytes:
        """Return the 32-byte shared secret ``encapsulate`` produced with ``ciphertext``."""
        ...
