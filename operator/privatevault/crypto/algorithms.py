"""The algorithms by their ProtectionPolicy API names: where policy strings become implementations.

The names are exactly the values of ``Kem`` and ``Signature`` in
``privatevault.api.v1alpha1.protectionpolicy``; a test holds the two lists equal, so adding a name
to the API without an implementation here fails the build rather than a reconcile.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from . import xwing
from .classical import ECDSA_P384, ED25519
from .composite import ECDSA_P384_ML_DSA_87, ED25519_ML_DSA_65
from .dhkem import X25519_KEM
from .kem import Kem
from .mldsa import ML_DSA_44, ML_DSA_65, ML_DSA_87
from .mlkem import ML_KEM_768, ML_KEM_1024
from .signer import Signer
from .slhdsa import SLH_DSA_SHA2_128S, SLH_DSA_SHAKE_256S


class XWing:
    """The :mod:`~privatevault.crypto.xwing` functions seen as a :class:`Kem`; use :data:`X_WING`."""

    __slots__ = ()

    name: Final = "X-Wing"
    private_key_size: Final = xwing.PRIVATE_KEY_SIZE
    public_key_size: Final = xwing.PUBLIC_KEY_SIZE
    ciphertext_size: Final = xwing.CIPHERTEXT_SIZE

    def __repr__(self) -> str:
        return "XWing()"

    def generate_keypair(self, seed: bytes | None = None) -> tuple[bytes, bytes]:
        return xwing.generate_keypair(seed)

    def encapsulate(self, public_key: bytes) -> tuple[bytes, bytes]:
        return xwing.encapsulate(public_key)

    def decapsulate(self, private_key: bytes, ciphertext: bytes) -> bytes:
        return xwing.decapsulate(private_key, ciphertext)


X_WING: Final = XWing()

KEMS: Final[Mapping[str, Kem]] = MappingProxyType(
    {kem.name: kem for kem in (X25519_KEM, ML_KEM_768, ML_KEM_1024, X_WING)}
)
SIGNERS: Final[Mapping[str, Signer]] = MappingProxyType(
    {
        signer.name: signer
        for signer in (
            ED25519,
            ECDSA_P384,
            ML_DSA_44,
            ML_DSA_65,
            ML_DSA_87,
            SLH_DSA_SHA2_128S,
            SLH_DSA_SHAKE_256S,
            ED25519_ML_DSA_65,
            ECDSA_P384_ML_DSA_87,
        )
    }
)


def kem(name: str) -> Kem:
    """The KEM called ``name`` in the API, or ``ValueError`` naming the ones there are."""
    try:
        return KEMS[name]
    except KeyError as exc:
        raise ValueError(f"unknown KEM {name!r}; known: {', '.join(KEMS)}") from exc


def signer(name: str) -> Signer:
    """The signature algorithm called ``name`` in the API, or ``ValueError`` naming the ones there are."""
    try:
        return SIGNERS[name]
    except KeyError as exc:
        raise ValueError(f"unknown signature algorithm {name!r}; known: {', '.join(SIGNERS)}") from exc
