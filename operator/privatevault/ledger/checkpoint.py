"""Signed checkpoints: the Merkle tree head in the C2SP tlog-checkpoint format, as a signed note.

A checkpoint is what the ledger publishes outside the database (a ConfigMap, evidence bundles),
so that someone who rewrites the table and recomputes every hash is still caught: they cannot
produce a new signed head consistent with the old one. The format is the ecosystem's
(c2sp.org/tlog-checkpoint in a c2sp.org/signed-note), so auditors can check it with standard
tools such as Go's ``golang.org/x/mod/sumdb/note``::

    <origin>
    <tree size, decimal, no leading zeros>
    <root hash, standard base64>
    [extension lines]

    — <key name> <base64(4-byte key ID ‖ signature)>

Every signature covers the note text (the body above, with its final newline). A key ID is
``SHA-256(key name ‖ 0x0A ‖ signature type ‖ public key)[:4]``, and a verifier key string is
``<name>+<key ID, 8 hex digits>+<base64(signature type ‖ public key)>``.

Two signature types:

* Ed25519, type byte ``0x01``, exactly as the signed-note spec defines it; Go's ``note`` package
  verifies these.
* ML-DSA-65 (FIPS 204, pure ML-DSA with an empty context string) over the note text. The spec
  assigns no byte to it: its type ``0xff`` is "reserved for signature types without an
  identifier byte assigned by this specification", to be followed by a longer identifier, so
  the type here is ``0xff ‖ "privatevault.io/ml-dsa-65" ‖ 0x0A`` (:data:`MLDSA65_TYPE`), in the
  key ID and in the verifier key alike. Verifiers that do not know this key (Go's ``note``
  package among them) must ignore its signature line, as the spec requires of unknown keys, so
  the post-quantum signature costs classical verifiers nothing. (C2SP's own post-quantum
  signature, the ML-DSA-44 tlog-cosignature, type ``0x06``, signs a binary statement rather than
  the note text; it is a different thing.)

This module only formats, signs and verifies; signing keys come in as :class:`NoteSigner`
objects (a KMS will supply them) and are never read here. :func:`parse_and_verify` is strict:
every verifier handed to it must have signed, every signature by a known key must verify, and
the text is parsed only after that. Any failure is a :class:`CheckpointError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey, MLDSA65PublicKey

from privatevault.errors import PrivateVaultError

ED25519_TYPE = b"\x01"
MLDSA65_TYPE = b"\xff" + b"privatevault.io/ml-dsa-65\n"
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
#: Verifiers must accept at least 16 signatures; Go's note package stops at 100.
MAX_SIGNATURES = 100
HASH_SIZE = 32
_MAX_SIZE = 2**63 - 1  # what int64 readers (Go's tlog) can hold

_SIZE = re.compile(r"0|[1-9][0-9]*")
_KEY_ID = re.compile(r"[0-9a-fA-F]{8}")


class CheckpointError(PrivateVaultError):
    """A checkpoint or signed note is malformed, or not signed as required: do not trust it."""


@dataclass(frozen=True)
class Checkpoint:
    """A verified tree head: the log's origin, its size and RFC 6962 root hash at that size."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> bytes:
        """The note text, as signed."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines).encode()


class PublicKey(Protocol):
    """A public key as notes name it: what a signer exposes of its verifier."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    @property
    def verifier_key(self) -> str: ...


class NoteSigner(PublicKey, Protocol):
    """A key that signs note text; the KMS adapters implement this."""

    def sign(self, message: bytes) -> bytes: ...


