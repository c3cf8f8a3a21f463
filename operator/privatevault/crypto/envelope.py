"""Envelope encryption of a workload's data key: wrapped by a KEM, and optionally by a KEK too.

A workload's data is encrypted under a random 256-bit data key; only the data key is wrapped,
and only the wrapped form is ever stored. Wrapping, for a recipient KEM public key (X-Wing by
default):

    kem_ciphertext, ss = KEM.Encapsulate(public_key)
    key || nonce = HKDF-SHA256(ikm  = ss,
                               salt = b"privatevault/envelope/v1",
                               info = frame(b"AES-256-GCM data-key wrap", kem name, kem_ciphertext),
                               length = 32 + 12)
    ciphertext = AES-256-GCM(key, nonce).encrypt(data_key, associated_data)
    associated_data = frame(b"privatevault/envelope/v1", format version, kem name,
                            tenant, workload, key version, b"kek" or b"no-kek")

``frame`` is :func:`privatevault.crypto.framing.frame` (4-byte length before every part), so the
associated data is canonical: no two contexts encode alike. Every wrap encapsulates afresh, so
each AES key encrypts exactly one message and a nonce derived with it, as in HPKE, is safe.

With a KEK (:class:`~privatevault.crypto.keywrapper.KeyWrapper`, the tenant's Vault Transit
key in a cluster) the AES-GCM ciphertext is wrapped once more, outside, with the same associated
data as its context. The layers nest, so opening needs both the KEM private key and the KEK; the
KEK service only ever sees ciphertext, never the data key.

Why layers and not a combined secret: the KEM secret and the KEK are never XORed or otherwise
mixed by hand. XOR is not a sound combiner: it fails when the two inputs are related (the same
secret twice cancels to zero) and it lets whoever controls one input choose the result. Hybrid
security comes from X-Wing's hash combiner inside the KEM and from nesting the KEK outside it.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .algorithms import kem as kem_named
from .errors import UnwrapError
from .framing import frame
from .keywrapper import KeyWrapper
from .lengths import expect_length

FORMAT_VERSION: Final = 1
DATA_KEY_SIZE: Final = 32
DEFAULT_KEM: Final = "X-Wing"

_DOMAIN: Final = b"privatevault/envelope/v1"
_HKDF_LABEL: Final = b"AES-256-GCM data-key wrap"
_AES_KEY_SIZE: Final = 32
_NONCE_SIZE: Final = 12
_FIELDS: Final = frozenset({"version", "kem", "kemCiphertext", "ciphertext", "kekWrapped"})


@dataclass(frozen=True, slots=True)
class KeyContext:
    """Whose data key this is: bound into every wrap as associated data, checked on every unwrap."""

    tenant: str
    workload: str
    key_version: int

    def __post_init__(self) -> None:
        for field, value in (("tenant", self.tenant), ("workload", self.workload)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"key context {field} must be a non-empty string")
        if isinstance(self.key_version, bool) or not isinstance(self.key_version, int) or self.key_version < 0:
            raise ValueError(f"key context key_version must be a non-negative integer, got {self.key_version!r}")


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key as stored: ciphertexts and algorithm names only, never the key or the context."""

    kem: str
    kem_ciphertext: bytes
    ciphertext: bytes
    kek_wrapped: bool
    version: int = FORMAT_VERSION

    def __repr__(self) -> str:
        return (
            f"WrappedKey(version={self.version}, kem={self.kem!r}, kem_ciphertext=<{len(self.kem_ciphertext)} bytes>,"
            f" ciphertext=<{len(self.ciphertext)} bytes>, kek_wrapped={self.kek_wrapped})"
        )

    def to_dict(self) -> dict[str, str | int | bool]:
        """A JSON-safe form: byte fields in standard, padded base64."""
        return {
            "version": self.version,
            "kem": self.kem,
            "kemCiphertext": base64.b64encode(self.kem_ciphertext).decode("ascii"),
            "ciphertext": base64.b64encode(self.ciphertext).decode("ascii"),
            "kekWrapped": self.kek_wrapped,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> WrappedKey:
        """Read :meth:`to_dict`'s form back; any missing, extra or mistyped field is a ``ValueError``."""
        if set(data) != _FIELDS:
            missing, extra = sorted(_FIELDS - set(data)), sorted(set(data) - _FIELDS)
            raise ValueError(
                f"a wrapped key needs exactly the fields {sorted(_FIELDS)}; missing {missing}, extra {extra}"
            )
        version, kem, kek_wrapped = data["version"], data["kem"], data["kekWrapped"]
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValueError("wrapped key field 'version' must be an integer")
        if not isinstance(kem, str):
            raise ValueError("wrapped key field 'kem' must be a string")
        if not isinstance(kek_wrapped, bool):
            raise ValueError("wrapped key field 'kekWrapped' must be a boolean")
        return cls(
            kem=kem,
            kem_ciphertext=_b64decode(data["kemCiphertext"], "kemCiphertext"),
            ciphertext=_b64decode(data["ciphertext"], "ciphertext"),
            kek_wrapped=kek_wrapped,
            version=version,
        )


def generate_data_key() -> bytes:
    """A fresh random 256-bit data key."""
    return secrets.token_bytes(DATA_KEY_SIZE)


def wrap_data_key(
    data_key: bytes,
    public_key: bytes,
    *,
    context: KeyContext,
    kem: str = DEFAULT_KEM,
    kek: KeyWrapper | None = None,
) -> WrappedKey:
    """Wrap ``data_key`` for the holder of ``public_key``'s private key, bound to ``context``."""
    expect_length(data_key, DATA_KEY_SIZE, "data key")
    scheme = kem_named(kem)
    kem_ciphertext, shared_secret = scheme.encapsulate(public_key)
    associated_data = _associated_data(scheme.name, context, kek_wrapped=kek is not None)
    aead, nonce = _key_schedule(shared_secret, scheme.name, kem_ciphertext)
    ciphertext = aead.encrypt(nonce, data_key, associated_data)
    if kek is not None:
        ciphertext = kek.wrap(ciphertext, context=associated_data)
    return WrappedKey(
        kem=scheme.name, kem_ciphertext=kem_ciphertext, ciphertext=ciphertext, kek_wrapped=kek is not None
    )


def unwrap_data_key(
    wrapped: WrappedKey,
    private_key: bytes,
    *,
    context: KeyContext,
    kek: KeyWrapper | None = None,
) -> bytes:
    """Recover the data key, or raise :class:`UnwrapError` if anything about it does not match."""
    if wrapped.version != FORMAT_VERSION:
        raise UnwrapError(
            f"wrapped key format {wrapped.version} is not readable here; this build reads {FORMAT_VERSION}"
        )
    try:
        scheme = kem_named(wrapped.kem)
    except ValueError as exc:
        raise UnwrapError(f"wrapped key names an unknown KEM {wrapped.kem!r}") from exc
    if wrapped.kek_wrapped and kek is None:
        raise UnwrapError("this data key is also wrapped by a KEK; pass the tenant's KEK wrapper to unwrap it")
    if not wrapped.kek_wrapped and kek is not None:
        raise UnwrapError("a KEK was passed but this data key was not wrapped by one; refusing the missing layer")
    if len(private_key) != scheme.private_key_size:
        raise UnwrapError(
            f"the private key is {len(private_key)} bytes; {scheme.name}, which wrapped this key,"
            f" uses {scheme.private_key_size}-byte private keys"
        )
    if len(wrapped.kem_ciphertext) != scheme.ciphertext_size:
        raise UnwrapError(
            f"the KEM ciphertext is {len(wrapped.kem_ciphertext)} bytes; {scheme.name} makes {scheme.ciphertext_size}"
        )
    try:
        shared_secret = scheme.decapsulate(private_key, wrapped.kem_ciphertext)
    except ValueError as exc:
        raise UnwrapError(f"the {scheme.name} ciphertext of this wrapped key is malformed") from exc
    associated_data = _associated_data(scheme.name, context, kek_wrapped=wrapped.kek_wrapped)
    ciphertext = wrapped.ciphertext
    if kek is not None:
        ciphertext = kek.unwrap(ciphertext, context=associated_data)
    aead, nonce = _key_schedule(shared_secret, scheme.name, wrapped.kem_ciphertext)
    try:
        data_key = aead.decrypt(nonce, ciphertext, associated_data)
    except InvalidTag as exc:
        raise UnwrapError(
            "the data key could not be unwrapped: the private key, tenant, workload or key version"
            " does not match the wrap, or the wrapped key was altered"
        ) from exc
    if len(data_key) != DATA_KEY_SIZE:
        raise UnwrapError(f"the unwrapped data key is {len(data_key)} bytes, not {DATA_KEY_SIZE}")
    return data_key


def rewrap_kek_layer(wrapped: WrappedKey, *, context: KeyContext, kek: KeyWrapper) -> WrappedKey:
    """The same wrapped key with its KEK layer opened and closed again: under the KEK's newest version.

    Used after the tenant's KEK rotates, before older KEK versions stop decrypting. The data key
    is never exposed: the layer inside is the AES-GCM ciphertext of the KEM layer.
    """
    if not wrapped.kek_wrapped:
        return wrapped
    associated_data = _associated_data(wrapped.kem, context, kek_wrapped=True)
    inner = kek.unwrap(wrapped.ciphertext, context=associated_data)
    return replace(wrapped, ciphertext=kek.wrap(inner, context=associated_data))


def _associated_data(kem: str, context: KeyContext, *, kek_wrapped: bool) -> bytes:
    return frame(
        [
            _DOMAIN,
            str(FORMAT_VERSION).encode(),
            kem.encode(),
            context.tenant.encode(),
            context.workload.encode(),
            str(context.key_version).encode(),
            b"kek" if kek_wrapped else b"no-kek",
        ]
    )


def _key_schedule(shared_secret: bytes, kem: str, kem_ciphertext: bytes) -> tuple[AESGCM, bytes]:
    """The single-use AES-256-GCM key and nonce for one wrap, from the KEM shared secret."""
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=_AES_KEY_SIZE + _NONCE_SIZE,
        salt=_DOMAIN,
        info=frame([_HKDF_LABEL, kem.encode(), kem_ciphertext]),
    ).derive(shared_secret)
    return AESGCM(okm[:_AES_KEY_SIZE]), okm[_AES_KEY_SIZE:]


def _b64decode(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"wrapped key field {field!r} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"wrapped key field {field!r} is not valid base64") from exc
