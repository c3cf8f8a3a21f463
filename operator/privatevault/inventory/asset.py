"""What a TLS Secret's certificate is (algorithm, size, names, validity), read without its key.

The inventory asks "which keys would a quantum computer break, and when do they expire?", and
the certificate alone answers it: its public key names the algorithm and the size. So
``tls.key`` is never read, decoded or copied. A scanner that touches private keys is one more
place they can leak from, and it needs none of them.

A Secret whose certificate cannot be read becomes an ``Unparseable`` asset carrying a
``problem``, never an exception: one broken Secret must not hide the rest of a tenant's
inventory, and a broken TLS Secret is itself worth reporting. The problems are fixed phrases,
so they cannot echo anything from the Secret.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from privatevault.inventory.algorithm import key_algorithm, signature_algorithm

TLS_SECRET_TYPE = "kubernetes.io/tls"  # noqa: S105 - a Secret type, not a password
CERTIFICATE_KEY = "tls.crt"
UNPARSEABLE = "Unparseable"

_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True, kw_only=True)
class Asset:
    """One TLS Secret's leaf certificate, as facts: nothing here is key material.

    ``not_before`` and ``not_after`` are timezone-aware UTC; ``chain_length`` counts the
    certificates in ``tls.crt`` (the leaf first). An ``Unparseable`` asset has only its
    namespace, name and ``problem``.
    """

    namespace: str
    name: str
    algorithm: str
    key_size: int | None = None
    signature_algorithm: str | None = None
    issuer: str = ""
    subject: str = ""
    dns_names: tuple[str, ...] = ()
    not_before: datetime | None = None
    not_after: datetime | None = None
    quantum_vulnerable: bool | None = None
    chain_length: int = 0
    problem: str | None = None

    @property
    def parseable(self) -> bool:
        return self.problem is None


def parse_tls_secret(secret: Mapping[str, Any]) -> Asset | None:
    """The asset in a ``kubernetes.io/tls`` Secret as the API returns it; ``None`` for other types.

    Never raises on bad data: a certificate that cannot be read gives an ``Unparseable`` asset.
    """
    if secret.get("type") != TLS_SECRET_TYPE:
        return None
    namespace, name = _identity(secret)
    data = secret.get("data")
    encoded = data.get(CERTIFICATE_KEY) if isinstance(data, Mapping) else None
    if not isinstance(encoded, str) or not encoded:
        return _unparseable(namespace, name, "tls.crt is missing or empty")
    try:
        pem = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return _unparseable(namespace, name, "tls.crt is not valid base64")
    if _PEM_CERTIFICATE not in pem:
        return _unparseable(namespace, name, "tls.crt holds no PEM-encoded certificate")
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError:
        return _unparseable(namespace, name, "tls.crt has a PEM certificate that is not valid X.509")
    try:
        return _describe(namespace, name, chain)
    except (ValueError, UnsupportedAlgorithm):
        return _unparseable(namespace, name, "the leaf certificate in tls.crt has a malformed key or extension")


def _describe(namespace: str, name: str, chain: list[x509.Certificate]) -> Asset:
    leaf = chain[0]
    algorithm = key_algorithm(leaf)
    return Asset(
        namespace=namespace,
        name=name,
        algorithm=algorithm.name,
        key_size=algorithm.key_size,
        signature_algorithm=signature_algorithm(leaf),
        issuer=leaf.issuer.rfc4514_string(),
        subject=leaf.subject.rfc4514_string(),
        dns_names=_dns_names(leaf),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        quantum_vulnerable=algorithm.quantum_vulnerable,
        chain_length=len(chain),
    )


def _dns_names(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(names.get_values_for_type(x509.DNSName))


def _identity(secret: Mapping[str, Any]) -> tuple[str, str]:
    metadata = secret.get("metadata")
    if not isinstance(metadata, Mapping):
        return "", ""
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def _unparseable(namespace: str, name: str, problem: str) -> Asset:
    return Asset(namespace=namespace, name=name, algorithm=UNPARSEABLE, problem=problem)