class NoteVerifier(Protocol):
    """A trusted public key, identified in signature lines by its name and key ID."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, message: bytes, signature: bytes) -> bool: ...


# -- keys -------------------------------------------------------------------------------------


def _ed25519_check(public_key: bytes, message: bytes, signature: bytes) -> None:
    Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)


def _mldsa65_check(public_key: bytes, message: bytes, signature: bytes) -> None:
    MLDSA65PublicKey.from_public_bytes(public_key).verify(signature, message)


@dataclass(frozen=True)
class _Algorithm:
    label: str
    signature_type: bytes
    public_key_size: int
    check: Callable[[bytes, bytes, bytes], None]  # raises InvalidSignature


ED25519 = _Algorithm("Ed25519", ED25519_TYPE, 32, _ed25519_check)
MLDSA65 = _Algorithm("ML-DSA-65", MLDSA65_TYPE, 1952, _mldsa65_check)
_ALGORITHMS = (ED25519, MLDSA65)


def _valid_name(name: str) -> bool:
    """Key names: non-empty, no Unicode space, no plus, no control character."""
    return bool(name) and not any(char.isspace() or char == "+" or char < " " for char in name)


def key_id(name: str, key_type: bytes, public_key: bytes) -> int:
    """``SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]`` as a big-endian uint32."""
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + key_type + public_key).digest()[:4], "big")


@dataclass(frozen=True)
class KeyVerifier:
    """A :class:`NoteVerifier` for an Ed25519 or ML-DSA-65 public key."""

    name: str
    algorithm: _Algorithm
    public_key: bytes
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        if not _valid_name(self.name):
            raise CheckpointError(f"key name {self.name!r} is empty or holds a space, plus or control character")
        if len(self.public_key) != self.algorithm.public_key_size:
            raise CheckpointError(
                f"{self.algorithm.label} public key has {len(self.public_key)} bytes,"
                f" not {self.algorithm.public_key_size}"
            )
        object.__setattr__(self, "key_id", key_id(self.name, self.algorithm.signature_type, self.public_key))

    @property
    def verifier_key(self) -> str:
        """``<name>+<key ID hex>+<base64(type ‖ public key)>``, as ``note.NewVerifier`` reads it."""
        encoded = base64.b64encode(self.algorithm.signature_type + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self.algorithm.check(self.public_key, message, signature)
        except (InvalidSignature, ValueError):
            return False
        return True


def ed25519_verifier_key(name: str, public_key: bytes) -> str:
    """The verifier key string of a raw 32-byte Ed25519 public key (Go's ``NewEd25519VerifierKey``)."""
    return KeyVerifier(name, ED25519, public_key).verifier_key


def mldsa65_verifier_key(name: str, public_key: bytes) -> str:
    """The verifier key string of a raw 1952-byte ML-DSA-65 public key (type :data:`MLDSA65_TYPE`)."""
    return KeyVerifier(name, MLDSA65, public_key).verifier_key


def parse_verifier_key(vkey: str) -> KeyVerifier:
    """A verifier from its key string; the key ID in the string must match the key."""
    name, _, rest = vkey.partition("+")
    hex_id, _, encoded = rest.partition("+")
    if not _KEY_ID.fullmatch(hex_id):
        raise CheckpointError(f"verifier key {vkey!r} is not <name>+<8 hex digits>+<base64 key>")
    key = _strict_b64(encoded, what="verifier key")
    for algorithm in _ALGORITHMS:
        if key.startswith(algorithm.signature_type):
            verifier = KeyVerifier(name, algorithm, key[len(algorithm.signature_type) :])
            if verifier.key_id != int(hex_id, 16):
                raise CheckpointError(f"verifier key {name!r}: key ID {hex_id} does not match the key")
            return verifier
    raise CheckpointError(f"verifier key {name!r}: unknown signature type 0x{key[:1].hex()}")


class VerifierBacked:
    """A signer's name, key ID and verifier key, read from its verifier (``self.verifier``)."""

    verifier: PublicKey

    @property
    def name(self) -> str:
        return self.verifier.name

    @property
    def key_id(self) -> int:
        return self.verifier.key_id

    @property
    def verifier_key(self) -> str:
        return self.verifier.verifier_key


class LocalSigner(VerifierBacked):
    """A :class:`NoteSigner` over a private key held in this process (tests, the local KMS)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey | MLDSA65PrivateKey) -> None:
        algorithm = ED25519 if isinstance(private_key, Ed25519PrivateKey) else MLDSA65
        self.verifier: KeyVerifier = KeyVerifier(name, algorithm, private_key.public_key().public_bytes_raw())
        self._private_key = private_key

    def sign(self, message: bytes) -> bytes:
        return self._private_key.sign(message)


# -- signing ----------------------------------------------------------------------------------


def _check_line(value: str, what: str) -> None:
    if not value or any(char < " " for char in value):
        raise CheckpointError(f"{what} {value!r} is empty or holds a newline or control character")


def sign_checkpoint(
    origin: str, size: int, root: bytes, signers: Sequence[NoteSigner], *, extensions: Sequence[str] = ()
) -> bytes:
    """The signed note of the tree head ``(origin, size, root)``, one signature line per signer."""
    _check_line(origin, "origin")
    for line in extensions:
        _check_line(line, "extension line")
    if not 0 <= size <= _MAX_SIZE:
        raise CheckpointError(f"tree size {size} is out of range")
    if len(root) != HASH_SIZE:
        raise CheckpointError(f"root hash has {len(root)} bytes, not {HASH_SIZE}")
    if not signers:
        raise CheckpointError("a checkpoint needs at least one signer")
    body = Checkpoint(origin, size, root, tuple(extensions)).body()
    return body + b"\n" + b"".join(_signature_line(signer, body) for signer in signers)


def _signature_line(signer: NoteSigner, body: bytes) -> bytes:
    if not _valid_name(signer.name):
        raise CheckpointError(f"key name {signer.name!r} is empty or holds a space, plus or control character")
    blob = signer.key_id.to_bytes(4, "big") + signer.sign(body)
    return f"{SIGNATURE_PREFIX}{signer.name} {base64.b64encode(blob).decode()}\n".encode()


# -- verifying --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Signature:
    name: str
    key_id: int
    signature: bytes


def _strict_b64(text: str, *, what: str) -> bytes:
    """Standard base64, canonical only: one encoding per value, so lines cannot be re-spelt."""
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointError(f"{what} is not valid standard base64") from exc
    if not decoded:
        raise CheckpointError(f"{what} is empty")
    if base64.b64encode(decoded).decode() != text:
        raise CheckpointError(f"{what} is not canonical standard base64")
    return decoded


def _split_note(note: bytes) -> tuple[bytes, list[_Signature]]:
    """The note text and its signature lines, per the signed-note format."""
    try:
        decoded = note.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError("the note is not valid UTF-8") from exc
    if any(char < " " and char != "\n" for char in decoded):
        raise CheckpointError("the note holds a control character other than newline")
    split = note.rfind(b"\n\n")
    if split < 0:
        raise CheckpointError("the note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :].decode()
    if not block.endswith("\n"):
        raise CheckpointError("the note's signature block is empty or does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"the note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    return text, [_parse_signature_line(line) for line in lines]


def _parse_signature_line(line: str) -> _Signature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise CheckpointError(f"signature line {line[:40]!r} does not start with an em dash and a space")
    name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not _valid_name(name):
        raise CheckpointError(f"signature line names an invalid key {name!r}")
    blob = _strict_b64(encoded, what=f"the signature by {name}")
    if len(blob) < 5:
        raise CheckpointError(f"the signature by {name} is too short to hold a key ID and a signature")
    return _Signature(name, int.from_bytes(blob[:4], "big"), blob[4:])


def _check_signatures(
    text: bytes, signatures: Sequence[_Signature], verifiers: Sequence[NoteVerifier], *, any_of: bool = False
) -> None:
    """Every verifier signed (``any_of``: at least one), and every signature by a known key
    verifies; others are ignored."""
    if not verifiers:
        raise CheckpointError("no verifier keys given: a note can only be trusted against known keys")
    known = {(verifier.name, verifier.key_id): verifier for verifier in verifiers}
    signed: set[tuple[str, int]] = set()
    for sig in signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue  # an unknown key: the spec says ignore it (rotation, witnesses, other types)
        if not verifier.verify(text, sig.signature):
            raise CheckpointError(f"the signature by {sig.name} (key {sig.key_id:08x}) does not verify")
        signed.add((sig.name, sig.key_id))
    missing = [f"{name} ({ident:08x})" for name, ident in known if (name, ident) not in signed]
    if missing and not (any_of and signed):
        present = ", ".join(f"{sig.name} ({sig.key_id:08x})" for sig in signatures)
        raise CheckpointError(f"the note is not signed by {', '.join(missing)}; it carries signatures by {present}")


def _parse_body(text: bytes) -> Checkpoint:
    lines = text.decode()[:-1].split("\n")
    if len(lines) < 3 or not all(lines):
        raise CheckpointError("a checkpoint is at least three non-empty lines: origin, tree size, root hash")
    origin, size, root, *extensions = lines
    if not _SIZE.fullmatch(size) or int(size) > _MAX_SIZE:
        raise CheckpointError(f"tree size {size[:30]!r} is not a decimal number without leading zeros")
    digest = _strict_b64(root, what="the root hash")
    if len(digest) != HASH_SIZE:
        raise CheckpointError(f"the root hash has {len(digest)} bytes, not {HASH_SIZE}")
    return Checkpoint(origin, int(size), digest, tuple(extensions))


def parse_and_verify(
    note: bytes, verifiers: Sequence[NoteVerifier], *, origin: str | None = None, any_of: bool = False
) -> Checkpoint:
    """The checkpoint in ``note``, once every one of ``verifiers`` is found to have signed it
    (``any_of``: one of them, as Go's ``note.Open`` and witnesses have it).

    Signatures by other keys are ignored; a failing signature by a known key rejects the note.
    With ``origin``, the checkpoint must come from that log.
    """
    text, signatures = _split_note(note)
    _check_signatures(text, signatures, verifiers, any_of=any_of)
    checkpoint = _parse_body(text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"the checkpoint is from {checkpoint.origin!r}, not {origin!r}")
    return checkpoint
