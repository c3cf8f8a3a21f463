"""Small in-memory stand-ins for the cluster and the ledger ports (unit tests only)."""

from __future__ import annotations

import contextlib
import copy
import ctypes
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from keyring.backend import KeyringBackend

from privatevault.crypto import LocalAesGcmWrapper
from privatevault.errors import KmsError, KmsUnavailable, LedgerUnavailable, SpecError
from privatevault.evidence.writer import SignedHead
from privatevault.kms.facts import KeyFacts
from privatevault.ledger import GENESIS, Event, Record, ResourceRef, merkle, recompute, record_hash, tenantchain
from privatevault.ledger.checkpoint import sign_checkpoint
from privatevault.ledger.event import canonical
from privatevault.ledger.store import StoredCheckpoint
from privatevault.manifests.objects import comparable
from privatevault.mcs import Allocation, Level, parse

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class FakeCluster:
    """Stores objects by (kind, namespace, name); apply replaces the object wholesale."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.applies: list[tuple[str, str | None, str]] = []
        self.refuse: set[tuple[str, str]] = set()
        self._ids = itertools.count(1)

    @staticmethod
    def _key(obj: dict[str, Any]) -> tuple[str, str | None, str]:
        return obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found else None

    def apply(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        key = self._key(obj)
        current = self.objects.get(key)
        result = copy.deepcopy(obj)
        if current is not None:
            result["metadata"]["uid"] = current["metadata"]["uid"]
            result["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if dry_run:
            result["metadata"].setdefault("uid", "dry-run")
            return result
        result["metadata"].setdefault("uid", f"uid-{next(self._ids)}")
        result["metadata"]["resourceVersion"] = str(next(self._ids))
        self.objects[key] = result
        self.applies.append(key)
        return copy.deepcopy(result)

    def drifted(self, desired: dict[str, Any], current: dict[str, Any] | None) -> bool:
        return current is None or comparable(self.apply(desired, dry_run=True)) != comparable(current)

    def check(self, obj: dict[str, Any]) -> None:
        """Refuses what ``refuse`` names (kind, name), as the API server would with a 422."""
        name = obj["metadata"]["name"]
        if (obj["kind"], name) in self.refuse or len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
            raise SpecError(
                f"the API server refused applying {obj['kind']} {obj['metadata']['name']}", reason="ChildRejected"
            )

    def list(
        self, api_version: str, kind: str, *, label_selector: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        wanted = dict(part.split("=", 1) for part in label_selector.split(",")) if label_selector else {}
        return [
            copy.deepcopy(obj)
            for (k, ns, _), obj in self.objects.items()
            if k == kind
            and (namespace is None or ns == namespace)
            and all((obj["metadata"].get("labels") or {}).get(key) == value for key, value in wanted.items())
        ]

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        return self.objects.pop((kind, namespace, name), None) is not None

    def versions(self, api_version: str, kind: str) -> tuple[tuple[str, int], ...] | None:
        """As ``ClusterView.versions``; None (not cached) for objects put without a resourceVersion."""
        found = [
            (n, str(o["metadata"].get("resourceVersion", ""))) for (k, _, n), o in self.objects.items() if k == kind
        ]
        if not all(version.isdigit() for _, version in found):
            return None
        return tuple(sorted((n, int(version)) for n, version in found))

    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Create ``obj``; None when it exists already (it is left as it is), as ``Cluster.create``."""
        if self._key(obj) in self.objects:
            return None
        self.put(obj)
        return copy.deepcopy(self.objects[self._key(obj)])

    def close(self) -> None:
        """Nothing to release."""

    def put(self, obj: dict[str, Any]) -> None:
        """An object someone else made."""
        obj = copy.deepcopy(obj)
        obj["metadata"].setdefault("uid", f"uid-{next(self._ids)}")
        obj["metadata"].setdefault("resourceVersion", str(next(self._ids)))
        self.objects[self._key(obj)] = obj


