"""The control plane's PKI, generated fresh for every bench so no key outlives its cluster.

As in a real cluster, one CA signs the apiserver's serving certificate and the client certificates
(the admin user in system:masters, the controller manager as system:kube-controller-manager, more
on request while the bench runs), and a separate key pair signs and verifies service-account
tokens. Keys are ECDSA P-256, except the service-account key, which is RSA 2048 because RS256 is
what every token consumer accepts.
"""

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from privatevault.testbench.errors import BenchError
from privatevault.testbench.secretfile import write_secret

VALIDITY = datetime.timedelta(days=365)
CLOCK_SKEW = datetime.timedelta(hours=1)


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate and its private key, both PEM-encoded."""

    cert_pem: bytes
    key_pem: bytes

    def write(self, cert_path: Path, key_path: Path) -> None:
        cert_path.write_bytes(self.cert_pem)
        write_secret(key_path, self.key_pem)


class CertificateAuthority:
    """A self-signed CA that issues server and client certificates."""

    def __init__(self, common_name: str) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        public_key = self._key.public_key()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(self._key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        common_name: str,
        *,
        organizations: Sequence[str] = (),
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        server: bool = False,
    ) -> IssuedCertificate:
        """Issue a client certificate, or a serving one (with SANs) when `server` is True."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organizations))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if dns_names or ip_addresses:
            sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
            sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        return IssuedCertificate(certificate.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


class ClusterPKI:
    """The cluster PKI's files in one directory, as the control plane's flags refer to them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca_cert = directory / "ca.crt"
        self.serving_cert = directory / "apiserver.crt"
        self.serving_key = directory / "apiserver.key"
        self.service_account_key = directory / "service-account.key"
        self.service_account_pub = directory / "service-account.pub"
        self.admin_cert = directory / "admin.crt"
        self.admin_key = directory / "admin.key"
        self.controller_manager_cert = directory / "controller-manager.crt"
        self.controller_manager_key = directory / "controller-manager.key"
        self._ca: CertificateAuthority | None = None

    def generate(self, service_ip: str) -> None:
        """Create the CA, the apiserver, admin and controller-manager certificates, the SA keys."""
        self.directory.mkdir(parents=True, exist_ok=True)
        ca = self._ca = CertificateAuthority("privatevault-bench-ca")
        self.ca_cert.write_bytes(ca.cert_pem)
        ca.issue(
            "kube-apiserver",
            dns_names=[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            ip_addresses=["127.0.0.1", service_ip],
            server=True,
        ).write(self.serving_cert, self.serving_key)
        ca.issue("privatevault-admin", organizations=["system:masters"]).write(self.admin_cert, self.admin_key)
        ca.issue("system:kube-controller-manager").write(self.controller_manager_cert, self.controller_manager_key)
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        write_secret(self.service_account_key, _key_pem(sa_key))
        self.service_account_pub.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def issue_client(self, common_name: str, cert_path: Path, key_path: Path, *, groups: Sequence[str] = ()) -> None:
        """One more client certificate from the cluster's CA: user ``common_name`` in ``groups``.

        For an identity other than the admin's (which is in system:masters, beyond RBAC and sharing
        the API server's `exempt` flow schema). Only in the process that generated the PKI: the CA
        key is never written to disk.
        """
        if self._ca is None:
            raise BenchError("the cluster PKI was not generated in this process, and its CA key is never saved")
        self._ca.issue(common_name, organizations=groups).write(cert_path, key_path)
