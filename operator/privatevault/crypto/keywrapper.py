"""The seam for a second wrap of the data key by a key-encryption key (KEK) held elsewhere.

In a cluster the KEK is the tenant's Vault Transit key, so unwrapping needs Vault's consent as
well as the KEM private key. The envelope depends only on the :class:`KeyWrapper` protocol;
the Vault adapter is built at start-up and handed in, and tests and local mode hand in
:class:`LocalAesGcmWrapper` instead.

A wrapper's ``context`` is the envelope's associated data (tenant, workload, key version): a
wrapper must authenticate it, so a ciphertext moved to another context fails to unwrap, and must
raise :class:`~privatevault.crypto.errors.UnwrapError` when unwrapping fails.
"""

from __future__ import annotations

import secrets
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import UnwrapError
from .lengths import expect_length

_KEY_SIZE: Final = 32
_NONCE_SIZE: Final = 12
_TAG_SIZE: Final = 16


class KeyWrapper(Protocol):
    """Wraps and unwraps short secrets under a key the caller never sees."""

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
        """Encrypt ``plaintext`` bound to ``context``."""
        ...

    def unwrap(self, ciphertext: bytes, *, context: bytes) -> bytes:
        """Decrypt what :meth:`wrap` made with the same ``context``, or raise ``UnwrapError``."""
        ...


class LocalAesGcmWrapper:
    """A KEK in process memory: AES-256-GCM, random 96-bit nonce, ``context`` as associated data.

    Output is ``nonce || ciphertext || tag``. With random nonces one key should wrap fewer than
    2**32 secrets (NIST SP 800-38D); that is far beyond a local or test deployment.
    """

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        expect_length(key, _KEY_SIZE, "AES-256-GCM KEK")
        self._aead = AESGCM(key)

    @classmethod
    def generate(cls) -> LocalAesGcmWrapper:
        """A wrapper around a fresh random key (the key cannot be read back)."""
        return cls(secrets.token_bytes(_KEY_SIZE))

    def __repr__(self) -> str:
        return "LocalAesGcmWrapper(<key hidden>)"

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext, context)

    def unwrap(self, ciphertext: bytes, *, context: bytes) -> bytes:
        if len(ciphertext) < _NONCE_SIZE + _TAG_SIZE:
            raise UnwrapError(f"KEK-wrapped data is {len(ciphertext)} bytes, shorter than a nonce and a tag")
        nonce, sealed = ciphertext[:_NONCE_SIZE], ciphertext[_NONCE_SIZE:]
        try:
            return self._aead.decrypt(nonce, sealed, context)
        except InvalidTag as exc:
            raise UnwrapError("the KEK could not unwrap the data: wrong KEK, wrong context, or altered bytes") from exc
