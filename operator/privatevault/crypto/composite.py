"""Composite signatures: a classical and an ML-DSA signature that must both verify.

Why: during the migration neither half is trusted alone. ML-DSA is young; Ed25519 and ECDSA
fall to a quantum computer. A composite stays unforgeable while either half does.

Encoding (all framing is :mod:`privatevault.crypto.framing`: 4-byte big-endian length, then
the bytes, exactly two parts, nothing trailing):

    private key = frame(classical private key, ML-DSA private key (32-byte seed))
    public key  = frame(classical public key, ML-DSA public key)
    signature   = frame(classical signature, ML-DSA signature)

Both halves sign the same domain-separated message rather than the caller's message itself:

    M' = frame(b"privatevault/composite-signature/v1", name) || message

where ``name`` is the composite's API name (``b"Ed25519+ML-DSA-65"``). The ML-DSA half also
passes ``name`` as its FIPS 204 context string. So a half cut out of a composite is not a valid
signature over ``message`` for the plain algorithm, and a composite of one kind cannot be
passed off as another kind: stripping and re-labelling both fail.

The classical half's key sizes follow :mod:`privatevault.crypto.classical`; each half checks
its own lengths.
"""

from __future__ import annotations

from typing import Final

from .classical import ECDSA_P384, ED25519
from .framing import frame, unframe
from .mldsa import ML_DSA_65, ML_DSA_87, MlDsa
from .signer import Signer

DOMAIN: Final = b"privatevault/composite-signature/v1"


class CompositeSigner:
    """A classical signer and an ML-DSA parameter set, bound together under one name."""

    __slots__ = ("_prefix", "classical", "name", "post_quantum")

    def __init__(self, classical: Signer, post_quantum: MlDsa) -> None:
        self.classical = classical
        self.post_quantum = post_quantum
        self.name = f"{classical.name}+{post_quantum.name}"
        self._prefix = frame([DOMAIN, self.name.encode()])

    def __repr__(self) -> str:
        return f"CompositeSigner({self.name!r})"

    def generate(self) -> tuple[bytes, bytes]:
        classical_private, classical_public = self.classical.generate()
        pq_private, pq_public = self.post_quantum.generate()
        return frame([classical_private, pq_private]), frame([classical_public, pq_public])

    def sign(self, private_key: bytes, message: bytes) -> bytes:
        classical_private, pq_private = self._split(private_key, "private key")
        bound = self._prefix + message
        return frame(
            [
                self.classical.sign(classical_private, bound),
                self.post_quantum.sign(pq_private, bound, context=self.name.encode()),
            ]
        )

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        classical_public, pq_public = self._split(public_key, "public key")
        try:
            classical_signature, pq_signature = unframe(signature, 2)
        except ValueError:
            return False
        bound = self._prefix + message
        classical_ok = self.classical.verify(classical_public, bound, classical_signature)
        pq_ok = self.post_quantum.verify(pq_public, bound, pq_signature, context=self.name.encode())
        return classical_ok and pq_ok

    def _split(self, key: bytes, what: str) -> tuple[bytes, bytes]:
        try:
            classical, pq = unframe(key, 2)
        except ValueError as exc:
            raise ValueError(f"{self.name} {what} is not two framed components: {exc}") from exc
        return classical, pq


ED25519_ML_DSA_65: Final = CompositeSigner(ED25519, ML_DSA_65)
ECDSA_P384_ML_DSA_87: Final = CompositeSigner(ECDSA_P384, ML_DSA_87)