class FakeLedger:
    """A hash chain in a list, deduplicated by idempotency key; ``down`` makes it unavailable."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.events: list[Event] = []
        self.down = False

    def append(self, event: Event) -> Record:
        if self.down:
            raise LedgerUnavailable("ledger is down (fake)")
        for record in self.records:
            if record.idempotency_key == event.idempotency_key:
                return record
        prev = self.records[-1].record_hash if self.records else GENESIS
        body = canonical(event.body(seq=len(self.records) + 1, time=datetime(2026, 1, 1, tzinfo=UTC)))
        record = Record(
            seq=len(self.records) + 1,
            canonical=body,
            prev_hash=prev,
            record_hash=record_hash(prev, body),
            idempotency_key=event.idempotency_key,
        )
        self.records.append(record)
        self.events.append(event)
        return record

    def find(self, prefix: str, *, limit: int = 1000) -> list[Record]:
        if self.down:
            raise LedgerUnavailable("ledger is down (fake)")
        return [r for r in self.records if r.idempotency_key.startswith(prefix)][-limit:]


class FakeLevels:
    """MCS levels handed out in order, never reused; ``taken`` holds levels set aside for others."""

    def __init__(self) -> None:
        self.by_uid: dict[str, Allocation] = {}
        self.taken: set[Level] = set()
        self.released: list[str] = []
        self._next = itertools.count()

    def allocate(
        self,
        *,
        tenant: str,
        tenant_uid: str,
        confidentiality: str,
        integrity: str,
        compartments: Sequence[str],
        requested: str | None = None,
    ) -> Allocation:
        if tenant_uid in self.by_uid:
            return self.by_uid[tenant_uid]
        if requested is not None:
            level = parse(requested)
            if level in self.taken:
                raise SpecError(f"MCS level {requested} is taken", reason="MCSConflict")
        else:
            n = next(self._next)
            level = Level(n, n + 1)
        self.taken.add(level)
        self.by_uid[tenant_uid] = Allocation(level, requested is not None, False)
        return self.by_uid[tenant_uid]

    def release(self, tenant_uid: str) -> None:
        self.released.append(tenant_uid)


class VersionedWrapper:
    """A KEK with versions, like a Transit key: wraps with the newest, unwraps from ``minimum`` on."""

    def __init__(self) -> None:
        self.keys = [LocalAesGcmWrapper.generate()]
        self.minimum = 1

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
        return bytes([len(self.keys)]) + self.keys[-1].wrap(plaintext, context=context)

    def unwrap(self, ciphertext: bytes, *, context: bytes) -> bytes:
        version = ciphertext[0]
        if version < self.minimum:
            raise KmsError(f"KEK version {version} no longer decrypts")
        return self.keys[version - 1].unwrap(ciphertext[1:], context=context)


class FakeKeys:
    """One provider's tenant keys; ``down`` makes it unavailable."""

    def __init__(self, provider: str = "local") -> None:
        self.provider = provider
        self.keys: dict[str, list[str]] = {}
        self.shredded: list[str] = []
        self.retained: list[str] = []
        self.wrappers: dict[str, VersionedWrapper] = {}
        self.rotated = "2026-01-01T00:00:00Z"
        self.down = False

    def ensure(self, tenant: str, namespaces: Sequence[str]) -> KeyFacts:
        if self.down:
            raise KmsUnavailable("KMS is down (fake)")
        self.keys[tenant] = list(namespaces)
        return KeyFacts(
            name=f"tenant-{tenant}",
            latest_version=1,
            min_decryption_version=1,
            created="2026-01-01T00:00:00Z",
            rotated="2026-01-01T00:00:00Z",
            deletion_allowed=False,
        )

    def retain(self, tenant: str) -> None:
        self.retained.append(tenant)

    def shred(self, tenant: str) -> None:
        self.shredded.append(tenant)
        self.keys.pop(tenant, None)
        self.wrappers.pop(tenant, None)  # nothing wrapped under the old key opens again

    def wrapper(self, tenant: str) -> VersionedWrapper:
        return self.wrappers.setdefault(tenant, VersionedWrapper())

    def facts(self, tenant: str) -> KeyFacts | None:
        kek = self.wrapper(tenant)
        return KeyFacts(
            name=f"tenant-{tenant}",
            latest_version=len(kek.keys),
            min_decryption_version=kek.minimum,
            created="2026-01-01T00:00:00Z",
            rotated=self.rotated,
            deletion_allowed=False,
        )

    def rotate(self, tenant: str) -> KeyFacts | None:
        self.wrapper(tenant).keys.append(LocalAesGcmWrapper.generate())
        self.rotated = "2026-11-22T12:00:00Z"
        return self.facts(tenant)

    def limit(self, tenant: str, min_version: int) -> None:
        self.wrapper(tenant).minimum = min_version

    def for_provider(self, provider: str) -> FakeKeys:
        return self


