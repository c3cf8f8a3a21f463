"""DSSE envelopes (secure-systems-lab/dsse, protocol v1): the pre-authentication encoding, keyids,
signing and verification with Ed25519 and ML-DSA-65.

What is signed is never the payload itself but ``PAE(payloadType, payload)``::

    "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

with lengths as ASCII decimal byte counts, so a signature cannot be replayed as another type.
Payload and signatures are read in standard or URL-safe base64, as the protocol asks of verifiers.
A keyid names the key it was made with: ``ed25519:<sha256 hex of the raw public key>`` or
``ml-dsa-65:<sha256 hex>``; the verifier still checks the signature against the key the policy
holds, never against a key the envelope names. An Ed25519 key of small order (the all-zero
placeholder is one) verifies forged signatures over many messages: no signature counts under it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from cryptography.hazmat.primitives.asymmetric import x25519

from privatevault.crypto import ED25519, ML_DSA_65

PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"

Algorithm = Literal["Ed25519", "ML-DSA-65"]
ALGORITHMS: Final[tuple[Algorithm, ...]] = ("Ed25519", "ML-DSA-65")
_PREFIX: Final[dict[Algorithm, str]] = {"Ed25519": "ed25519", "ML-DSA-65": "ml-dsa-65"}
_P: Final = 2**255 - 19
#: Any X25519 private key: with a small-order peer the shared secret is all zeros, which OpenSSL refuses.
_PROBE: Final = x25519.X25519PrivateKey.from_private_bytes(bytes([9]) * 32)


class EnvelopeError(ValueError):
    """An envelope that is not well-formed DSSE (bad base64, missing fields, unknown keyid form)."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """The DSSE v1 pre-authentication encoding of ``payload``."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def keyid(algorithm: Algorithm, public_key: bytes) -> str:
    return f"{_PREFIX[algorithm]}:{hashlib.sha256(public_key).hexdigest()}"


@functools.lru_cache(maxsize=1024)
def small_order(ed25519_public_key: bytes) -> bool:
    """Whether an Ed25519 public key is a point of small order, under which forgeries verify.

    Edwards ``y`` maps to Montgomery ``u = (1 + y) / (1 - y)``, which keeps the order of a point;
    an X25519 exchange with a small-order ``u`` gives the all-zero secret that OpenSSL refuses.
    The neutral point (``y = 1``) has no ``u`` and is small order too. Cached: a policy's few
    keys are checked on every verification.
    """
    y = int.from_bytes(ed25519_public_key, "little") & ((1 << 255) - 1)
    if (y - 1) % _P == 0:
        return True
    u = (1 + y) * pow(1 - y, -1, _P) % _P
    try:
        _PROBE.exchange(x25519.X25519PublicKey.from_public_bytes(u.to_bytes(32, "little")))
    except ValueError:
        return True
    return False


def algorithm_of(key_id: str) -> Algorithm | None:
    prefix = key_id.split(":", 1)[0]
    return next((a for a, p in _PREFIX.items() if p == prefix), None)


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def to_json(self) -> dict[str, Any]:
        """The envelope as the DSSE specification writes it."""
        return {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode(),
            "signatures": [{"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()} for s in self.signatures],
        }

    def digest(self) -> str:
        """``sha256:<hex>`` of the envelope's JSON (sorted keys, no spaces): names it in the ledger."""
        data = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(data).hexdigest()


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise EnvelopeError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError(f"{what} is not valid base64") from exc


def parse(document: Mapping[str, Any]) -> Envelope:
    """An envelope from its JSON form; raises ``EnvelopeError`` naming what is wrong."""
    payload_type = document.get("payloadType")
    if not isinstance(payload_type, str):
        raise EnvelopeError("the envelope has no payloadType")
    raw = document.get("signatures")
    if not isinstance(raw, list) or not raw:
        raise EnvelopeError("the envelope carries no signature")
    signatures = []
    for n, entry in enumerate(raw):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("keyid"), str) or not entry["keyid"]:
            raise EnvelopeError(f"signature {n + 1} has no keyid")
        signatures.append(Signature(keyid=entry["keyid"], sig=_b64(entry.get("sig"), f"signature {n + 1}")))
    return Envelope(payload_type, _b64(document.get("payload"), "the payload"), tuple(signatures))


def sign(payload: bytes, keys: Mapping[Algorithm, tuple[bytes, bytes]], payload_type: str = PAYLOAD_TYPE) -> Envelope:
    """Sign ``payload`` with each ``algorithm -> (private key, public key)`` given."""
    message = pae(payload_type, payload)
    signatures = []
    for algorithm in ALGORITHMS:
        if algorithm not in keys:
            continue
        private, public = keys[algorithm]
        sig = ED25519.sign(private, message) if algorithm == "Ed25519" else ML_DSA_65.sign(private, message)
        signatures.append(Signature(keyid(algorithm, public), sig))
    if not signatures:
        raise ValueError("sign needs at least one key")
    return Envelope(payload_type, payload, tuple(signatures))


def verify(envelope: Envelope, public_keys: Mapping[Algorithm, bytes]) -> frozenset[Algorithm]:
    """The algorithms whose signature in ``envelope`` verifies under the given public keys.

    A signature counts only when its keyid is exactly that of the policy's key for its
    algorithm and it verifies over the PAE; anything else (another key, a bad signature, an
    unknown keyid form) is simply not counted.
    """
    message = pae(envelope.payload_type, envelope.payload)
    verified: set[Algorithm] = set()
    for signature in envelope.signatures:
        algorithm = algorithm_of(signature.keyid)
        if algorithm is None or algorithm not in public_keys:
            continue
        public = public_keys[algorithm]
        if signature.keyid != keyid(algorithm, public) or (algorithm == "Ed25519" and small_order(public)):
            continue
        scheme = ED25519 if algorithm == "Ed25519" else ML_DSA_65
        if scheme.verify(public, message, signature.sig):
            verified.add(algorithm)
    return frozenset(verified)
