"""SLH-DSA (FIPS 205), the hash-based signature, through ``pqcrypto`` (OpenSSL's is not exposed yet).

SLH-DSA rests only on the strength of its hash function, so it is the conservative choice when
the lattice assumptions under ML-DSA are doubted. The price is size and time: the small ("s")
parameter sets offered here sign in a quarter of a second (SHA2-128s) to over a second
(SHAKE-256s) and their signatures are 7,856 and 29,792 bytes. Use them for long-lived, rarely
made signatures (release manifests, root policies), not per request.

Pure SLH-DSA with an empty FIPS 205 context; keys are the FIPS 205 byte strings
(``SK.seed || SK.prf || PK.seed || PK.root`` and ``PK.seed || PK.root``).
"""

from __future__ import annotations

from types import ModuleType
from typing import Final

from pqcrypto import InvalidSignatureError
from pqcrypto.sign import slh_dsa_sha2_128s, slh_dsa_shake_256s

from .lengths import expect_length


class SlhDsa:
    """One SLH-DSA parameter set; use :data:`SLH_DSA_SHA2_128S` or :data:`SLH_DSA_SHAKE_256S`."""

    __slots__ = ("_scheme", "name", "private_key_size", "public_key_size", "signature_size")

    def __init__(self, name: str, scheme: ModuleType) -> None:
        self.name = name
        self._scheme = scheme
        self.private_key_size = int(scheme.SECRET_KEY_SIZE)
        self.public_key_size = int(scheme.PUBLIC_KEY_SIZE)
        self.signature_size = int(scheme.SIGNATURE_SIZE)

    def __repr__(self) -> str:
        return f"SlhDsa({self.name!r})"

    def generate(self) -> tuple[bytes, bytes]:
        public, private = self._scheme.keygen()
        return bytes(private), bytes(public)

    def sign(self, private_key: bytes, message: bytes) -> bytes:
        expect_length(private_key, self.private_key_size, f"{self.name} private key")
        return bytes(self._scheme.sign(private_key, message))

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        expect_length(public_key, self.public_key_size, f"{self.name} public key")
        if len(signature) != self.signature_size:
            return False
        try:
            self._scheme.verify(public_key, message, signature)
        except InvalidSignatureError:
            return False
        return True


SLH_DSA_SHA2_128S: Final = SlhDsa("SLH-DSA-SHA2-128s", slh_dsa_sha2_128s)
SLH_DSA_SHAKE_256S: Final = SlhDsa("SLH-DSA-SHAKE-256s", slh_dsa_shake_256s)
