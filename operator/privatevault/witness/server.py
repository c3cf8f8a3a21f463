"""``pvctl witness run``: a small C2SP tlog-witness over HTTP (the standard library's server).

``POST /add-checkpoint`` runs ``ledger.witness.add_checkpoint`` against the :class:`State`, and
answers with a ``cosignature/v1`` line; the check, the state update and the signature happen
under one lock, and the state is on disk before the answer leaves. ``GET /<sha256(origin) hex>/checkpoint``
serves the last checkpoint cosigned for a log (the spec's monitoring endpoint), ``GET /`` the
witness's verifier key. Each request is logged with its origin, sizes and status; never a key.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from privatevault.ledger.checkpoint import NoteVerifier
from privatevault.ledger.cosignature import CosignatureSigner
from privatevault.ledger.witness import (
    SIZE_CONTENT_TYPE,
    Known,
    WitnessRefusal,
    add_checkpoint,
    origin_of,
    parse_request,
)
from privatevault.witness.state import State

log = logging.getLogger("privatevault.witness")

MAX_BODY = 64 * 1024  # a checkpoint with an ML-DSA-65 signature and 63 proof lines is under 10 KiB


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


class WitnessService:
    """The witness without HTTP: what :class:`Handler` calls, and what tests call directly."""

    def __init__(self, signer: CosignatureSigner, logs: Mapping[str, Sequence[NoteVerifier]], state: State) -> None:
        self.signer, self.logs, self.state = signer, logs, state
        self._lock = threading.Lock()

    def add_checkpoint(self, body: bytes) -> Answer:
        origin, old = origin_of(body.partition(b"\n\n")[2]), None
        try:
            request = parse_request(body)
            old = request.old_size
            with self._lock:
                checkpoint = add_checkpoint(request, logs=self.logs, known=self.state.get(origin))
                text = checkpoint.body()
                line = self.signer.line(text)
                cosigned = request.note + line
                self.state.put(checkpoint.origin, Known(checkpoint.size, checkpoint.root), cosigned)
        except WitnessRefusal as refusal:
            log.warning("add-checkpoint %r old=%s: %d %s", origin, old, refusal.status, refusal)
            if refusal.status == 409:
                return Answer(409, f"{refusal.known_size}\n".encode(), SIZE_CONTENT_TYPE)
            return Answer(refusal.status, f"{refusal}\n".encode())
        log.info("add-checkpoint %r old=%d size=%d: cosigned", origin, old, checkpoint.size)
        return Answer(200, line)

    def checkpoint(self, origin_hash: str) -> Answer:
        for origin in self.state.origins():
            if hashlib.sha256(origin.encode()).hexdigest() == origin_hash:
                note = self.state.note(origin)
                if note is not None:
                    return Answer(200, note)
        return Answer(404, b"no checkpoint cosigned for that log\n")


class Handler(BaseHTTPRequestHandler):
    service: WitnessService  # set on the subclass :func:`serve` makes
    protocol_version = "HTTP/1.1"  # keep-alive, as the spec recommends
    timeout = 10  # seconds a client may take to send its request: a slow one holds one thread, not the witness

    def do_POST(self) -> None:
        if self.path != "/add-checkpoint":
            self._send(Answer(404, b"not found\n"))
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._send(Answer(411, b"Content-Length is required\n"))
            return
        if int(length) > MAX_BODY:
            self._send(Answer(413, b"request too large\n"))
            self.close_connection = True
            return
        self._send(self.service.add_checkpoint(self.rfile.read(int(length))))

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if self.path == "/":
            self._send(Answer(200, f"{self.service.signer.verifier_key}\n".encode()))
        elif len(parts) == 2 and parts[1] == "checkpoint":
            self._send(self.service.checkpoint(parts[0]))
        else:
            self._send(Answer(404, b"not found\n"))

    def _send(self, answer: Answer) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def serve(service: WitnessService, host: str, port: int) -> ThreadingHTTPServer:
    """A started-on-demand HTTP server (call ``serve_forever``; ``server_address`` has the real port)."""
    handler = type("WitnessHandler", (Handler,), {"service": service})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