def ledger_event(key: str, tenant: str = "acme") -> Event:
    """An event as a reconcile would write it, told apart by its idempotency key."""
    return Event(
        tenant=tenant,
        actor="test",
        action="update-resourcequota",
        outcome="intended",
        resource=ResourceRef(kind="ResourceQuota", namespace=tenant, name="privatevault-quota"),
        idempotency_key=key,
        details={"n": key},
    )


_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no header extension
_COPY_TRAILER = b"\xff\xff"
_GET_COPY_DATA = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_int)
_FREEMEM = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class LibpqCopy:
    """A binary COPY in progress as ``store.CopyOut`` offers it (``recompute.CopyRows``): its messages
    (the header before the first, the trailer after the last) served to the compiled pass by ctypes
    callbacks standing in for libpq's ``PQgetCopyData`` and ``PQfreemem``, or joined in Python.

    ``fail_after``: libpq reports a failure (-2) after that many messages. ``live``: the messages
    handed out and not freed yet.
    """

    def __init__(self, rows: Sequence[bytes], *, native: bool = True, fail_after: int | None = None) -> None:
        self.rows = list(rows)
        self.messages = [_COPY_HEADER + (self.rows[0] if self.rows else _COPY_TRAILER), *self.rows[1:]]
        if self.rows:
            self.messages.append(_COPY_TRAILER)
        self.header, self.done, self.finished = True, False, False
        self.fail_after, self.served = fail_after, 0
        self.live: dict[int, ctypes.Array[ctypes.c_char]] = {}
        self._native = native
        self._get, self._free = _GET_COPY_DATA(self._get_copy_data), _FREEMEM(self._freemem)

    def _get_copy_data(self, conn: int | None, buffer: Any, async_: int) -> int:
        assert conn == 1 and async_ == 0
        if self.fail_after is not None and self.served >= self.fail_after:
            return -2
        if self.served >= len(self.messages):
            return -1
        message = ctypes.create_string_buffer(self.messages[self.served], len(self.messages[self.served]))
        self.served += 1
        self.live[ctypes.addressof(message)] = message
        buffer[0] = ctypes.addressof(message)
        return len(message)

    def _freemem(self, pointer: int | None) -> None:
        assert pointer is not None
        del self.live[pointer]

    def native(self) -> tuple[int, int, int] | None:
        if not self._native:
            return None
        address = ctypes.cast(self._get, ctypes.c_void_p).value, ctypes.cast(self._free, ctypes.c_void_p).value
        assert address[0] is not None and address[1] is not None
        return 1, address[0], address[1]

    def error(self) -> str:
        return "server closed the connection unexpectedly"

    def finish(self) -> None:
        assert self.served == len(self.messages) - 1, "finish() is for the trailer only"
        self.served += 1
        self.done = self.finished = True

    def batches(self, counts: Iterable[int]) -> Iterator[bytes]:
        rows = self.rows
        for count in counts:
            yield b"".join(rows[:count])
            rows = rows[count:]
        self.done = True


