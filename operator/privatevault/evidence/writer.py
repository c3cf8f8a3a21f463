"""A bundle streamed from the ledger: records in, proofs beside them, a signed manifest over all.

Gather, then write: the anchor checkpoint is the first stored checkpoint covering every record up
to the window's end, so the same window always gives the same anchor; ``latest`` names the
checkpoint the consistency proof reaches (the newest, unless the caller pins one, as a rebuild
does). Records are read in ``seq`` order and written beside the bundle batch by batch, each
batch's inclusion proofs from one read of the Merkle nodes it needs, so memory stays flat in the
size of the window; the sections' files are compressed and hashed as they are written
(``archive.Segment``), the small files written as they are. The tar.gz is written last, from
those (``archive.write``), without reading a section again.

The signature is the one part that is not a function of the inputs (ML-DSA signing is hedged):
``sign`` is handed the Statement and returns the envelope, and the operator's signer returns the
envelope it recorded in the ledger the first time it signed that Statement, so a rebuild gives
the same bytes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from privatevault.errors import TransientError
from privatevault.evidence import archive, layout, lines, manifest
from privatevault.ledger import merkle, recompute
from privatevault.ledger.checkpoint import CheckpointError, NoteVerifier, parse_and_verify
from privatevault.ledger.readahead import ReadAhead

#: ``(seq, canonical bytes, previous hash, record hash)``, as the ledger streams them.
Row = tuple[int, bytes, bytes, bytes]
BATCH = 2000


class NotCovered(TransientError):
    """No signed checkpoint covers the window yet: the export waits for the checkpointer."""

    dependency = "a checkpoint covering the window"


@dataclass(frozen=True)
class SignedHead:
    size: int
    root: bytes
    note: bytes


class EvidenceSource(Protocol):
    """What a bundle reads from the ledger (``evidence.store.PgEvidenceSource``; memory in tests)."""

    def tenant_records(self, tenant: str, start: datetime, end: datetime) -> Iterator[Row]:
        """The tenant's records with ``start <= time < end``, in seq order."""
        ...

    def action_records(
        self, actions: Sequence[str], tenants: Sequence[str], start: datetime, end: datetime
    ) -> Iterator[Row]:
        """Records of ``actions`` in the window whose tenant is one of ``tenants`` or none, in seq order."""
        ...

    def in_force_records(self, actions: Sequence[str], start: datetime, end: datetime) -> Iterator[Row]:
        """Records of ``actions`` in the window, and the last one per resource before it, in seq order."""
        ...

    def boundaries(self, tenant: str, start: datetime, end: datetime) -> Iterator[Row]:
        """The tenant's last record before ``start`` and first at or after ``end`` (those that exist), in seq order."""
        ...

    def compliance_before(self, tenants: Sequence[str], start: datetime) -> Iterator[Row]:
        """The last ``compliance-state`` record before ``start`` per (framework uid, tenant) of
        ``tenants``, in seq order: each framework's state at the window's start."""
        ...

    def last_seq_before(self, end: datetime) -> int:
        """The largest seq recorded before ``end`` (0: none)."""
        ...

    def signed_heads(self) -> list[SignedHead]:
        """The stored checkpoints, smallest first."""
        ...

    def nodes(self, keys: Sequence[merkle.NodeKey]) -> dict[merkle.NodeKey, bytes]: ...

    def node_runs(self, runs: Sequence[lines.Run]) -> bytes:
        """The hashes of the nodes of ``runs`` (``(level, lo, hi)``), in that order, concatenated."""
        ...


@runtime_checkable
class RowBatches(Protocol):
    """Rows a source can also hand over as batches of PostgreSQL's binary COPY rows
    (``evidence.store.CopyRows``): the writer takes those, unparsed, on its fast path."""

    def batches(self) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class Request:
    tenants: tuple[str, ...]
    start: datetime
    end: datetime
    include: frozenset[str]
    origin: str
    #: The manifest's signature algorithms (part of the Statement: another choice, another Statement).
    signing: tuple[str, ...] = ("Ed25519", "ML-DSA-65")

    @property
    def window(self) -> dict[str, str]:
        return {"from": _time(self.start), "to": _time(self.end)}


