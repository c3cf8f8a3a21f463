"""The crypto inventory reads real certificates right, scores them by the documented scales, and never reads a key.

Certificates are made here with ``cryptography`` and wrapped in Secret, Ingress and Service dicts
shaped as the Kubernetes API returns them. Scales and the risk formula are pinned at every
boundary; broken Secrets become ``Unparseable`` assets instead of exceptions; ``tls.key`` is
guarded by a tripwire and its text is searched for in every output.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, mldsa, rsa
from cryptography.x509.oid import NameOID

from privatevault import inventory as inv
from privatevault.inventory import (
    METRICS,
    UNPARSEABLE,
    Asset,
    Exposure,
    Sensitivity,
    exposure,
    inventory,
    lifetime_multiplier,
    parse_tls_secret,
    risk_score,
    samples,
    sensitivity,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)

PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | dsa.DSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | mldsa.MLDSA65PrivateKey
)


# --- certificates, made for real -------------------------------------------------------------


@functools.cache
def private_key(kind: str) -> PrivateKey:
    """One key per kind for the whole module: RSA-4096 and DSA take a moment to generate."""
    makers: dict[str, Any] = {
        "RSA-2048": lambda: rsa.generate_private_key(65537, 2048),
        "RSA-4096": lambda: rsa.generate_private_key(65537, 4096),
        "P-256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "P-384": lambda: ec.generate_private_key(ec.SECP384R1()),
        "P-521": lambda: ec.generate_private_key(ec.SECP521R1()),
        "secp256k1": lambda: ec.generate_private_key(ec.SECP256K1()),
        "Ed25519": ed25519.Ed25519PrivateKey.generate,
        "Ed448": ed448.Ed448PrivateKey.generate,
        "DSA-2048": lambda: dsa.generate_private_key(2048),
        "ML-DSA-65": mldsa.MLDSA65PrivateKey.generate,
    }
    key: PrivateKey = makers[kind]()
    return key


def _hash_for(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | None:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | dsa.DSAPrivateKey):
        return hashes.SHA256()
    return None


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def certificate(
    kind: str,
    *,
    left: timedelta = 200 * DAY,
    lifetime: timedelta = 397 * DAY,
    common_name: str = "shop.example.com",
    dns_names: tuple[str, ...] = ("shop.example.com", "www.shop.example.com"),
    issuer: tuple[str, str] | None = None,
    ca: bool = False,
) -> x509.Certificate:
    """A certificate of key ``kind`` with ``left`` until notAfter at NOW; self-signed unless ``issuer``."""
    key = private_key(kind)
    issuer_kind, issuer_cn = issuer or (kind, common_name)
    signing_key = private_key(issuer_kind)
    not_after = NOW + left
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(issuer_cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - lifetime)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in dns_names]), critical=False
        )
    return builder.sign(signing_key, _hash_for(signing_key))


def pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certificates)


def key_pem(kind: str) -> bytes:
    return private_key(kind).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def secret(
    name: str,
    crt: bytes | str | None,
    *,
    namespace: str = "shop",
    key: bytes | str | None = b"-----BEGIN PRIVATE KEY-----\nnot a real key\n-----END PRIVATE KEY-----\n",
    type: str = "kubernetes.io/tls",
) -> dict[str, Any]:
    """A Secret as ``GET /api/v1/namespaces/{ns}/secrets/{name}`` returns it: data base64-encoded."""
    data: dict[str, Any] = {}
    for field, value in (("tls.crt", crt), ("tls.key", key)):
        if value is not None:
            data[field] = b64(value) if isinstance(value, bytes) else value
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "resourceVersion": "1"},
        "type": type,
        "data": data,
    }


def ingress(name: str, *secret_names: str | None, namespace: str = "shop") -> dict[str, Any]:
    tls = [{"hosts": ["shop.example.com"], **({"secretName": s} if s else {})} for s in secret_names]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "ingressClassName": "nginx",
            "tls": tls,
            "rules": [{"host": "shop.example.com", "http": {"paths": []}}],
        },
    }


def service(name: str, type: str = "ClusterIP", *, namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": type, "ports": [{"port": 443, "targetPort": 8443}], **spec},
    }


# --- a little DER, to make certificates cryptography cannot make (SLH-DSA, unknown keys) --------


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


def _elements(der: bytes) -> list[bytes]:
    """The TLVs inside the SEQUENCE ``der``."""
    head = 2 + (der[1] & 0x7F if der[1] & 0x80 else 0)
    body, out = der[head:], []
    while body:
        size, start = body[1], 2
        if size & 0x80:
            start = 2 + (size & 0x7F)
            size = int.from_bytes(body[2:start], "big")
        out.append(body[: start + size])
        body = body[start + size :]
    return out


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(arc) for arc in dotted.split("."))
    out = bytearray([40 * first + second])
    for arc in rest:
        chunk = [arc & 0x7F]
        while arc := arc >> 7:
            chunk.insert(0, 0x80 | (arc & 0x7F))
        out += bytes(chunk)
    return _der(0x06, bytes(out))


def with_key_algorithm(cert: x509.Certificate, dotted: str) -> bytes:
    """``cert`` as PEM with its SubjectPublicKeyInfo swapped for a 32-byte key of OID ``dotted``.

    The signature no longer verifies; the inventory does not verify signatures, it describes.
    """
    outer = _elements(cert.public_bytes(serialization.Encoding.DER))
    tbs = _elements(cert.tbs_certificate_bytes)
    tbs[6] = _der(0x30, _der(0x30, _oid(dotted)) + _der(0x03, b"\x00" + bytes(32)))
    der = _der(0x30, _der(0x30, b"".join(tbs)) + outer[1] + outer[2])
    return pem(x509.load_der_x509_certificate(der))


# --- the public surface -------------------------------------------------------------------------


def test_all_names_resolve() -> None:
    assert sorted(inv.__all__) == sorted(set(inv.__all__))
    for name in inv.__all__:
        assert hasattr(inv, name), name


# --- parse_tls_secret: what a certificate is ----------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "algorithm", "key_size", "signature", "vulnerable"),
    [
        ("RSA-2048", "RSA", 2048, "RSA-SHA256", True),
        ("RSA-4096", "RSA", 4096, "RSA-SHA256", True),
        ("P-256", "ECDSA-P256", 256, "ECDSA-SHA256", True),
        ("P-384", "ECDSA-P384", 384, "ECDSA-SHA384", True),
        ("P-521", "ECDSA-P521", 521, "ECDSA-SHA384", True),
        ("secp256k1", "ECDSA-secp256k1", 256, "ECDSA-SHA256", True),
        ("Ed25519", "Ed25519", None, "Ed25519", True),
        ("Ed448", "Ed448", None, "Ed448", True),
        ("DSA-2048", "DSA", 2048, "DSA-SHA256", True),
        ("ML-DSA-65", "ML-DSA-65", None, "ML-DSA-65", False),
    ],
)
def test_algorithm_size_signature_and_quantum_fate(
    kind: str, algorithm: str, key_size: int | None, signature: str, vulnerable: bool
) -> None:
    asset = parse_tls_secret(secret("web-tls", pem(certificate(kind))))
    assert asset is not None
    assert (asset.algorithm, asset.key_size, asset.signature_algorithm, asset.quantum_vulnerable) == (
        algorithm,
        key_size,
        signature,
        vulnerable,
    )
    assert asset.problem is None


@pytest.mark.parametrize(
    ("oid", "algorithm", "vulnerable"),
    [
        ("2.16.840.1.101.3.4.3.20", "SLH-DSA-SHA2-128s", False),
        ("2.16.840.1.101.3.4.3.31", "SLH-DSA-SHAKE-256f", False),
        ("1.3.6.1.4.1.55555.1.2", "Unknown", None),
    ],
)
def test_keys_cryptography_cannot_load_are_named_by_oid(oid: str, algorithm: str, vulnerable: bool | None) -> None:
    asset = parse_tls_secret(secret("odd-tls", with_key_algorithm(certificate("Ed25519"), oid)))
    assert asset is not None
    assert (asset.algorithm, asset.key_size, asset.quantum_vulnerable, asset.problem) == (
        algorithm,
        None,
        vulnerable,
        None,
    )
    assert asset.subject == "CN=shop.example.com,O=Acme"


def test_names_and_validity_of_the_certificate() -> None:
    cert = certificate("P-256", left=45 * DAY, lifetime=90 * DAY)
    asset = parse_tls_secret(secret("web-tls", pem(cert), namespace="shop"))
    assert asset == Asset(
        namespace="shop",
        name="web-tls",
        algorithm="ECDSA-P256",
        key_size=256,
        signature_algorithm="ECDSA-SHA256",
        issuer="CN=shop.example.com,O=Acme",
        subject="CN=shop.example.com,O=Acme",
        dns_names=("shop.example.com", "www.shop.example.com"),
        not_before=NOW - 45 * DAY,
        not_after=NOW + 45 * DAY,
        quantum_vulnerable=True,
        chain_length=1,
    )
    assert asset.parseable


def test_a_certificate_without_subject_alternative_names() -> None:
    asset = parse_tls_secret(secret("bare-tls", pem(certificate("Ed25519", dns_names=()))))
    assert asset is not None
    assert (asset.dns_names, asset.problem) == ((), None)


def test_a_chain_is_described_by_its_leaf() -> None:
    root = certificate("P-384", common_name="Acme Root", dns_names=(), ca=True, lifetime=3650 * DAY, left=3000 * DAY)
    intermediate = certificate(
        "P-256", common_name="Acme Issuing", dns_names=(), issuer=("P-384", "Acme Root"), ca=True, left=1000 * DAY
    )
    leaf = certificate("RSA-2048", issuer=("P-256", "Acme Issuing"), left=60 * DAY)
    asset = parse_tls_secret(secret("web-tls", pem(leaf, intermediate, root)))
    assert asset is not None
    assert (asset.algorithm, asset.key_size, asset.signature_algorithm) == ("RSA", 2048, "ECDSA-SHA256")
    assert (asset.subject, asset.issuer, asset.chain_length) == (
        "CN=shop.example.com,O=Acme",
        "CN=Acme Issuing,O=Acme",
        3,
    )
    assert asset.not_after == NOW + 60 * DAY


@pytest.mark.parametrize("secret_type", ["Opaque", "kubernetes.io/service-account-token", "", None])
def test_other_secret_types_are_not_assets(secret_type: str | None) -> None:
    body = secret("web-tls", pem(certificate("P-256")))
    body["type"] = secret_type
    assert parse_tls_secret(body) is None


CERT = certificate("P-256")
PEM_TEXT = pem(CERT)


@pytest.mark.parametrize(
    ("crt", "problem"),
    [
        pytest.param(None, "tls.crt is missing or empty", id="missing"),
        pytest.param("", "tls.crt is missing or empty", id="empty"),
        pytest.param(42, "tls.crt is missing or empty", id="not-a-string"),
        pytest.param("%%% not base64 %%%", "tls.crt is not valid base64", id="bad-base64"),
        pytest.param("c2hvcA=", "tls.crt is not valid base64", id="bad-padding"),
        pytest.param("é", "tls.crt is not valid base64", id="non-ascii"),
        pytest.param(b"\n", "tls.crt holds no PEM", id="whitespace"),
        pytest.param(b"hello, world", "tls.crt holds no PEM", id="not-pem"),
        pytest.param(CERT.public_bytes(serialization.Encoding.DER), "tls.crt holds no PEM", id="der"),
        pytest.param(key_pem("P-256"), "tls.crt holds no PEM", id="a-key-not-a-certificate"),
        pytest.param(
            b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
            "not valid X.509",
            id="pem-of-garbage",
        ),
        pytest.param(PEM_TEXT[: len(PEM_TEXT) // 2], "not valid X.509", id="truncated"),
        pytest.param(
            PEM_TEXT + b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "not valid X.509",
            id="broken-second-certificate",
        ),
    ],
)
def test_malformed_certificates_become_unparseable_assets(crt: object, problem: str) -> None:
    body = secret("web-tls", None, namespace="shop")
    if crt is not None:
        body["data"]["tls.crt"] = b64(crt) if isinstance(crt, bytes) else crt
    asset = parse_tls_secret(body)
    assert asset is not None
    assert (asset.namespace, asset.name, asset.algorithm) == ("shop", "web-tls", UNPARSEABLE)
    assert asset.problem is not None
    assert problem in asset.problem
    assert (asset.quantum_vulnerable, asset.not_after, asset.key_size, asset.parseable) == (None, None, None, False)


@pytest.mark.parametrize("data", [None, "tls.crt", [], {}])
def test_a_secret_without_usable_data_is_unparseable(data: object) -> None:
    body = secret("web-tls", PEM_TEXT)
    body["data"] = data
    asset = parse_tls_secret(body)
    assert asset is not None
    assert asset.algorithm == UNPARSEABLE


def test_a_secret_without_metadata_still_gives_an_asset() -> None:
    body = secret("web-tls", PEM_TEXT)
    del body["metadata"]
    asset = parse_tls_secret(body)
    assert asset is not None
    assert (asset.namespace, asset.name, asset.algorithm) == ("", "", "ECDSA-P256")


# --- tls.key is never read ----------------------------------------------------------------------


class Tripwire(Mapping[str, Any]):
    """Secret data whose ``tls.key`` fails the test the moment anything reads its value."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        if key == "tls.key":
            pytest.fail("tls.key was read")
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def test_tls_key_is_never_read() -> None:
    body = secret("web-tls", PEM_TEXT, key=b64(key_pem("P-256")))
    body["data"] = Tripwire(body["data"])
    asset = parse_tls_secret(body)
    assert asset is not None
    assert asset.algorithm == "ECDSA-P256"
    result = inventory("acme", "Secret", [body], [ingress("web", "web-tls")], [], now=NOW)
    assert result.counts.total == 1


