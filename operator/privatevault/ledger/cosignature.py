"""Witness cosignatures on checkpoints: C2SP tlog-cosignature, ``cosignature/v1`` (Ed25519).

A cosignature is a note signature line a *witness* adds to a log's checkpoint, stating that, as
of a time, the checkpoint is the largest tree it has seen for that origin and consistent with
every one it saw before (``ledger.witness`` checks that). A checkpoint cosigned by witnesses the
verifier trusts cannot come from a rewritten history, unless those witnesses were compromised
too (docs/ledger-threat-model.md)::

    — <witness name> base64(key ID ‖ timestamp ‖ Ed25519 signature)

* the key ID is ``SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4]``;
* the timestamp is a big-endian uint64, POSIX seconds, at most 2^63 - 1;
* the signature covers ``cosignature/v1\\ntime <timestamp>\\n`` followed by the checkpoint's
  note text (every line of the body, with its final newline, no signature lines).

A verifier key is ``<name>+<key ID hex>+base64(0x04 ‖ public key)``, as for any signed note.
:class:`CosignatureVerifier` is a ``ledger.checkpoint.NoteVerifier``, so
``checkpoint.parse_and_verify`` checks cosignatures like any other signature; :func:`cosigned_by`
counts them against a threshold. Go's ``note`` package does not know the type byte 0x04; the
tests check these lines with a Go verifier of that type (``tools/noteverify cosig``) and with
torchwood's witness.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from privatevault.ledger.checkpoint import (
    CheckpointError,
    NoteVerifier,
    VerifierBacked,
    key_id,
    parse_and_verify,
)

COSIGNATURE_V1_TYPE = b"\x04"
_HEADER = b"cosignature/v1\n"
_MAX_TIMESTAMP = 2**63 - 1
_SIGNATURE_SIZE = 8 + 64
PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"


def signed_message(timestamp: int, body: bytes) -> bytes:
    """What a ``cosignature/v1`` signature covers: header, time line, the checkpoint's note text."""
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise CheckpointError(f"cosignature timestamp {timestamp} is out of range")
    return _HEADER + f"time {timestamp}\n".encode() + body


