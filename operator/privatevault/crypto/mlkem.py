"""ML-KEM (FIPS 203) at two security levels, on OpenSSL through ``cryptography``.

The private key kept is the 64-byte seed ``d || z`` that FIPS 203 expands into the full
decapsulation key, not the 2,400- or 3,168-byte expanded form: it is smaller to store and seal,
and it is the form X-Wing and the IETF key formats settled on. Expanding it costs one key
generation per decapsulation (about 0.1 ms), which this module accepts rather than keeping
expanded secrets in a cache.

Parsed public keys are cached (a bounded LRU keyed by their bytes): parsing checks the FIPS 203
modulus condition and costs about as much as an encapsulation, and public keys are not secret.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from typing import Final, Protocol

from cryptography.hazmat.primitives.asymmetric import mlkem

from .lengths import expect_length

SEED_SIZE: Final = 64
SHARED_SECRET_SIZE: Final = 32


class _PublicKey(Protocol):
    def encapsulate(self) -> tuple[bytes, bytes]: ...

    def public_bytes_raw(self) -> bytes: ...


class _PrivateKey(Protocol):
    def decapsulate(self, ciphertext: bytes) -> bytes: ...

    def public_key(self) -> _PublicKey: ...


class MlKem:
    """One ML-KEM parameter set; use the instances :data:`ML_KEM_768` and :data:`ML_KEM_1024`."""

    __slots__ = ("_from_public", "_from_seed", "_public", "ciphertext_size", "name", "public_key_size")

    private_key_size: Final = SEED_SIZE

    def __init__(
        self,
        name: str,
        *,
        public_key_size: int,
        ciphertext_size: int,
        from_seed: Callable[[bytes], _PrivateKey],
        from_public: Callable[[bytes], _PublicKey],
    ) -> None:
        self.name = name
        self.public_key_size = public_key_size
        self.ciphertext_size = ciphertext_size
        self._from_seed = from_seed
        self._from_public = from_public
        self._public = functools.lru_cache(maxsize=256)(self._load_public)

    def __repr__(self) -> str:
        return f"MlKem({self.name!r})"

    def generate_keypair(self, seed: bytes | None = None) -> tuple[bytes, bytes]:
        """Return ``(seed, public_key)``: the 64-byte seed ``d || z`` is the private key."""
        if seed is None:
            seed = secrets.token_bytes(SEED_SIZE)
        expect_length(seed, SEED_SIZE, f"{self.name} seed")
        return seed, self._from_seed(seed).public_key().public_bytes_raw()

    def encapsulate(self, public_key: bytes) -> tuple[bytes, bytes]:
        """Return ``(ciphertext, shared_secret)`` for ``public_key``."""
        expect_length(public_key, self.public_key_size, f"{self.name} public key")
        shared_secret, ciphertext = self._public(public_key).encapsulate()
        return ciphertext, shared_secret

    def decapsulate(self, private_key: bytes, ciphertext: bytes) -> bytes:
        """Return the shared secret; a tampered ciphertext yields an unrelated secret, not an error (FIPS 203)."""
        expect_length(private_key, SEED_SIZE, f"{self.name} private key (seed)")
        expect_length(ciphertext, self.ciphertext_size, f"{self.name} ciphertext")
        return self._from_seed(private_key).decapsulate(ciphertext)

    def public_key(self, private_key: bytes) -> bytes:
        """The public key belonging to ``private_key`` (the seed)."""
        expect_length(private_key, SEED_SIZE, f"{self.name} private key (seed)")
        return self._from_seed(private_key).public_key().public_bytes_raw()

    def _load_public(self, public_key: bytes) -> _PublicKey:
        try:
            return self._from_public(public_key)
        except ValueError as exc:
            raise ValueError(f"{self.name} public key is not a valid encapsulation key (FIPS 203 check)") from exc


ML_KEM_768: Final = MlKem(
    "ML-KEM-768",
    public_key_size=1184,
    ciphertext_size=1088,
    from_seed=mlkem.MLKEM768PrivateKey.from_seed_bytes,
    from_public=mlkem.MLKEM768PublicKey.from_public_bytes,
)
ML_KEM_1024: Final = MlKem(
    "ML-KEM-1024",
    public_key_size=1568,
    ciphertext_size=1568,
    from_seed=mlkem.MLKEM1024PrivateKey.from_seed_bytes,
    from_public=mlkem.MLKEM1024PublicKey.from_public_bytes,
)