@pytest.mark.parametrize(
    "key", ["!!! not base64 at all !!!", "", 12345, None], ids=["garbage", "empty", "int", "absent"]
)
def test_a_garbage_or_missing_tls_key_changes_nothing(key: object) -> None:
    body = secret("web-tls", PEM_TEXT, key=None)
    if key is not None:
        body["data"]["tls.key"] = key
    asset = parse_tls_secret(body)
    assert asset == parse_tls_secret(secret("web-tls", PEM_TEXT))
    assert asset is not None
    assert asset.problem is None


def test_no_private_key_text_in_any_output() -> None:
    kinds = ["RSA-2048", "P-256", "Ed25519", "ML-DSA-65"]
    secrets = [secret(f"{kind.lower()}-tls", pem(certificate(kind)), key=key_pem(kind)) for kind in kinds]
    secrets.append(secret("broken-tls", b"not pem", key=key_pem("P-384")))
    result = inventory("acme", "Restricted", secrets, [ingress("web", "rsa-2048-tls")], [], now=NOW)
    outputs = [
        json.dumps(result.summary()),
        json.dumps(result.ledger_details()),
        repr(result),
        repr(list(samples(result))),
    ]
    key_lines = {
        line
        for kind in [*kinds, "P-384"]
        for line in key_pem(kind).decode().splitlines()
        if line and not line.startswith("-----")
    }
    for text in outputs:
        assert "PRIVATE KEY" not in text
        assert "BEGIN CERTIFICATE" not in text
        for body in secrets:
            assert body["data"]["tls.key"] not in text
            assert body["data"]["tls.crt"] not in text
        for line in key_lines:
            assert line not in text