def _time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class Built:
    """What a bundle holds: the export document (also the manifest's predicate) and its files."""

    export: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)
    #: The sections' files, compressed as they were written.
    segments: dict[str, archive.Segment] = field(default_factory=dict)

    @property
    def records(self) -> int:
        counts = self.export["counts"]
        return int(
            sum(counts["audit"].values())
            + counts["approvals"]
            + counts["decisions"]
            + counts["policies"]
            + counts.get("complianceBefore", 0)
        )


def _signed(head: SignedHead, verifiers: Sequence[NoteVerifier], origin: str) -> bool:
    try:
        parse_and_verify(head.note, verifiers, origin=origin)
    except CheckpointError:
        return False
    return True


def choose_heads(
    source: EvidenceSource,
    request: Request,
    latest_size: int | None,
    verifiers: Sequence[NoteVerifier] = (),
    *,
    after: int = 0,
    latest_note: bytes | None = None,
) -> tuple[SignedHead, SignedHead]:
    """The anchor (first checkpoint covering the window and the records ``after`` it) and the
    latest (or the one pinned), among the checkpoints every one of ``verifiers`` (the operator's
    own keys) signed, when given."""
    needed = max(source.last_seq_before(request.end), after, 1)
    heads = [h for h in source.signed_heads() if not verifiers or _signed(h, verifiers, request.origin)]
    anchor = next((head for head in heads if head.size >= needed), None)
    if anchor is None:
        newest = heads[-1].size if heads else 0
        raise NotCovered(f"the newest checkpoint covers {newest} records; the window needs {needed}")
    if latest_note is not None:
        # The published checkpoint, with the witnesses' cosignatures (the database keeps the log's own note).
        try:
            published = parse_and_verify(latest_note, verifiers, origin=request.origin) if verifiers else None
        except CheckpointError as exc:
            raise NotCovered(f"the published checkpoint does not verify under the operator's keys: {exc}") from exc
        if published is not None:
            if published.size < anchor.size:
                raise NotCovered(
                    f"the published checkpoint covers {published.size} records; the window needs {anchor.size}"
                )
            return anchor, SignedHead(published.size, published.root, latest_note)
    if latest_size is None:
        return anchor, heads[-1]
    latest = next((head for head in heads if head.size == latest_size), None)
    if latest is None or latest.size < anchor.size:
        raise NotCovered(f"checkpoint {latest_size} is not stored, or older than the anchor {anchor.size}")
    return anchor, latest


class _Nodes:
    """A node store over nodes already read (the consistency proof's)."""

    def __init__(self, found: Mapping[merkle.NodeKey, bytes]) -> None:
        self._found = found

    def get_many(self, keys: Sequence[merkle.NodeKey]) -> dict[merkle.NodeKey, bytes]:
        return {key: self._found[key] for key in keys if key in self._found}


class _SourceNodes:
    def __init__(self, source: EvidenceSource) -> None:
        self._source = source

    def get_many(self, keys: Sequence[merkle.NodeKey]) -> dict[merkle.NodeKey, bytes]:
        return self._source.nodes(keys)


def _batches(rows: Iterable[Row]) -> Iterator[bytes]:
    """``rows`` as batches of PostgreSQL's binary COPY rows: as the source hands them over when it
    can (read ahead on a thread of their own), else packed here."""
    if isinstance(rows, RowBatches):
        with closing(ReadAhead(rows.batches(), "privatevault-evidence-records")) as raw:
            yield from raw
        return
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield recompute.pack(batch)
            batch = []
    if batch:
        yield recompute.pack(batch)


def _planned(source: EvidenceSource, rows: Iterable[Row], size: int) -> Iterator[tuple[bytes, list[lines.Run], bytes]]:
    """Each batch with the runs of stored nodes its proofs need, and those nodes."""
    for batch in _batches(rows):
        runs = lines.plan(batch, size)
        yield batch, runs, source.node_runs(runs)


