"""The hash chain catches a changed, removed, reordered or inserted record and names where."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from privatevault.ledger import Event, Record, ResourceRef, record_hash, verify_chain
from privatevault.ledger.chain import GENESIS
from privatevault.ledger.event import canonical


def build(n: int) -> list[Record]:
    out: list[Record] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        event = Event(
            tenant="t",
            actor="a",
            action="create-namespace",
            outcome="intended",
            resource=ResourceRef(kind="Namespace", name=f"ns-{seq}"),
            idempotency_key=f"k{seq}",
        )
        body = canonical(event.body(seq=seq, time=datetime(2026, 1, 1, tzinfo=UTC)))
        digest = record_hash(prev, body)
        out.append(Record(seq=seq, canonical=body, prev_hash=prev, record_hash=digest, idempotency_key=f"k{seq}"))
        prev = digest
    return out


def test_intact_chain_verifies() -> None:
    assert verify_chain(build(20)) is None


def test_canonical_bytes_are_rfc8785() -> None:
    assert canonical({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'.encode()


def test_changed_bytes_fail_at_that_record() -> None:
    records = build(10)
    body = json.loads(records[4].canonical) | {"tenant": "mallory"}
    records[4] = records[4]._replace(canonical=canonical(body))
    broken = verify_chain(records)
    assert broken is not None and broken.seq == 5 and "hash" in broken.problem


def test_removed_record_is_a_gap() -> None:
    records = build(10)
    del records[6]
    broken = verify_chain(records)
    assert broken is not None and broken.seq == 7 and "gap" in broken.problem


def test_swapped_records_fail() -> None:
    records = build(10)
    records[2], records[3] = records[3], records[2]
    broken = verify_chain(records)
    assert broken is not None and broken.seq == 3


@pytest.mark.parametrize("position", [0, 5, 9])
def test_relinked_forgery_is_caught_by_seq_inside_the_bytes(position: int) -> None:
    # An attacker renumbers records but cannot change the seq hashed inside them without breaking the hash.
    records = build(10)
    forged = records[position]._replace(seq=records[position].seq + 100)
    records[position] = forged
    assert verify_chain(records) is not None