# --- exposure -----------------------------------------------------------------------------------


def test_exposure_scale_is_pinned() -> None:
    assert [(level.name, int(level), level.label) for level in Exposure] == [
        ("NONE", 0, "None"),
        ("NODE_PORT", 1, "NodePort"),
        ("LOAD_BALANCER", 2, "LoadBalancer"),
        ("INGRESS", 3, "Ingress"),
    ]


@pytest.mark.parametrize(
    ("ingresses", "services", "expected"),
    [
        pytest.param([], [], Exposure.NONE, id="nothing"),
        pytest.param([], [service("db")], Exposure.NONE, id="cluster-ip"),
        pytest.param([], [service("db", "ExternalName", externalName="db.example.com")], Exposure.NONE),
        pytest.param([], [service("np", "NodePort")], Exposure.NODE_PORT, id="node-port"),
        pytest.param([], [service("lb", "LoadBalancer")], Exposure.LOAD_BALANCER, id="load-balancer"),
        pytest.param(
            [], [service("np", "NodePort"), service("lb", "LoadBalancer"), service("db")], Exposure.LOAD_BALANCER
        ),
        pytest.param([], [service("ext", externalIPs=["203.0.113.7"])], Exposure.LOAD_BALANCER, id="external-ips"),
        pytest.param([ingress("web", "web-tls")], [], Exposure.INGRESS, id="ingress"),
        pytest.param([ingress("web", "other-tls", "web-tls")], [], Exposure.INGRESS, id="second-tls-entry"),
        pytest.param([ingress("web", "web-tls")], [service("lb", "LoadBalancer")], Exposure.INGRESS),
        pytest.param([ingress("web", "other-tls")], [service("np", "NodePort")], Exposure.NODE_PORT),
        pytest.param([ingress("web", None)], [], Exposure.NONE, id="tls-without-secret-name"),
        pytest.param([ingress("web", "web-tls", namespace="elsewhere")], [], Exposure.NONE, id="ingress-elsewhere"),
        pytest.param([], [service("lb", "LoadBalancer", namespace="elsewhere")], Exposure.NONE, id="lb-elsewhere"),
        pytest.param(
            [{"metadata": {"namespace": "shop"}}, {"metadata": {"namespace": "shop"}, "spec": {"tls": "web-tls"}}],
            [{"metadata": {"namespace": "shop"}}, {"metadata": "shop", "spec": {"type": "LoadBalancer"}}, {}],
            Exposure.NONE,
            id="malformed-objects",
        ),
    ],
)
def test_exposure(ingresses: list[dict[str, Any]], services: list[dict[str, Any]], expected: Exposure) -> None:
    assert exposure("web-tls", "shop", ingresses, services) is expected


