"""The signed manifest: an in-toto Statement v1 naming every file of a bundle by its SHA-256.

The statement's subjects are every file of the bundle but the envelope itself, sorted by name;
its predicate (type :data:`PREDICATE_TYPE`) is the export document (``export.json``: tenants,
window, the checkpoints, counts). It is written as RFC 8785 JSON and wrapped in a DSSE envelope
(``quorum.dsse``: payload type ``application/vnd.in-toto+json``) signed with Ed25519 and ML-DSA-65,
so securesystemslib, sigstore-python or any DSSE verifier checks the Ed25519 signature with the
public key alone. Keyids are ``ed25519:<sha256 hex of the public key>`` and
``ml-dsa-65:<…>``.

The public halves are published as signed-note verifier keys (``<name>+<id>+<base64>``, the
form of the ledger's checkpoint keys), so an auditor is handed one kind of key string.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from privatevault.ledger.checkpoint import ED25519, MLDSA65, KeyVerifier
from privatevault.ledger.event import canonical
from privatevault.quorum import dsse

STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE: Final = "https://privatevault.io/evidence/v1"
#: The envelope's own file name in the bundle: the one file that is not a subject.
ENVELOPE: Final = "manifest.dsse.json"


class ManifestError(ValueError):
    """The manifest is not an evidence Statement, or not signed by the keys given."""


def statement(digests: Mapping[str, str], predicate: Mapping[str, Any]) -> bytes:
    """The Statement's bytes (RFC 8785) for ``{file name: sha256 hex}`` and the export document."""
    return canonical(
        {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": name, "digest": {"sha256": digests[name]}} for name in sorted(digests)],
            "predicateType": PREDICATE_TYPE,
            "predicate": dict(predicate),
        }
    )


def envelope_bytes(envelope: dsse.Envelope) -> bytes:
    return json.dumps(envelope.to_json(), sort_keys=True, separators=(",", ":")).encode() + b"\n"


@dataclass(frozen=True)
class Parsed:
    subjects: dict[str, str]
    predicate: dict[str, Any]
    signed_by: tuple[str, ...]


def algorithm_of(key: KeyVerifier) -> dsse.Algorithm:
    if key.algorithm == ED25519:
        return "Ed25519"
    if key.algorithm == MLDSA65:
        return "ML-DSA-65"
    raise ManifestError(f"key {key.name} is neither Ed25519 nor ML-DSA-65")


def dsse_keyid(key: KeyVerifier) -> str:
    return dsse.keyid(algorithm_of(key), key.public_key)


def open_manifest(data: bytes, keys: Sequence[KeyVerifier]) -> Parsed:
    """The Statement in the envelope ``data``, once every one of ``keys`` is found to have signed it.

    ``keys``: the evidence keys the auditor trusts. A signature by a keyid none of them has is
    ignored; if no trusted key signed, the unknown keyids are named.
    """
    try:
        envelope = dsse.parse(json.loads(data))
    except (ValueError, dsse.EnvelopeError) as exc:
        raise ManifestError(f"{ENVELOPE} is not a DSSE envelope: {exc}") from exc
    if envelope.payload_type != dsse.PAYLOAD_TYPE:
        raise ManifestError(f"{ENVELOPE}: payloadType is {envelope.payload_type!r}, not {dsse.PAYLOAD_TYPE}")
    if not keys:
        raise ManifestError("no evidence key given: the manifest can only be trusted against known keys")
    present = {signature.keyid for signature in envelope.signatures}
    trusted = [key for key in keys if dsse_keyid(key) in present]
    if not trusted:
        raise ManifestError(
            f"{ENVELOPE} is signed only by unknown keys ({', '.join(sorted(present))}); none is a given --verifier-key"
        )
    signed = []
    for key in keys:
        algorithm = algorithm_of(key)
        if dsse_keyid(key) not in present:
            raise ManifestError(f"{ENVELOPE} carries no signature by evidence key {key.name} ({dsse_keyid(key)})")
        if algorithm not in dsse.verify(envelope, {algorithm: key.public_key}):
            raise ManifestError(f"{ENVELOPE}: the {algorithm} signature by {key.name} does not verify")
        signed.append(dsse_keyid(key))
    try:
        document = json.loads(envelope.payload)
    except ValueError as exc:
        raise ManifestError(f"{ENVELOPE}: the signed payload is not JSON") from exc
    if not isinstance(document, dict) or document.get("_type") != STATEMENT_TYPE:
        raise ManifestError(f"{ENVELOPE}: the payload is not an in-toto Statement v1")
    if document.get("predicateType") != PREDICATE_TYPE:
        raise ManifestError(f"{ENVELOPE}: predicateType is not {PREDICATE_TYPE}")
    subjects: dict[str, str] = {}
    for subject in document.get("subject") or []:
        name, digest = subject.get("name"), (subject.get("digest") or {}).get("sha256")
        if not isinstance(name, str) or not isinstance(digest, str) or name in subjects:
            raise ManifestError(f"{ENVELOPE}: subject {name!r} is malformed or named twice")
        subjects[name] = digest
    predicate = document.get("predicate")
    if not isinstance(predicate, dict):
        raise ManifestError(f"{ENVELOPE}: the predicate is not an object")
    return Parsed(subjects, predicate, tuple(signed))
