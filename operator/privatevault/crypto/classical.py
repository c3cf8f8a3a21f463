"""Ed25519 and ECDSA P-384: the classical signatures, alone for mode Classical and inside composites.

Encodings are fixed-size raw bytes, so a composite can frame them without parsing DER:

* Ed25519 (RFC 8032): 32-byte private seed, 32-byte public key, 64-byte signature.
* ECDSA P-384 with SHA-384: 48-byte big-endian private scalar, 97-byte uncompressed SEC 1 public
  point, 96-byte ``r || s`` signature (the IEEE P1363 form). Nonces are derived as in RFC 6979,
  so a weak random number generator cannot leak the private key through a repeated nonce.
"""

from __future__ import annotations

from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .lengths import expect_length

_ED25519_KEY_SIZE: Final = 32
_ED25519_SIGNATURE_SIZE: Final = 64
_P384_SCALAR_SIZE: Final = 48
_P384_POINT_SIZE: Final = 1 + 2 * _P384_SCALAR_SIZE
_P384_SIGNATURE_SIZE: Final = 2 * _P384_SCALAR_SIZE


class Ed25519:
    """Ed25519 signatures; use the instance :data:`ED25519`."""

    __slots__ = ()

    name: Final = "Ed25519"

    def __repr__(self) -> str:
        return "Ed25519()"

    def generate(self) -> tuple[bytes, bytes]:
        key = Ed25519PrivateKey.generate()
        return key.private_bytes_raw(), key.public_key().public_bytes_raw()

    def sign(self, private_key: bytes, message: bytes) -> bytes:
        expect_length(private_key, _ED25519_KEY_SIZE, "Ed25519 private key")
        return Ed25519PrivateKey.from_private_bytes(private_key).sign(message)

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        expect_length(public_key, _ED25519_KEY_SIZE, "Ed25519 public key")
        if len(signature) != _ED25519_SIGNATURE_SIZE:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


class EcdsaP384:
    """ECDSA over P-384 with SHA-384; use the instance :data:`ECDSA_P384`."""

    __slots__ = ()

    name: Final = "ECDSA-P384"

    def __repr__(self) -> str:
        return "EcdsaP384()"

    def generate(self) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP384R1())
        private = key.private_numbers().private_value.to_bytes(_P384_SCALAR_SIZE, "big")
        return private, _public_bytes(key.public_key())

    def sign(self, private_key: bytes, message: bytes) -> bytes:
        expect_length(private_key, _P384_SCALAR_SIZE, "ECDSA-P384 private key")
        try:
            key = ec.derive_private_key(int.from_bytes(private_key, "big"), ec.SECP384R1())
        except ValueError as exc:
            raise ValueError("ECDSA-P384 private key is not a scalar in [1, n-1]") from exc
        der = key.sign(message, ec.ECDSA(hashes.SHA384(), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        return r.to_bytes(_P384_SCALAR_SIZE, "big") + s.to_bytes(_P384_SCALAR_SIZE, "big")

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        expect_length(public_key, _P384_POINT_SIZE, "ECDSA-P384 public key")
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), public_key)
        except ValueError as exc:
            raise ValueError("ECDSA-P384 public key is not a point on P-384") from exc
        if len(signature) != _P384_SIGNATURE_SIZE:
            return False
        r = int.from_bytes(signature[:_P384_SCALAR_SIZE], "big")
        s = int.from_bytes(signature[_P384_SCALAR_SIZE:], "big")
        try:
            key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA384()))
        except InvalidSignature:
            return False
        return True


def _public_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


ED25519: Final = Ed25519()
ECDSA_P384: Final = EcdsaP384()