# --- the risk scales and formula ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("confidentiality", "level"),
    [("Public", 1), ("Internal", 2), ("Confidential", 3), ("Restricted", 4), ("Secret", 5)],
)
def test_sensitivity_scale(confidentiality: str, level: int) -> None:
    assert sensitivity(confidentiality) == level
    assert sensitivity(confidentiality) is Sensitivity(level)


@pytest.mark.parametrize("confidentiality", ["secret", "TopSecret", "", " Public"])
def test_unknown_confidentiality_is_refused(confidentiality: str) -> None:
    with pytest.raises(ValueError, match="expected one of Public, Internal, Confidential, Restricted, Secret"):
        sensitivity(confidentiality)


@pytest.mark.parametrize(
    ("left", "multiplier"),
    [
        pytest.param(-365 * DAY, 3.0, id="long-expired"),
        pytest.param(-SECOND, 3.0, id="expired-a-second-ago"),
        pytest.param(timedelta(0), 2.0, id="expires-this-second"),
        pytest.param(30 * DAY - SECOND, 2.0, id="30d-minus-1s"),
        pytest.param(30 * DAY, 1.5, id="30d"),
        pytest.param(90 * DAY - SECOND, 1.5, id="90d-minus-1s"),
        pytest.param(90 * DAY, 1.0, id="90d"),
        pytest.param(398 * DAY - SECOND, 1.0, id="398d-minus-1s"),
        pytest.param(398 * DAY, 1.2, id="398d"),
        pytest.param(3650 * DAY, 1.2, id="10y"),
    ],
)
def test_lifetime_multiplier_bands(left: timedelta, multiplier: float) -> None:
    assert lifetime_multiplier(NOW + left, NOW) == multiplier


