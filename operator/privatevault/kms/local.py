"""The local KMS: the embedded default when no Vault is configured.

A 256-bit master key lives in a Kubernetes Secret in the operator's namespace (created on first
start), and secrets are wrapped under it with AES-256-GCM: a random 96-bit nonce, the context as
associated data, and a version byte in front so the format can change later. It protects
against reading the database or other objects, not against someone who can read that Secret:
production installs use the Vault provider.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from privatevault.errors import KmsError

FORMAT_V1 = b"\x01"
MASTER_KEY = "master-key"
MASTER_SECRET = "privatevault-kms-master"  # noqa: S105 - the Secret's name, not a password


@dataclass(frozen=True)
class StoredSecret:
    data: dict[str, bytes]
    created: str


class SecretStore(Protocol):
    """Reads a Secret, and creates it from ``make()`` when absent (never overwriting an existing one)."""

    def read_or_create(self, name: str, make: Callable[[], dict[str, bytes]]) -> StoredSecret: ...


class LocalKms:
    name = "local"

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("the local KMS master key must be 32 bytes (AES-256)")
        self._aead = AESGCM(master_key)

    @classmethod
    def from_secret(cls, store: SecretStore, secret_name: str = MASTER_SECRET) -> LocalKms:
        """The master key from its Secret; a new random one when the Secret does not exist yet."""
        stored = store.read_or_create(secret_name, lambda: {MASTER_KEY: os.urandom(32)})
        return cls(stored.data[MASTER_KEY])

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
        nonce = os.urandom(12)
        return FORMAT_V1 + nonce + self._aead.encrypt(nonce, plaintext, FORMAT_V1 + context)

    def unwrap(self, ciphertext: bytes, *, context: bytes) -> bytes:
        if len(ciphertext) < 1 + 12 + 16 or ciphertext[:1] != FORMAT_V1:
            raise KmsError("not a local-KMS ciphertext (wrong format or truncated)")
        try:
            return self._aead.decrypt(ciphertext[1:13], ciphertext[13:], FORMAT_V1 + context)
        except InvalidTag as exc:
            raise KmsError("cannot unwrap: wrong key or context, or the ciphertext was changed") from exc
