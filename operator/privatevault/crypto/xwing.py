"""X-Wing: the hybrid KEM of draft-connolly-cfrg-xwing-kem (ML-KEM-768 with X25519).

Why a hybrid: ML-KEM-768 protects against a future quantum computer, X25519 against a flaw yet
to be found in a young lattice scheme. The shared secret stays secret while either holds, because
both secrets go into one hash together with the X25519 ciphertext and public key:

    ss = SHA3-256(ss_M || ss_X || ct_X || pk_X || "\\.//^\\")

(ML-KEM's own ciphertext needs no binding: its secret already depends on it.) Following the
draft as of version 06, the private key is a 32-byte seed, expanded with SHAKE-256 into the
64-byte ML-KEM seed ``d || z`` and the X25519 scalar; the public key is ``pk_M || pk_X``
(1,216 bytes) and the ciphertext ``ct_M || ct_X`` (1,120 bytes).

A malformed X25519 share (a low-order point, whose Diffie-Hellman output would be all zeros) is
refused by OpenSSL; it surfaces here as ``ValueError``. The check depends only on public bytes.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .lengths import expect_length
from .mlkem import ML_KEM_768

__all__ = [
    "CIPHERTEXT_SIZE",
    "PRIVATE_KEY_SIZE",
    "PUBLIC_KEY_SIZE",
    "SHARED_SECRET_SIZE",
    "decapsulate",
    "encapsulate",
    "generate_keypair",
]

PRIVATE_KEY_SIZE: Final = 32
PUBLIC_KEY_SIZE: Final = 1216
CIPHERTEXT_SIZE: Final = 1120
SHARED_SECRET_SIZE: Final = 32

_LABEL: Final = b"\x5c\x2e\x2f\x2f\x5e\x5c"  # "\.//^\", the draft's domain-separation label
_X25519_SIZE: Final = 32
_MLKEM_PUBLIC_SIZE: Final = ML_KEM_768.public_key_size
_MLKEM_CIPHERTEXT_SIZE: Final = ML_KEM_768.ciphertext_size


def generate_keypair(seed: bytes | None = None) -> tuple[bytes, bytes]:
    """Return ``(private_key, public_key)``; the private key is the 32-byte seed itself."""
    private_key = secrets.token_bytes(PRIVATE_KEY_SIZE) if seed is None else seed
    expect_length(private_key, PRIVATE_KEY_SIZE, "X-Wing seed")
    mlkem_seed, x25519_key = _expand(private_key)
    _, public_m = ML_KEM_768.generate_keypair(mlkem_seed)
    return private_key, public_m + x25519_key.public_key().public_bytes_raw()


def encapsulate(pk: bytes) -> tuple[bytes, bytes]:
    """Return ``(ciphertext, shared_secret)`` for the X-Wing public key ``pk``."""
    return _encapsulate_with(pk, ML_KEM_768.encapsulate, X25519PrivateKey.generate())


def decapsulate(sk: bytes, ct: bytes) -> bytes:
    """Return the shared secret of ``ct`` under the private key (seed) ``sk``."""
    expect_length(sk, PRIVATE_KEY_SIZE, "X-Wing private key")
    expect_length(ct, CIPHERTEXT_SIZE, "X-Wing ciphertext")
    mlkem_seed, x25519_key = _expand(sk)
    ct_m, ct_x = ct[:_MLKEM_CIPHERTEXT_SIZE], ct[_MLKEM_CIPHERTEXT_SIZE:]
    ss_m = ML_KEM_768.decapsulate(mlkem_seed, ct_m)
    try:
        ss_x = x25519_key.exchange(X25519PublicKey.from_public_bytes(ct_x))
    except ValueError as exc:
        raise ValueError("X-Wing ciphertext carries an invalid X25519 share") from exc
    return _combine(ss_m, ss_x, ct_x, x25519_key.public_key().public_bytes_raw())


def _encapsulate_with(
    pk: bytes,
    mlkem_encapsulate: Callable[[bytes], tuple[bytes, bytes]],
    ephemeral: X25519PrivateKey,
) -> tuple[bytes, bytes]:
    """Encapsulate with the randomness handed in: the seam the draft's ``eseed`` vectors go through.

    ``mlkem_encapsulate`` maps ``pk_M`` to ``(ct_M, ss_M)``; ``ephemeral`` is the X25519 key whose
    public half becomes ``ct_X``. :func:`encapsulate` passes OpenSSL's ML-KEM and a fresh key.
    """
    expect_length(pk, PUBLIC_KEY_SIZE, "X-Wing public key")
    pk_m, pk_x = pk[:_MLKEM_PUBLIC_SIZE], pk[_MLKEM_PUBLIC_SIZE:]
    try:
        ss_x = ephemeral.exchange(X25519PublicKey.from_public_bytes(pk_x))
    except ValueError as exc:
        raise ValueError("X-Wing public key carries an invalid X25519 part") from exc
    ct_x = ephemeral.public_key().public_bytes_raw()
    ct_m, ss_m = mlkem_encapsulate(pk_m)
    return ct_m + ct_x, _combine(ss_m, ss_x, ct_x, pk_x)


def _expand(sk: bytes) -> tuple[bytes, X25519PrivateKey]:
    expanded = hashlib.shake_256(sk).digest(96)
    return expanded[:64], X25519PrivateKey.from_private_bytes(expanded[64:96])


def _combine(ss_m: bytes, ss_x: bytes, ct_x: bytes, pk_x: bytes) -> bytes:
    return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + _LABEL).digest()