@dataclass(frozen=True)
class CosignatureVerifier:
    """A witness's public key: a ``NoteVerifier`` of ``cosignature/v1`` signatures."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        if len(self.public_key) != 32:
            raise CheckpointError(f"witness {self.name!r}: an Ed25519 key has 32 bytes, not {len(self.public_key)}")
        object.__setattr__(self, "key_id", key_id(self.name, COSIGNATURE_V1_TYPE, self.public_key))
        _check_name(self.name)

    @property
    def verifier_key(self) -> str:
        encoded = base64.b64encode(COSIGNATURE_V1_TYPE + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != _SIGNATURE_SIZE:
            return False
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > _MAX_TIMESTAMP:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                signature[8:], signed_message(timestamp, message)
            )
        except (InvalidSignature, ValueError):
            return False
        return True


def _check_name(name: str) -> None:
    """Key names as signed notes define them: non-empty, no Unicode space, no plus, no control character."""
    if not name or any(char.isspace() or char == "+" or char < " " for char in name):
        raise CheckpointError(f"witness name {name!r} is empty or holds a space, plus or control character")


def parse_cosignature_key(vkey: str) -> CosignatureVerifier:
    """A witness verifier from its vkey ``name+hash+base64(0x04 ‖ key)``; the hash must match."""
    name, _, rest = vkey.strip().partition("+")
    hex_id, _, encoded = rest.partition("+")
    try:
        key = base64.b64decode(encoded, validate=True)
        expected = int(hex_id, 16) if len(hex_id) == 8 else None
    except ValueError as exc:
        raise CheckpointError(f"witness key {vkey!r} is not <name>+<8 hex digits>+<base64 key>") from exc
    if expected is None or base64.b64encode(key).decode() != encoded:
        raise CheckpointError(f"witness key {vkey!r} is not <name>+<8 hex digits>+<base64 key>")
    if key[:1] != COSIGNATURE_V1_TYPE:
        raise CheckpointError(
            f"witness key {name!r} has signature type 0x{key[:1].hex()}, not 0x04 (cosignature/v1, Ed25519)"
        )
    verifier = CosignatureVerifier(name, key[1:])
    if verifier.key_id != expected:
        raise CheckpointError(f"witness key {name!r}: key ID {hex_id} does not match the key")
    return verifier


class CosignatureSigner(VerifierBacked):
    """A witness's private key: signs ``cosignature/v1`` statements at the clock's time."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey, *, clock: Callable[[], float] | None = None) -> None:
        self.verifier: CosignatureVerifier = CosignatureVerifier(name, private_key.public_key().public_bytes_raw())
        self._private_key = private_key
        self._clock = clock

    def sign(self, message: bytes) -> bytes:
        """``timestamp ‖ signature`` over ``message``, the checkpoint's note text (never 0: the spec forbids it)."""
        timestamp = max(1, int(self._clock() if self._clock is not None else time.time()))
        return timestamp.to_bytes(8, "big") + self._private_key.sign(signed_message(timestamp, message))

    def line(self, body: bytes) -> bytes:
        """The cosignature line over the checkpoint text ``body``."""
        blob = self.key_id.to_bytes(4, "big") + self.sign(body)
        return f"\u2014 {self.name} {base64.b64encode(blob).decode()}\n".encode()

    # -- the key file ---------------------------------------------------------------------------

    def private_key_string(self) -> str:
        """``PRIVATE+KEY+<name>+<key ID>+base64(0x04 ‖ seed)``, the signed-note signer key format."""
        seed = base64.b64encode(COSIGNATURE_V1_TYPE + self._private_key.private_bytes_raw()).decode()
        return f"{PRIVATE_KEY_PREFIX}{self.name}+{self.key_id:08x}+{seed}"

    @classmethod
    def from_private_key_string(cls, text: str, *, clock: Callable[[], float] | None = None) -> CosignatureSigner:
        if not text.startswith(PRIVATE_KEY_PREFIX):
            raise CheckpointError("not a witness key: it does not start with PRIVATE+KEY+")
        name, hex_id, encoded = [*text.strip()[len(PRIVATE_KEY_PREFIX) :].split("+", 2), "", ""][:3]
        try:
            key = base64.b64decode(encoded, validate=True)
        except ValueError as exc:
            raise CheckpointError("the witness key's seed is not base64") from exc
        if key[:1] != COSIGNATURE_V1_TYPE or len(key) != 33:
            raise CheckpointError("the witness key is not a cosignature/v1 Ed25519 seed")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(key[1:]), clock=clock)
        if f"{signer.key_id:08x}" != hex_id.lower():
            raise CheckpointError("the witness key's ID does not match its seed: the file is damaged")
        return signer


def cosigned_by(note: bytes, witnesses: Sequence[CosignatureVerifier]) -> tuple[list[str], list[str]]:
    """Which witnesses cosigned ``note``, and which did not (or whose cosignature fails), by name.

    A witness's line that fails to verify counts as missing and is named with the reason.
    """
    signed: list[str] = []
    missing: list[str] = []
    for witness in witnesses:
        try:
            parse_and_verify(note, [witness])
        except CheckpointError as exc:
            reason = "no cosignature" if "is not signed by" in str(exc) else str(exc)
            missing.append(f"{witness.name} ({witness.key_id:08x}): {reason}")
        else:
            signed.append(witness.name)
    return signed, missing


def new_signer(name: str) -> CosignatureSigner:
    """A fresh witness key named ``name``."""
    return CosignatureSigner(name, Ed25519PrivateKey.from_private_bytes(os.urandom(32)))


def cosignature_lines(response: bytes, body: bytes, witness: NoteVerifier) -> bytes:
    """The lines of ``response`` by ``witness`` that verify over ``body``; CheckpointError if none.

    Lines by other keys are dropped (the spec: a client ignores unknown keys); a line by the
    witness's key that does not verify rejects the answer.
    """
    try:
        text = response.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError("the witness answered with bytes that are not UTF-8") from exc
    if not text.endswith("\n"):
        raise CheckpointError("the witness's answer does not end with a newline")
    parse_and_verify(body + b"\n" + response, [witness])
    prefix = f"\u2014 {witness.name} "
    mine = [
        line + "\n"
        for line in text[:-1].split("\n")
        if line.startswith(prefix) and base64.b64decode(line[len(prefix) :])[:4] == witness.key_id.to_bytes(4, "big")
    ]
    return "".join(mine).encode()