def test_unknown_lifetime_is_neutral() -> None:
    assert lifetime_multiplier(None, NOW) == 1.0


@pytest.mark.parametrize(
    ("level", "reach", "multiplier", "score"),
    [
        (Sensitivity.PUBLIC, Exposure.NONE, 1.0, 10.0),
        (Sensitivity.PUBLIC, Exposure.INGRESS, 1.0, 25.0),
        (Sensitivity.INTERNAL, Exposure.LOAD_BALANCER, 1.2, 36.0),
        (Sensitivity.CONFIDENTIAL, Exposure.NODE_PORT, 1.5, 52.5),
        (Sensitivity.RESTRICTED, Exposure.NODE_PORT, 1.2, 54.0),
        (Sensitivity.RESTRICTED, Exposure.INGRESS, 2.0, 110.0),
        (Sensitivity.SECRET, Exposure.NONE, 1.5, 75.0),
        (Sensitivity.SECRET, Exposure.INGRESS, 3.0, 195.0),
    ],
)
def test_risk_formula(level: Sensitivity, reach: Exposure, multiplier: float, score: float) -> None:
    assert risk_score(level, reach, multiplier) == score


def test_every_reachable_score_is_exact_at_one_decimal() -> None:
    scores = {
        risk_score(level, reach, multiplier)
        for level in Sensitivity
        for reach in Exposure
        for multiplier in (3.0, 2.0, 1.5, 1.0, 1.2)
    }
    assert all(score * 10 == int(score * 10) for score in scores)
    assert (min(scores), max(scores)) == (10.0, 195.0)


