"""ML-DSA (FIPS 204) at its three security levels, on OpenSSL through ``cryptography``.

This is pure ML-DSA (no pre-hash), with the FIPS 204 context string empty unless a caller such
as a composite signature passes its own for domain separation. The private key kept is the
32-byte seed ``xi`` from which FIPS 204 derives the full signing key; OpenSSL's signing is hedged
(fresh randomness mixed with the key), so two signatures over one message differ.

Signatures and public keys are the FIPS 204 byte strings, so other conforming implementations
verify them (the tests check ``pqcrypto``'s both ways).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Final, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import mldsa

from .lengths import expect_length

SEED_SIZE: Final = 32
MAX_CONTEXT_SIZE: Final = 255


class _PublicKey(Protocol):
    def verify(self, signature: bytes, data: bytes, context: bytes | None = None) -> None: ...

    def public_bytes_raw(self) -> bytes: ...


class _PrivateKey(Protocol):
    def sign(self, data: bytes, context: bytes | None = None) -> bytes: ...

    def public_key(self) -> _PublicKey: ...


class MlDsa:
    """One ML-DSA parameter set; use :data:`ML_DSA_44`, :data:`ML_DSA_65` or :data:`ML_DSA_87`."""

    __slots__ = ("_from_public", "_from_seed", "name", "public_key_size", "signature_size")

    def __init__(
        self,
        name: str,
        *,
        public_key_size: int,
        signature_size: int,
        from_seed: Callable[[bytes], _PrivateKey],
        from_public: Callable[[bytes], _PublicKey],
    ) -> None:
        self.name = name
        self.public_key_size = public_key_size
        self.signature_size = signature_size
        self._from_seed = from_seed
        self._from_public = from_public

    def __repr__(self) -> str:
        return f"MlDsa({self.name!r})"

    def generate(self) -> tuple[bytes, bytes]:
        """Return ``(seed, public_key)``: the 32-byte seed is the private key."""
        seed = secrets.token_bytes(SEED_SIZE)
        return seed, self._from_seed(seed).public_key().public_bytes_raw()

    def sign(self, private_key: bytes, message: bytes, *, context: bytes = b"") -> bytes:
        """Sign ``message``; ``context`` is the FIPS 204 context string (at most 255 bytes)."""
        expect_length(private_key, SEED_SIZE, f"{self.name} private key (seed)")
        _check_context(context)
        return self._from_seed(private_key).sign(message, context)

    def verify(self, public_key: bytes, message: bytes, signature: bytes, *, context: bytes = b"") -> bool:
        """Whether ``signature`` is valid over ``message`` and ``context`` under ``public_key``."""
        expect_length(public_key, self.public_key_size, f"{self.name} public key")
        _check_context(context)
        if len(signature) != self.signature_size:
            return False
        try:
            key = self._from_public(public_key)
        except ValueError as exc:
            raise ValueError(f"{self.name} public key could not be decoded") from exc
        try:
            key.verify(signature, message, context)
        except InvalidSignature:
            return False
        return True


def _check_context(context: bytes) -> None:
    if len(context) > MAX_CONTEXT_SIZE:
        raise ValueError(f"an ML-DSA context is at most {MAX_CONTEXT_SIZE} bytes, got {len(context)}")


ML_DSA_44: Final = MlDsa(
    "ML-DSA-44",
    public_key_size=1312,
    signature_size=2420,
    from_seed=mldsa.MLDSA44PrivateKey.from_seed_bytes,
    from_public=mldsa.MLDSA44PublicKey.from_public_bytes,
)
ML_DSA_65: Final = MlDsa(
    "ML-DSA-65",
    public_key_size=1952,
    signature_size=3309,
    from_seed=mldsa.MLDSA65PrivateKey.from_seed_bytes,
    from_public=mldsa.MLDSA65PublicKey.from_public_bytes,
)
ML_DSA_87: Final = MlDsa(
    "ML-DSA-87",
    public_key_size=2592,
    signature_size=4627,
    from_seed=mldsa.MLDSA87PrivateKey.from_seed_bytes,
    from_public=mldsa.MLDSA87PublicKey.from_public_bytes,
)
