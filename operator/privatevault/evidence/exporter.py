"""Writing a bundle to its destination: aside, fsync, rename, so a failure leaves no partial bundle.

The bundle is built in a hidden folder inside the destination (``.<name>.<random>``, removed
whatever happens), written to a file there, flushed to disk, then renamed over
``<destination>/<name>.tar.gz`` and the folder's entry flushed too: a reader sees the whole
bundle or none. :func:`finished` is how the read API finds a bundle to serve.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from privatevault.errors import SpecError
from privatevault.evidence import layout, writer
from privatevault.evidence.archive import sha256_file
from privatevault.ledger.checkpoint import NoteVerifier


@dataclass(frozen=True)
class Job:
    name: str
    tenants: tuple[str, ...]
    start: datetime
    end: datetime
    include: frozenset[str]
    signing: tuple[str, ...]
    destination: str
    #: The checkpoint the consistency proof reaches; None: the newest (a first build).
    latest: int | None = None
    #: That checkpoint's note as published, with the witnesses' cosignatures (pinned for rebuilds).
    latest_note: bytes | None = None


@dataclass(frozen=True)
class Result:
    location: str
    digest: str
    size: int
    export: Mapping[str, Any]
    #: The note of the checkpoint the consistency proof reaches, as the bundle holds it.
    latest_note: bytes = b""


def bundle_name(name: str) -> str:
    return f"{name}.tar.gz"


def writable(destination: str) -> str | None:
    """Why the operator cannot write bundles to ``destination``, or None when it can."""
    path = Path(destination)
    if not path.is_dir():
        return f"destination {destination} is not a directory the operator can see"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"destination {destination} is not writable by the operator"
    return None


class Exporter:
    """Builds bundles from ``source`` (the ledger) to filesystem destinations."""

    def __init__(
        self,
        source: writer.EvidenceSource,
        *,
        origin: str,
        verifiers: Sequence[NoteVerifier] = (),
        published: Callable[[], bytes | None] = lambda: None,
    ) -> None:
        """``verifiers``: the operator's checkpoint keys; only checkpoints they all signed anchor a
        bundle. ``published``: the checkpoint published outside the database, with the witnesses'
        cosignatures (the database keeps the log's own note): the one the bundle's consistency
        proof reaches, unless a rebuild pins another."""
        self._source = source
        self._origin = origin
        self._verifiers = tuple(verifiers)
        self._published = published

    def export(self, job: Job, *, sign: Callable[[bytes], bytes]) -> Result:
        problem = writable(job.destination)
        if problem is not None:
            raise SpecError(
                f"{problem}; mount a writable volume there or change spec.destination", reason="DestinationNotWritable"
            )
        destination = Path(job.destination)
        final = destination / bundle_name(job.name)
        request = writer.Request(job.tenants, job.start, job.end, job.include, self._origin, job.signing)
        try:
            with tempfile.TemporaryDirectory(dir=destination, prefix=f".{job.name}.") as aside:
                work = Path(aside)
                (work / "files").mkdir()
                built = writer.build(
                    self._source,
                    request,
                    work / "files",
                    sign=sign,
                    latest_size=job.latest,
                    verifiers=self._verifiers,
                    latest_note=job.latest_note if job.latest_note is not None else self._published(),
                )
                latest_note = built.files[layout.LATEST].read_bytes()
                partial = work / bundle_name(job.name)
                with partial.open("wb") as out:
                    packed = writer.pack(built, out)
                    out.flush()
                    os.fsync(out.fileno())
                partial.chmod(0o644)
                os.replace(partial, final)
                _sync_directory(destination)
        except PermissionError as exc:
            raise SpecError(f"destination {job.destination}: {exc}", reason="DestinationNotWritable") from exc
        return Result(
            location=str(final), digest=packed.digest, size=packed.size, export=built.export, latest_note=latest_note
        )

    def existing(self, location: str) -> str | None:
        """``sha256:<hex>`` of the bundle at ``location``, or None when there is none."""
        path = Path(location)
        return "sha256:" + sha256_file(path) if path.is_file() else None


def _sync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def finished(obj: Mapping[str, Any]) -> Path | None:
    """The bundle of an EvidenceExport (as the API server returns it) when it is Ready for its
    generation and the file is there; None otherwise."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    if status.get("observedGeneration") != meta.get("generation") or not status.get("location"):
        return None
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    path = Path(str(status["location"]))
    return path if ready and path.is_file() else None
