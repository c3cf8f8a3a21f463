"""The C2SP tlog-witness protocol: ``POST <prefix>/add-checkpoint``, both ends, without I/O.

A log submits each new checkpoint with a consistency proof from the size the witness cosigned
last; the witness checks the log's signature and the proof, remembers the new head and answers
with its cosignature lines (``ledger.cosignature``). The request body::

    old <size the witness cosigned last, 0 if never>
    <consistency proof hash, base64>      (zero to 63 lines)

    <the checkpoint, a signed note>

The answers a witness gives, and what the client (``privatevault.witness.client``) does with them:

==========  =====================================================  ===============================
status      when                                                   the client
==========  =====================================================  ===============================
200         cosigned: the body is the cosignature line(s)          verifies and keeps its lines
400         malformed request, old size above the checkpoint's     gives up (a bug on our side)
403         no signature by a key trusted for the origin, or a     gives up: the witness does not
            trusted key's signature fails                          trust this log's key
404         the origin is unknown to the witness                   gives up: add the log to it
409         ``old`` is not the size it cosigned last; the body     retries with a proof from that
            (``text/x.tlog.size``) is that size                    size
422         the proof does not verify, or equal sizes with         gives up loudly: the checkpoint
            different roots, or a non-empty proof from 0, or a     is not consistent with what the
            size-0 checkpoint with another root than the empty     witness saw (a rewrite, a fork)
            tree's
==========  =====================================================  ===============================

torchwood's litewitness (v0.6.1) answers 403 for an unknown origin where the spec now says 404;
the client treats both as "this witness will not cosign this log". :func:`add_checkpoint` is the
witness's decision as a pure function; ``privatevault.witness.server`` holds the lock, the state
and the key around it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from privatevault.errors import PrivateVaultError
from privatevault.ledger import merkle
from privatevault.ledger.checkpoint import Checkpoint, CheckpointError, NoteVerifier, parse_and_verify

#: The spec: "The client MUST NOT send more than 63 consistency proof lines."
MAX_PROOF_LINES = 63
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")


class WitnessRefusal(PrivateVaultError):
    """The witness does not cosign: ``status`` is the spec's HTTP status, ``known_size`` set for 409."""

    def __init__(self, status: int, message: str, *, known_size: int | None = None) -> None:
        super().__init__(message)
        self.status, self.known_size = status, known_size


@dataclass(frozen=True)
class AddCheckpoint:
    """An ``add-checkpoint`` request: the size the log believes the witness knows, a proof, a note."""

    old_size: int
    proof: tuple[bytes, ...]
    note: bytes

    def body(self) -> bytes:
        lines = [f"old {self.old_size}", *(base64.b64encode(node).decode() for node in self.proof)]
        return "".join(line + "\n" for line in lines).encode() + b"\n" + self.note


@dataclass(frozen=True)
class Known:
    """What a witness remembers of one log: the size and root hash it cosigned last."""

    size: int
    root: bytes


def parse_request(body: bytes) -> AddCheckpoint:
    """The request in ``body``; :class:`WitnessRefusal` 400 when it is malformed."""
    head, separator, note = body.partition(b"\n\n")
    if not separator:
        raise WitnessRefusal(400, "the request has no blank line between the proof and the checkpoint")
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError as exc:
        raise WitnessRefusal(400, "the old size and proof lines are not ASCII") from exc
    size = lines[0].removeprefix("old ")
    if size == lines[0] or not _SIZE.fullmatch(size):
        raise WitnessRefusal(400, "the first line is not `old <size>` with a decimal size without leading zeros")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise WitnessRefusal(400, f"the proof has {len(lines) - 1} lines, more than {MAX_PROOF_LINES}")
    proof = []
    for line in lines[1:]:
        try:
            node = base64.b64decode(line, validate=True)
        except ValueError as exc:
            raise WitnessRefusal(400, "a proof line is not base64") from exc
        if len(node) != merkle.HASH_SIZE or base64.b64encode(node).decode() != line:
            raise WitnessRefusal(400, "a proof line is not a canonical base64 SHA-256 hash")
        proof.append(node)
    return AddCheckpoint(int(size), tuple(proof), note)


def origin_of(note: bytes) -> str:
    """The note's first line, read before any signature is checked (to find the log's keys)."""
    return note.split(b"\n", 1)[0].decode("utf-8", errors="replace")


def add_checkpoint(
    request: AddCheckpoint, *, logs: Mapping[str, Sequence[NoteVerifier]], known: Known | None
) -> Checkpoint:
    """The witness's decision: the checkpoint to cosign, or :class:`WitnessRefusal` with the spec's status.

    ``logs`` maps each origin the witness serves to the log's keys (a signature by any of them
    will do, as Go's ``note.Open`` has it; a failing one by any of them is refused); ``known`` is
    what it cosigned last for this origin (None: never).
    """
    origin = origin_of(request.note)
    verifiers = logs.get(origin)
    if not verifiers:
        raise WitnessRefusal(404, f"unknown log {origin!r}")
    checkpoint = _verify_log_signature(request.note, verifiers, origin)
    if request.old_size > checkpoint.size:
        raise WitnessRefusal(400, f"old size {request.old_size} is above the checkpoint's size {checkpoint.size}")
    known_size = 0 if known is None else known.size
    if request.old_size != known_size:
        message = f"the witness cosigned size {known_size}, not {request.old_size}"
        raise WitnessRefusal(409, message, known_size=known_size)
    if checkpoint.size == 0 and checkpoint.root != merkle.EMPTY_ROOT:
        raise WitnessRefusal(422, "a checkpoint of size 0 must have the empty tree's root hash")
    if known is None or request.old_size == 0:
        if request.proof:
            raise WitnessRefusal(422, "a consistency proof from size 0 must be empty")
        return checkpoint
    if not merkle.verify_consistency(known.size, checkpoint.size, known.root, checkpoint.root, request.proof):
        raise WitnessRefusal(
            422,
            f"the checkpoint at size {checkpoint.size} is not consistent with the one at size {known.size}"
            " the witness cosigned: a rewritten or forked log",
        )
    return checkpoint


def _verify_log_signature(note: bytes, verifiers: Sequence[NoteVerifier], origin: str) -> Checkpoint:
    try:
        return parse_and_verify(note, verifiers, origin=origin, any_of=True)
    except CheckpointError as exc:
        raise WitnessRefusal(403, f"not validly signed by a key trusted for {origin!r}: {exc}") from exc


def parse_known_size(body: bytes) -> int:
    """The size in a 409 answer (``<size>\\n``); CheckpointError when it is not one."""
    text = body.decode("ascii", errors="replace").strip()
    if not _SIZE.fullmatch(text):
        raise CheckpointError(f"the witness's 409 answer {text[:40]!r} is not a tree size")
    return int(text)


@dataclass
class WitnessStatus:
    """What the log's client last saw of one witness, for the metrics and logs."""

    name: str
    url: str
    ok: bool = True
    reason: str = ""
    message: str = ""
    cosigned_size: int | None = None
    failures_total: int = 0
