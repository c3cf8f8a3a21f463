"""DHKEM(X25519, HKDF-SHA256) of RFC 9180, section 4.1: the classical KEM named ``"X25519"``.

The ProtectionPolicy API still offers X25519 alone for mode Classical (it refuses it in modes
PQC and Hybrid). A bare Diffie-Hellman output is not a KEM secret: RFC 9180's DHKEM runs it
through HKDF-SHA256 bound to both public keys, which is what this module does, byte for byte, so
that RFC 9180's test vectors apply. Private keys are 32-byte X25519 scalars; ``generate_keypair``
with a seed is RFC 9180's ``DeriveKeyPair``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .lengths import expect_length

_SIZE: Final = 32
_SUITE_ID: Final = b"KEM" + (0x0020).to_bytes(2, "big")
_VERSION: Final = b"HPKE-v1"


class DhKemX25519:
    """DHKEM(X25519, HKDF-SHA256); use the instance :data:`X25519_KEM`."""

    __slots__ = ()

    name: Final = "X25519"
    private_key_size: Final = _SIZE
    public_key_size: Final = _SIZE
    ciphertext_size: Final = _SIZE

    def __repr__(self) -> str:
        return "DhKemX25519()"

    def generate_keypair(self, seed: bytes | None = None) -> tuple[bytes, bytes]:
        """Return ``(private_key, public_key)``; with a 32-byte ``seed``, RFC 9180 ``DeriveKeyPair``."""
        if seed is None:
            key = X25519PrivateKey.generate()
        else:
            expect_length(seed, _SIZE, "X25519 seed")
            prk = _labeled_extract(b"", b"dkp_prk", seed)
            key = X25519PrivateKey.from_private_bytes(_labeled_expand(prk, b"sk", b"", _SIZE))
        return key.private_bytes_raw(), key.public_key().public_bytes_raw()

    def encapsulate(self, public_key: bytes) -> tuple[bytes, bytes]:
        """Return ``(enc, shared_secret)``; ``enc`` is the ephemeral public key."""
        return self._encapsulate_with(public_key, X25519PrivateKey.generate())

    def decapsulate(self, private_key: bytes, ciphertext: bytes) -> bytes:
        """Return the shared secret of ``ciphertext`` (``enc``) under ``private_key``."""
        expect_length(private_key, _SIZE, "X25519 private key")
        expect_length(ciphertext, _SIZE, "X25519 ciphertext")
        key = X25519PrivateKey.from_private_bytes(private_key)
        try:
            dh = key.exchange(X25519PublicKey.from_public_bytes(ciphertext))
        except ValueError as exc:
            raise ValueError("X25519 ciphertext is not a valid public share") from exc
        return _extract_and_expand(dh, ciphertext + key.public_key().public_bytes_raw())

    def _encapsulate_with(self, public_key: bytes, ephemeral: X25519PrivateKey) -> tuple[bytes, bytes]:
        expect_length(public_key, _SIZE, "X25519 public key")
        try:
            dh = ephemeral.exchange(X25519PublicKey.from_public_bytes(public_key))
        except ValueError as exc:
            raise ValueError("X25519 public key is not a valid public share") from exc
        enc = ephemeral.public_key().public_bytes_raw()
        return enc, _extract_and_expand(dh, enc + public_key)


def _extract_and_expand(dh: bytes, kem_context: bytes) -> bytes:
    prk = _labeled_extract(b"", b"eae_prk", dh)
    return _labeled_expand(prk, b"shared_secret", kem_context, _SIZE)


def _labeled_extract(salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hmac.digest(salt, _VERSION + _SUITE_ID + label + ikm, hashlib.sha256)


def _labeled_expand(prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    # One HMAC block is the whole of HKDF-Expand here: no length asked for exceeds SHA-256's 32 bytes.
    labeled_info = length.to_bytes(2, "big") + _VERSION + _SUITE_ID + label + info
    return hmac.digest(prk, labeled_info + b"\x01", hashlib.sha256)[:length]


X25519_KEM: Final = DhKemX25519()
