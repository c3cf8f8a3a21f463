"""The crypto core: hybrid and post-quantum KEMs, signatures, and envelope encryption of data keys.

Everything works on plain bytes and on the algorithm names of the ProtectionPolicy API, so the
layers above store keys, pass them around and pick algorithms without importing a library's key
classes. OpenSSL (through ``cryptography``) does the work; ``pqcrypto`` supplies SLH-DSA, which
OpenSSL's Python binding does not expose yet.

    kem(name) / KEMS          X25519 (RFC 9180 DHKEM), ML-KEM-768, ML-KEM-1024, X-Wing
    signer(name) / SIGNERS    Ed25519, ECDSA-P384, ML-DSA-44/65/87, SLH-DSA-SHA2-128s,
                              SLH-DSA-SHAKE-256s, Ed25519+ML-DSA-65, ECDSA-P384+ML-DSA-87
    wrap_data_key / unwrap_data_key
                              a data key under a KEM, and under a KEK (KeyWrapper) too

Errors: :class:`CryptoError` and its :class:`UnwrapError` (see :mod:`.errors`); malformed
arguments raise ``ValueError``; signature checks return ``False``.
"""

from . import xwing
from .algorithms import KEMS, SIGNERS, X_WING, kem, signer
from .classical import ECDSA_P384, ED25519
from .composite import ECDSA_P384_ML_DSA_87, ED25519_ML_DSA_65, CompositeSigner
from .dhkem import X25519_KEM
from .envelope import (
    DATA_KEY_SIZE,
    DEFAULT_KEM,
    FORMAT_VERSION,
    KeyContext,
    WrappedKey,
    generate_data_key,
    unwrap_data_key,
    wrap_data_key,
)
from .errors import CryptoError, UnwrapError
from .kem import Kem
from .keywrapper import KeyWrapper, LocalAesGcmWrapper
from .mldsa import ML_DSA_44, ML_DSA_65, ML_DSA_87
from .mlkem import ML_KEM_768, ML_KEM_1024
from .signer import Signer
from .slhdsa import SLH_DSA_SHA2_128S, SLH_DSA_SHAKE_256S

__all__ = [
    "DATA_KEY_SIZE",
    "DEFAULT_KEM",
    "ECDSA_P384",
    "ECDSA_P384_ML_DSA_87",
    "ED25519",
    "ED25519_ML_DSA_65",
    "FORMAT_VERSION",
    "KEMS",
    "ML_DSA_44",
    "ML_DSA_65",
    "ML_DSA_87",
    "ML_KEM_768",
    "ML_KEM_1024",
    "SIGNERS",
    "SLH_DSA_SHA2_128S",
    "SLH_DSA_SHAKE_256S",
    "X25519_KEM",
    "X_WING",
    "CompositeSigner",
    "CryptoError",
    "Kem",
    "KeyContext",
    "KeyWrapper",
    "LocalAesGcmWrapper",
    "Signer",
    "UnwrapError",
    "WrappedKey",
    "generate_data_key",
    "kem",
    "signer",
    "unwrap_data_key",
    "wrap_data_key",
    "xwing",
]