class MemoryLedger:
    """The PostgreSQL ledger in memory (records, Merkle nodes, checkpoints), read the way the
    checkpointer and the verifier read the real one, and what a database superuser can do to it.

    ``calls`` names every read, so tests can hold the checkpointer to one query per idle tick.
    """

    def __init__(self) -> None:
        self.rows: list[Record] = []
        self.tree: dict[merkle.NodeKey, bytes] = {}
        self.stored: list[StoredCheckpoint] = []
        self.calls: list[str] = []
        self.copies: list[LibpqCopy] = []

    # -- writing, as the operator does ------------------------------------------------------

    def append(self, event: Event) -> Record:
        for record in self.rows:
            if record.idempotency_key == event.idempotency_key:
                return record
        seq = len(self.rows) + 1
        prev = self.rows[-1].record_hash if self.rows else GENESIS
        body = canonical(event.body(seq=seq, time=datetime(2026, 1, 1, tzinfo=UTC)))
        record = Record(seq, body, prev, record_hash(prev, body), event.idempotency_key)
        self.tree.update(
            (node.key, node.hash)
            for node in merkle.append_leaves(len(self.rows), [merkle.leaf_hash(record.record_hash)], self)
        )
        self.rows.append(record)
        return record

    def add(self, count: int) -> None:
        for _ in range(count):
            self.append(ledger_event(f"k{len(self.rows) + 1}"))

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        if any(stored.size == checkpoint.size for stored in self.stored):
            return False
        self.stored.append(checkpoint)
        self.stored.sort(key=lambda stored: stored.size)
        return True

    # -- what a superuser can do --------------------------------------------------------------

    def rewrite(self, seq: int, *, drop_checkpoints: bool = True) -> None:
        """Change record ``seq``, recompute every later hash and the whole tree; drop the stored checkpoints."""
        records = list(self.rows)
        self.rows, self.tree = [], {}
        for record in records:
            body = record.canonical.replace(b"acme", b"evil") if record.seq == seq else record.canonical
            prev = self.rows[-1].record_hash if self.rows else GENESIS
            forged = Record(record.seq, body, prev, record_hash(prev, body), record.idempotency_key)
            self.tree.update(
                (node.key, node.hash)
                for node in merkle.append_leaves(len(self.rows), [merkle.leaf_hash(forged.record_hash)], self)
            )
            self.rows.append(forged)
        if drop_checkpoints:
            self.stored = []

    def truncate(self, size: int) -> None:
        """Delete the records after ``size`` (their nodes stay, as a careless insider leaves them)."""
        self.rows = self.rows[:size]

    # -- reading, as the checkpointer and the verifier do ------------------------------------

    def get_many(self, keys: Sequence[merkle.NodeKey]) -> dict[merkle.NodeKey, bytes]:
        return {key: self.tree[key] for key in keys if key in self.tree}

    def size(self) -> int:
        self.calls.append("size")
        return len(self.rows)

    def record(self, seq: int) -> Record | None:
        return self.rows[seq - 1] if 0 < seq <= len(self.rows) else None

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        self.calls.append("latest")
        return self.stored[-1] if self.stored else None

    def checkpoints(self) -> list[StoredCheckpoint]:
        return list(self.stored)

    def root(self, size: int) -> bytes:
        return merkle.tree_root(size, self)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        return merkle.consistency_proof(old_size, new_size, self)

    def inclusion_proof(self, seq: int, size: int) -> list[bytes]:
        return merkle.inclusion_proof(seq - 1, size, self)

    def nodes(self, keys: Sequence[merkle.NodeKey]) -> dict[merkle.NodeKey, bytes]:
        return self.get_many(keys)

    #: Whether ``record_copy`` offers the compiled pass its fake libpq (else the rows are joined in Python).
    native = False

    @contextlib.contextmanager
    def record_copy(self, start: int, end: int) -> Iterator[LibpqCopy]:
        rows = sorted(record[:4] for record in self.rows if start <= record.seq <= end)
        copy = LibpqCopy([recompute.pack([row]) for row in rows], native=self.native)
        self.copies.append(copy)
        yield copy
        assert not copy.live, "the compiled pass did not free every message it took"

    def node_runs(self, runs: Sequence[tuple[int, int, int]]) -> bytes:
        return b"".join(
            self.tree[(level, index)]
            for level, first, end in sorted(runs)
            for index in range(first, end)
            if (level, index) in self.tree
        )