class _Sink:
    """A section's files compressed, hashed and written on a thread of their own (zlib, hashlib
    and file writes release the GIL), so the next batch is rendered meanwhile: no file is read
    or compressed again, neither for the manifest nor for the archive."""

    AHEAD = 4

    def __init__(self, *paths: Path) -> None:
        self._files = [archive.Deflater(path) for path in paths]
        self._queue: queue.Queue[tuple[bytes, ...] | None] = queue.Queue(maxsize=self.AHEAD)
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="privatevault-evidence-files", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunks := self._queue.get()) is not None:
            if self._error is None:  # after a failure, drained so the writer never blocks
                try:
                    for out, data in zip(self._files, chunks, strict=True):
                        out.write(data)
                except Exception as exc:  # raised to the writer by write() or close()
                    self._error = exc

    def write(self, *chunks: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunks)

    def close(self) -> list[archive.Segment]:
        self._queue.put(None)
        self._thread.join()
        segments = []
        for out in self._files:  # every file closed, even after a failure
            try:
                segments.append(out.close())
            except Exception as exc:
                self._error = self._error or exc
        if self._error is not None:
            raise self._error
        return segments


@dataclass(frozen=True)
class Section:
    count: int
    records: archive.Segment
    proofs: archive.Segment


def write_section(
    source: EvidenceSource,
    rows: Iterable[Row],
    size: int,
    records: Path,
    proofs: Path,
    *,
    on_record: Callable[[bytes], None] | None = None,
) -> Section:
    """Stream ``rows`` to the two files of a section, with inclusion proofs at ``size``, as
    compressed segments of the bundle (``archive.Segment``).

    Four stages overlap, each on a thread of its own: the records' read (PostgreSQL's COPY), each
    batch's plan and node read, here the lines (``evidence.lines``), and the files' hashing and
    writing (:class:`_Sink`).
    """
    records.parent.mkdir(parents=True, exist_ok=True)
    count, closed = 0, False
    sink = _Sink(records, proofs)
    try:
        uppers: dict[int, bytes] | None = None
        with closing(ReadAhead(_planned(source, rows, size), "privatevault-evidence-nodes")) as planned:
            for batch, runs, nodes in planned:
                if uppers is None:
                    paths = merkle.block_paths(size, _SourceNodes(source))
                    uppers = {level: lines.quoted(path) for level, path in paths.items()}
                written = lines.render(batch, size, runs, nodes, uppers)
                sink.write(written.records, written.proofs)
                if on_record is not None:
                    for body in written.records.split(b"\n")[:-1]:
                        on_record(body)
                count += written.total
        closed = True
        segments = sink.close()
    finally:
        if not closed:
            with contextlib.suppress(Exception):  # the first error is the one to report
                sink.close()
    return Section(count, *segments)


