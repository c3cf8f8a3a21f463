"""Which public-key algorithm a certificate uses, and whether a quantum computer would break it.

Classification goes by the certificate's SubjectPublicKeyInfo OID, not by the key class that
``cryptography`` returns, so ML-DSA and SLH-DSA certificates are recognised even where the
installed OpenSSL cannot load their keys. The public key is loaded only for the classical
families whose strength is a parameter (RSA modulus, EC curve, DSA prime); for the others the
name alone fixes the strength, so ``key_size`` is ``None``.

Shor's algorithm breaks RSA, DSA and every elliptic-curve scheme (ECDSA, EdDSA, X25519/X448)
whatever the key size: they are all ``quantum_vulnerable``. ML-DSA (FIPS 204) and SLH-DSA
(FIPS 205) are NIST's post-quantum signatures and are not. An algorithm this module does not
know is reported as ``Unknown`` with ``quantum_vulnerable=None``: neither counted safe nor
counted broken, but visible for a person to look at.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

UNKNOWN = "Unknown"

_RSA = ("1.2.840.113549.1.1.1", "1.2.840.113549.1.1.10")  # rsaEncryption, RSASSA-PSS
_EC = "1.2.840.10045.2.1"  # id-ecPublicKey
_DSA = "1.2.840.10040.4.1"

#: Elliptic-curve keys: the name says it all, and Shor breaks them all.
_CURVE_KEYS = {
    "1.3.101.110": "X25519",
    "1.3.101.111": "X448",
    "1.3.101.112": "Ed25519",
    "1.3.101.113": "Ed448",
}

#: NIST post-quantum signatures (CSOR 2.16.840.1.101.3.4.3.*); the same OID names key and signature.
_POST_QUANTUM = {
    "2.16.840.1.101.3.4.3.17": "ML-DSA-44",
    "2.16.840.1.101.3.4.3.18": "ML-DSA-65",
    "2.16.840.1.101.3.4.3.19": "ML-DSA-87",
    "2.16.840.1.101.3.4.3.20": "SLH-DSA-SHA2-128s",
    "2.16.840.1.101.3.4.3.21": "SLH-DSA-SHA2-128f",
    "2.16.840.1.101.3.4.3.22": "SLH-DSA-SHA2-192s",
    "2.16.840.1.101.3.4.3.23": "SLH-DSA-SHA2-192f",
    "2.16.840.1.101.3.4.3.24": "SLH-DSA-SHA2-256s",
    "2.16.840.1.101.3.4.3.25": "SLH-DSA-SHA2-256f",
    "2.16.840.1.101.3.4.3.26": "SLH-DSA-SHAKE-128s",
    "2.16.840.1.101.3.4.3.27": "SLH-DSA-SHAKE-128f",
    "2.16.840.1.101.3.4.3.28": "SLH-DSA-SHAKE-192s",
    "2.16.840.1.101.3.4.3.29": "SLH-DSA-SHAKE-192f",
    "2.16.840.1.101.3.4.3.30": "SLH-DSA-SHAKE-256s",
    "2.16.840.1.101.3.4.3.31": "SLH-DSA-SHAKE-256f",
}

#: NIST curve names as the rest of PrivateVault spells them (``ECDSA-P384``).
_NIST_CURVES = {"secp256r1": "P256", "secp384r1": "P384", "secp521r1": "P521"}

_SIGNATURES = {
    SignatureAlgorithmOID.RSA_WITH_SHA1.dotted_string: "RSA-SHA1",
    SignatureAlgorithmOID.RSA_WITH_SHA224.dotted_string: "RSA-SHA224",
    SignatureAlgorithmOID.RSA_WITH_SHA256.dotted_string: "RSA-SHA256",
    SignatureAlgorithmOID.RSA_WITH_SHA384.dotted_string: "RSA-SHA384",
    SignatureAlgorithmOID.RSA_WITH_SHA512.dotted_string: "RSA-SHA512",
    SignatureAlgorithmOID.RSASSA_PSS.dotted_string: "RSASSA-PSS",
    SignatureAlgorithmOID.ECDSA_WITH_SHA1.dotted_string: "ECDSA-SHA1",
    SignatureAlgorithmOID.ECDSA_WITH_SHA224.dotted_string: "ECDSA-SHA224",
    SignatureAlgorithmOID.ECDSA_WITH_SHA256.dotted_string: "ECDSA-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384.dotted_string: "ECDSA-SHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512.dotted_string: "ECDSA-SHA512",
    SignatureAlgorithmOID.DSA_WITH_SHA1.dotted_string: "DSA-SHA1",
    SignatureAlgorithmOID.DSA_WITH_SHA224.dotted_string: "DSA-SHA224",
    SignatureAlgorithmOID.DSA_WITH_SHA256.dotted_string: "DSA-SHA256",
    SignatureAlgorithmOID.ED25519.dotted_string: "Ed25519",
    SignatureAlgorithmOID.ED448.dotted_string: "Ed448",
    **_POST_QUANTUM,
}


@dataclass(frozen=True)
class KeyAlgorithm:
    """A certificate's public-key algorithm: its name, its size where that varies, its quantum fate."""

    name: str
    key_size: int | None
    quantum_vulnerable: bool | None


def key_algorithm(certificate: x509.Certificate) -> KeyAlgorithm:
    """The algorithm of ``certificate``'s public key (raises ``ValueError`` if a classical key is malformed)."""
    oid = certificate.public_key_algorithm_oid.dotted_string
    if oid in _POST_QUANTUM:
        return KeyAlgorithm(_POST_QUANTUM[oid], None, quantum_vulnerable=False)
    if oid in _CURVE_KEYS:
        return KeyAlgorithm(_CURVE_KEYS[oid], None, quantum_vulnerable=True)
    if oid in (*_RSA, _EC, _DSA):
        key = certificate.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            return KeyAlgorithm("RSA", key.key_size, quantum_vulnerable=True)
        if isinstance(key, ec.EllipticCurvePublicKey):
            curve = _NIST_CURVES.get(key.curve.name, key.curve.name)
            return KeyAlgorithm(f"ECDSA-{curve}", key.curve.key_size, quantum_vulnerable=True)
        if isinstance(key, dsa.DSAPublicKey):
            return KeyAlgorithm("DSA", key.key_size, quantum_vulnerable=True)
    return KeyAlgorithm(UNKNOWN, None, quantum_vulnerable=None)


def signature_algorithm(certificate: x509.Certificate) -> str:
    """The algorithm the issuer signed ``certificate`` with; the dotted OID when it has no name here."""
    oid = certificate.signature_algorithm_oid.dotted_string
    return _SIGNATURES.get(oid, oid)