# --- the inventory ------------------------------------------------------------------------------


def tenant_objects() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    secrets = [
        secret("web-tls", pem(certificate("RSA-2048", left=10 * DAY)), namespace="shop"),
        secret("api-tls", pem(certificate("P-256", left=5 * 365 * DAY, lifetime=6 * 365 * DAY)), namespace="shop"),
        secret("opaque", None, namespace="shop", type="Opaque"),
        secret("old-tls", pem(certificate("Ed25519", left=-DAY)), namespace="back"),
        secret("pq-tls", pem(certificate("ML-DSA-65", left=60 * DAY)), namespace="back"),
        secret("broken-tls", "%%%", namespace="back"),
        secret("rsa4096-tls", pem(certificate("RSA-4096", left=200 * DAY)), namespace="back"),
    ]
    ingresses = [ingress("web", "web-tls", namespace="shop"), ingress("admin", "old-tls", namespace="admin")]
    services = [service("api", "NodePort", namespace="shop"), service("db", namespace="back")]
    return secrets, ingresses, services


def test_inventory_scores_sorts_and_counts() -> None:
    secrets, ingresses, services = tenant_objects()
    result = inventory("acme", "Confidential", secrets, ingresses, services, now=NOW)
    rows = [
        (a.asset.namespace, a.asset.name, a.asset.algorithm, a.exposure, a.lifetime_multiplier, a.risk)
        for a in result.assessments
    ]
    assert rows == [
        ("back", "old-tls", "Ed25519", Exposure.NONE, 3.0, 90.0),
        ("shop", "web-tls", "RSA", Exposure.INGRESS, 2.0, 90.0),
        ("back", "pq-tls", "ML-DSA-65", Exposure.NONE, 1.5, 45.0),
        ("shop", "api-tls", "ECDSA-P256", Exposure.NODE_PORT, 1.2, 42.0),
        ("back", "broken-tls", UNPARSEABLE, Exposure.NONE, 1.0, 30.0),
        ("back", "rsa4096-tls", "RSA", Exposure.NONE, 1.0, 30.0),
    ]
    assert result.assets == tuple(a.asset for a in result.assessments)
    assert result.counts == inv.Counts(
        total=6, quantum_vulnerable=4, expired=1, expiring_within_30_days=1, unparseable=1
    )
    assert result.summary() == {
        "total": 6,
        "quantumVulnerable": 4,
        "expired": 1,
        "expiringWithin30Days": 1,
        "unparseable": 1,
        "highestRisk": 90.0,
    }
    details = result.ledger_details()
    assert json.loads(json.dumps(details)) == details
    assert details[1] == {
        "namespace": "shop",
        "name": "web-tls",
        "algorithm": "RSA",
        "keySize": 2048,
        "notAfter": "2026-03-11T12:00:00Z",
        "exposure": "Ingress",
        "risk": 90.0,
        "quantumVulnerable": True,
    }
    assert details[4] == {
        "namespace": "back",
        "name": "broken-tls",
        "algorithm": UNPARSEABLE,
        "keySize": None,
        "notAfter": None,
        "exposure": "None",
        "risk": 30.0,
        "quantumVulnerable": None,
    }


