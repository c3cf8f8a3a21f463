"""Small in-memory stand-ins for the cluster and the ledger ports (unit tests only)."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime
from typing import Any

from privatevault.errors import LedgerUnavailable
from privatevault.ledger import GENESIS, Event, Record, record_hash
from privatevault.ledger.event import canonical


class FakeCluster:
    """Stores objects by (kind, namespace, name); apply replaces the object wholesale."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.applies: list[tuple[str, str | None, str]] = []
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
