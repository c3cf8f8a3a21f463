"""The log's side of tlog-witness: submit a checkpoint to every configured witness, keep their cosignatures.

A witness that cannot be reached, refuses, or answers with a bad cosignature never blocks the
ledger: the checkpoint is published with the cosignatures that did come, and the failure is
logged (naming the witness, never a key) and kept in :class:`~privatevault.ledger.witness.WitnessStatus`
for the metrics. A 422 (the witness found the checkpoint inconsistent with what it cosigned
before) is logged as an ERROR: it means the log's history changed under a signed checkpoint.

Each client remembers, in memory, the size its witness cosigned last, and starts from 0 after a
restart: the witness's 409 tells it the right size, and it retries with a proof from there.
The HTTP transport is a seam (:data:`Transport`), so unit tests run this code against a fake.
"""

from __future__ import annotations

import http.client
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from privatevault.errors import PrivateVaultError
from privatevault.ledger.cosignature import CosignatureVerifier, cosignature_lines
from privatevault.ledger.witness import AddCheckpoint, WitnessStatus, parse_known_size

log = logging.getLogger("privatevault.witness.client")

#: ``(url, body, timeout) -> (status, answer)``; raises OSError when the witness cannot be reached.
Transport = Callable[[str, bytes, float], tuple[int, bytes]]
#: The consistency proof from an old size to the checkpoint's size, read from the ledger.
ProofSource = Callable[[int], Sequence[bytes]]

_REASONS = {400: "BadRequest", 403: "Forbidden", 404: "UnknownLog", 422: "Inconsistent"}
_ATTEMPTS = 3


class WitnessFailed(PrivateVaultError):
    """One witness did not cosign; ``reason`` is CamelCase (``Unreachable``, ``Inconsistent``, …)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def http_post(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
    """POST with the standard library (keep-alive is not worth a dependency at one request per checkpoint)."""
    if not url.startswith(("http://", "https://")):
        raise OSError(f"{url} is not an http(s) URL")
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "text/plain"})  # noqa: S310 - checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - checked above
            return int(answer.status), answer.read(65536)
    except urllib.error.HTTPError as error:
        return int(error.code), error.read(65536)
    except (urllib.error.URLError, http.client.HTTPException) as exc:
        raise OSError(str(getattr(exc, "reason", exc))) from exc


@dataclass
class Witness:
    """One configured witness: its submission prefix and the key its cosignatures must verify with."""

    url: str
    verifier: CosignatureVerifier
    transport: Transport = http_post
    timeout: float = 5.0
    known_size: int = 0

    @property
    def name(self) -> str:
        return self.verifier.name

    def cosign(self, note: bytes, size: int, proof: ProofSource) -> bytes:
        """This witness's cosignature line(s) on ``note`` (a checkpoint of ``size``), or :class:`WitnessFailed`."""
        body = note[: note.index(b"\n\n") + 1]
        old = self.known_size
        endpoint = self.url.rstrip("/") + "/add-checkpoint"
        for _ in range(_ATTEMPTS):
            if old > size:
                raise WitnessFailed(
                    "AheadOfLog",
                    f"the witness cosigned size {old}, more than this checkpoint's {size}:"
                    " the log was rolled back or forked after the witness saw it",
                )
            nodes = tuple(proof(old)) if 0 < old < size else ()
            request = AddCheckpoint(old, nodes, note).body()
            try:
                status, answer = self.transport(endpoint, request, self.timeout)
            except OSError as exc:
                raise WitnessFailed("Unreachable", f"{endpoint} cannot be reached: {exc}") from exc
            if status == 200:
                try:
                    lines = cosignature_lines(answer, body, self.verifier)
                except PrivateVaultError as exc:
                    raise WitnessFailed("BadCosignature", f"the witness's answer does not verify: {exc}") from exc
                self.known_size = size
                return lines
            if status != 409:
                text = answer.decode("utf-8", errors="replace").strip()[:200]
                raise WitnessFailed(_REASONS.get(status, f"HTTP{status}"), f"answered {status}: {text}")
            try:
                old = parse_known_size(answer)
            except PrivateVaultError as exc:
                raise WitnessFailed("BadAnswer", str(exc)) from exc
            self.known_size = old
        raise WitnessFailed("Conflict", f"still 409 after {_ATTEMPTS} attempts (another log instance submits too?)")


class Witnesses:
    """Every configured witness, asked in parallel; ``status`` keeps what each did last."""

    def __init__(self, witnesses: Sequence[Witness]) -> None:
        self.witnesses = list(witnesses)
        self.status = {w.name: WitnessStatus(w.name, w.url) for w in self.witnesses}
        self._pool = ThreadPoolExecutor(max(1, len(self.witnesses)), thread_name_prefix="privatevault-witness")
        self._lock = threading.Lock()

    def cosign(self, note: bytes, size: int, proof: ProofSource) -> bytes:
        """The cosignature lines of every witness that cosigned ``note``; failures are logged, never raised."""
        with self._lock:  # one checkpoint at a time: each witness's known size moves in order
            futures = [(w, self._pool.submit(w.cosign, note, size, proof)) for w in self.witnesses]
            lines = b""
            for witness, future in futures:
                status = self.status[witness.name]
                try:
                    lines += future.result()
                except PrivateVaultError as exc:
                    self._failed(status, size, exc)
                except Exception as exc:
                    self._failed(status, size, WitnessFailed("Error", f"{type(exc).__name__}: {exc}"))
                else:
                    status.ok, status.reason, status.message, status.cosigned_size = True, "", "", size
            return lines

    @staticmethod
    def _failed(status: WitnessStatus, size: int, exc: PrivateVaultError) -> None:
        reason = exc.reason if isinstance(exc, WitnessFailed) else "Error"
        status.ok, status.reason, status.message = False, reason, str(exc)
        status.failures_total += 1
        level = logging.ERROR if reason in ("Inconsistent", "AheadOfLog") else logging.WARNING
        log.log(
            level,
            "witness %s (%s) did not cosign the checkpoint at size %d (%s): %s; it is published without",
            status.name,
            status.url,
            size,
            reason,
            exc,
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
