"""The provider protocol every KMS implements."""

from __future__ import annotations

from typing import Protocol


class KeyProvider(Protocol):
    """Wraps and unwraps secrets under a key-encryption key the caller never sees."""

    name: str

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes: ...

    def unwrap(self, ciphertext: bytes, *, context: bytes) -> bytes: ...