def test_inventory_is_the_same_whatever_the_input_order() -> None:
    secrets, ingresses, services = tenant_objects()
    forward = inventory("acme", "Secret", secrets, ingresses, services, now=NOW)
    backward = inventory("acme", "Secret", secrets[::-1], ingresses[::-1], services[::-1], now=NOW)
    assert forward == backward


@pytest.mark.parametrize(
    ("left", "expired", "expiring"),
    [
        (-SECOND, True, False),
        (timedelta(0), False, True),
        (30 * DAY - SECOND, False, True),
        (30 * DAY, False, False),
    ],
)
def test_expired_and_expiring_boundaries(left: timedelta, expired: bool, expiring: bool) -> None:
    result = inventory("acme", "Internal", [secret("web-tls", pem(certificate("P-256", left=left)))], [], [], now=NOW)
    (item,) = result.assessments
    assert (item.expired, item.expiring) == (expired, expiring)
    assert (result.counts.expired, result.counts.expiring_within_30_days) == (int(expired), int(expiring))


def test_an_empty_inventory() -> None:
    result = inventory("acme", "Public", [secret("opaque", None, type="Opaque")], [], [], now=NOW)
    assert result.summary() == {
        "total": 0,
        "quantumVulnerable": 0,
        "expired": 0,
        "expiringWithin30Days": 0,
        "unparseable": 0,
        "highestRisk": 0.0,
    }
    assert result.ledger_details() == []


def test_inventory_refuses_a_naive_now_and_an_unknown_confidentiality() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        inventory("acme", "Public", [], [], [], now=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="unknown confidentiality"):
        inventory("acme", "Classified", [], [], [], now=NOW)


def test_ledger_times_are_utc_whatever_the_zone_of_the_asset() -> None:
    secrets, _, _ = tenant_objects()
    result = inventory("acme", "Public", secrets[:1], [], [], now=NOW)
    item = result.assessments[0]
    assert item.asset.not_after is not None
    shifted = replace(item.asset, not_after=item.asset.not_after.astimezone(timezone(timedelta(hours=2))))
    moved = replace(result, assessments=(replace(item, asset=shifted),))
    assert moved.ledger_details()[0]["notAfter"] == "2026-03-11T12:00:00Z"


# --- metrics ------------------------------------------------------------------------------------


def test_metric_samples() -> None:
    secrets, ingresses, services = tenant_objects()
    result = inventory("acme", "Confidential", secrets, ingresses, services, now=NOW)
    found = list(samples(result))
    assert all(re.fullmatch(r"privatevault_[a-z_]+", s.name) for s in found)
    assert {s.name for s in found} == set(METRICS)
    assert all(isinstance(value, str) for s in found for value in s.labels.values())
    assets = {
        (s.labels["algorithm"], s.labels["quantum_vulnerable"]): s.value
        for s in found
        if s.name == "privatevault_crypto_assets"
    }
    assert assets == {
        ("ECDSA-P256", "true"): 1,
        ("Ed25519", "true"): 1,
        ("ML-DSA-65", "false"): 1,
        ("RSA", "true"): 2,
        (UNPARSEABLE, "unknown"): 1,
    }
    single = {s.name: s.value for s in found if set(s.labels) == {"tenant"}}
    assert single == {
        "privatevault_crypto_assets_expired": 1,
        "privatevault_crypto_assets_expiring": 1,
        "privatevault_crypto_risk_score_max": 90.0,
    }
    web = {"tenant": "acme", "namespace": "shop", "secret": "web-tls"}
    assert ("privatevault_crypto_asset_risk_score", web, 90.0) in found
    assert ("privatevault_crypto_asset_expiration_timestamp_seconds", web, (NOW + 10 * DAY).timestamp()) in found
    broken = {"tenant": "acme", "namespace": "back", "secret": "broken-tls"}
    assert [s.name for s in found if s.labels == broken] == ["privatevault_crypto_asset_risk_score"]