def build(
    source: EvidenceSource,
    request: Request,
    workdir: Path,
    *,
    sign: Callable[[bytes], bytes],
    latest_size: int | None = None,
    verifiers: Sequence[NoteVerifier] = (),
    latest_note: bytes | None = None,
) -> Built:
    """Write the bundle's files into the empty folder ``workdir``, the manifest last (see :func:`pack`)."""
    audited = bool(request.include & {"Audit", "KeyMetadata", "ComplianceResults"})
    bounds = {t: list(source.boundaries(t, request.start, request.end)) for t in request.tenants} if audited else {}
    after = max((row[0] for rows in bounds.values() for row in rows), default=0)
    anchor, latest = choose_heads(source, request, latest_size, verifiers, after=after, latest_note=latest_note)
    built = Built(export={})
    counts: dict[str, Any] = {"audit": {}, "approvals": 0, "decisions": 0, "policies": 0}
    keys: list[dict[str, Any]] = []
    compliance: list[dict[str, Any]] = []

    def put(name: str, data: bytes) -> None:
        path = workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        built.files[name] = path

    _checkpoints(source, anchor, latest, put)

    def section(name: str, rows: Iterator[Row], on_record: Callable[[bytes], None] | None = None) -> int:
        records, proofs = layout.records_file(name), layout.proofs_file(name)
        written = write_section(source, rows, anchor.size, workdir / records, workdir / proofs, on_record=on_record)
        built.segments[records], built.segments[proofs] = written.records, written.proofs
        return written.count

    if "Audit" in request.include or "KeyMetadata" in request.include or "ComplianceResults" in request.include:
        for tenant in request.tenants:

            def derive(body: bytes) -> None:
                if b"kek" not in body and b"key" not in body and b"compliance-" not in body:
                    return  # neither a key nor a compliance record: not worth parsing
                document = json.loads(body)
                keys.extend(layout.key_metadata([document]))
                compliance.extend(layout.compliance_results([document]))

            rows = source.tenant_records(tenant, request.start, request.end)
            counts["audit"][tenant] = section(layout.audit_section(tenant), rows, derive)
            section(layout.boundary_section(tenant), iter(bounds[tenant]))
    if "Approvals" in request.include or "Policies" in request.include:
        decided = {"n": 0}

        def tally(body: bytes) -> None:
            if b'"action":"quorum-decision"' in body:
                decided["n"] += 1

        rows = source.in_force_records(layout.POLICY_ACTIONS, request.start, request.end)
        counts["policies"] = section(layout.POLICIES, rows)
        if "Approvals" in request.include:
            rows = source.action_records(layout.QUORUM_ACTIONS, request.tenants, request.start, request.end)
            total = section(layout.QUORUM, rows, tally)
            counts["decisions"], counts["approvals"] = decided["n"], total - decided["n"]
    if "KeyMetadata" in request.include:
        put(layout.KEYS, layout.json_file({"keys": keys}))
    if "ComplianceResults" in request.include:
        counts["complianceBefore"] = _compliance(source, request, compliance, section, put)
    built.export = {
        "version": 1,
        "origin": request.origin,
        "tenants": list(request.tenants),
        "window": request.window,
        "include": sorted(request.include),
        "signing": sorted(request.signing),
        "checkpoint": {"size": anchor.size, "root": base64.b64encode(anchor.root).decode()},
        "latest": {"size": latest.size, "root": base64.b64encode(latest.root).decode()},
        "counts": counts,
    }
    put(layout.EXPORT, layout.json_file(built.export))
    put(layout.README, layout.readme(built.export, sorted([*built.files, *built.segments, manifest.ENVELOPE])))
    digests = {name: archive.sha256_file(path) for name, path in built.files.items()}
    digests.update((name, segment.sha256) for name, segment in built.segments.items())
    put(manifest.ENVELOPE, sign(manifest.statement(digests, built.export)))
    return built


def _compliance(
    source: EvidenceSource,
    request: Request,
    results: list[dict[str, Any]],
    section: Callable[[str, Iterator[Row], Callable[[bytes], None]], int],
    put: Callable[[str, bytes], None],
) -> int:
    """The compliance-state records before the window (a proven section) and ``compliance/results.json``."""
    before: list[dict[str, Any]] = []
    rows = source.compliance_before(request.tenants, request.start)
    count = section(layout.COMPLIANCE_BEFORE, rows, lambda body: before.append(json.loads(body)))
    document, _ = layout.compliance_document(results, before)  # the verifier names what does not verify
    put(layout.COMPLIANCE, layout.json_file(document))
    return count


def _checkpoints(
    source: EvidenceSource, anchor: SignedHead, latest: SignedHead, put: Callable[[str, bytes], None]
) -> None:
    """The anchor, the latest, and the consistency proof between them."""
    put(layout.ANCHOR, anchor.note)
    put(layout.LATEST, latest.note)
    consistency = merkle.consistency_proof(anchor.size, latest.size, source_store(source, anchor.size, latest.size))
    proof = [layout.b64(p) for p in consistency]
    put(layout.CONSISTENCY, layout.json_file({"oldSize": anchor.size, "newSize": latest.size, "proof": proof}))


def source_store(source: EvidenceSource, old: int, new: int) -> _Nodes:
    if old in (0, new):
        return _Nodes({})
    return _Nodes(source.nodes(merkle.consistency_proof_keys(old, new)))


@dataclass(frozen=True)
class Packed:
    digest: str
    size: int


def pack(built: Built, out: BinaryIO) -> Packed:
    """The deterministic tar.gz of ``built`` to ``out``; its SHA-256 and size."""

    class _Hashing:
        def __init__(self) -> None:
            self.digest = hashlib.sha256()
            self.size = 0

        def write(self, data: bytes) -> int:
            self.digest.update(data)
            self.size += len(data)
            return out.write(data)

        def flush(self) -> None:
            out.flush()

    sink = _Hashing()
    archive.write(sink, built.files.items(), built.segments)  # type: ignore[arg-type]
    return Packed("sha256:" + sink.digest.hexdigest(), sink.size)