class MemoryKeyring(KeyringBackend):
    """An OS keyring in a dict, usable (positive priority) as ``pvctl`` requires."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.secrets.pop((service, username), None)


class MemoryEvidence:
    """A ledger in memory whose records carry their own times, read the way an evidence bundle
    reads the real one (``evidence.writer.EvidenceSource``)."""

    def __init__(self) -> None:
        self.rows: list[Record] = []
        self.tree: dict[merkle.NodeKey, bytes] = {}
        self.heads: list[SignedHead] = []
        self.tenants = tenantchain.Heads()

    def get_many(self, keys: Sequence[merkle.NodeKey]) -> dict[merkle.NodeKey, bytes]:
        return {key: self.tree[key] for key in keys if key in self.tree}

    def node_runs(self, runs: Sequence[tuple[int, int, int]]) -> bytes:
        keys = [(level, index) for level, lo, hi in runs for index in range(lo, hi)]
        missing = [key for key in keys if key not in self.tree]
        if missing:
            raise merkle.MissingNodes(missing)
        return b"".join(self.tree[key] for key in keys)

    def append(self, event: Event, time: datetime) -> Record:
        seq = len(self.rows) + 1
        prev = self.rows[-1].record_hash if self.rows else GENESIS
        link = self.tenants.link(event.tenant)
        body = canonical(event.body(seq=seq, time=time, link=link))
        record = Record(seq, body, prev, record_hash(prev, body), event.idempotency_key)
        self.tenants.advance(event.tenant, link, record.record_hash)
        self.tree.update(
            (node.key, node.hash)
            for node in merkle.append_leaves(len(self.rows), [merkle.leaf_hash(record.record_hash)], self)
        )
        self.rows.append(record)
        return record

    def boundaries(self, tenant: str, start: datetime, end: datetime) -> Iterator[tuple[int, bytes, bytes, bytes]]:
        mine = [(r, json.loads(r.canonical)) for r in self.rows if json.loads(r.canonical)["tenant"] == tenant]
        before = [r for r, b in mine if self._time(b) < start][-1:]
        after = [r for r, b in mine if self._time(b) >= end][:1]
        for record in before + after:
            yield record.seq, record.canonical, record.prev_hash, record.record_hash

    def sign(self, signers: Sequence[Any], origin: str, witnesses: Sequence[Any] = ()) -> SignedHead:
        size = len(self.rows)
        root = merkle.tree_root(size, self)
        note = sign_checkpoint(origin, size, root, signers)
        body = note[: note.index(b"\n\n") + 1]
        note += b"".join(witness.line(body) for witness in witnesses)
        head = SignedHead(size, root, note)
        self.heads.append(head)
        return head

    def _rows(self, keep: Callable[[dict[str, Any]], bool]) -> Iterator[tuple[int, bytes, bytes, bytes]]:
        for record in self.rows:
            if keep(json.loads(record.canonical)):
                yield record.seq, record.canonical, record.prev_hash, record.record_hash

    @staticmethod
    def _time(body: dict[str, Any]) -> datetime:
        return datetime.fromisoformat(body["time"].replace("Z", "+00:00"))

    def tenant_records(self, tenant: str, start: datetime, end: datetime) -> Iterator[tuple[int, bytes, bytes, bytes]]:
        return self._rows(lambda b: b["tenant"] == tenant and start <= self._time(b) < end)

    def action_records(
        self, actions: Sequence[str], tenants: Sequence[str], start: datetime, end: datetime
    ) -> Iterator[tuple[int, bytes, bytes, bytes]]:
        return self._rows(
            lambda b: b["action"] in actions and b["tenant"] in (*tenants, "") and start <= self._time(b) < end
        )

    def in_force_records(
        self, actions: Sequence[str], start: datetime, end: datetime
    ) -> Iterator[tuple[int, bytes, bytes, bytes]]:
        last: dict[tuple[str, str, str], int] = {}
        for record in self.rows:
            body = json.loads(record.canonical)
            if body["action"] in actions and self._time(body) < start:
                last[(body["action"], body["resource"]["name"], body["resource"].get("uid", ""))] = record.seq
        keep = set(last.values())
        for record in self.rows:
            body = json.loads(record.canonical)
            if body["action"] in actions and (record.seq in keep or start <= self._time(body) < end):
                yield record.seq, record.canonical, record.prev_hash, record.record_hash

    def compliance_before(self, tenants: Sequence[str], start: datetime) -> Iterator[tuple[int, bytes, bytes, bytes]]:
        last: dict[tuple[str, str], int] = {}
        for record in self.rows:
            body = json.loads(record.canonical)
            if body["action"] == "compliance-state" and body["tenant"] in tenants and self._time(body) < start:
                last[body["resource"].get("uid", ""), body["tenant"]] = record.seq
        keep = set(last.values())
        return self._rows(lambda b: b["seq"] in keep)

    def last_seq_before(self, end: datetime) -> int:
        return max((r.seq for r in self.rows if self._time(json.loads(r.canonical)) < end), default=0)

    def signed_heads(self) -> list[SignedHead]:
        return list(self.heads)

    def nodes(self, keys: Sequence[merkle.NodeKey]) -> dict[merkle.NodeKey, bytes]:
        return self.get_many(keys)


class FakeReports:
    """OpenReports as ``app.Reports`` writes them: applied only when the digest annotation moved."""

    def __init__(self, installed: bool = True) -> None:
        self.present = installed
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes = 0

    def installed(self, *, recheck: bool = False) -> bool:
        return self.present

    def write(self, report: dict[str, Any]) -> bool:
        meta = report["metadata"]
        key = (meta["namespace"], meta["name"])
        current = self.objects.get(key)
        digest = "privatevault.io/report-digest"
        if current is not None and current["metadata"]["annotations"][digest] == meta["annotations"][digest]:
            return False
        self.objects[key] = copy.deepcopy(report)
        self.writes += 1
        return True

    def delete(self, name: str, namespace: str) -> None:
        self.objects.pop((namespace, name), None)
