"""The read API's ledger queries on the real PostgreSQL: filtered pages return exactly the
matching records in order, and a record's proof from the tiles read for it equals the store's."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from privatevault.database import open_pool
from privatevault.ledger import Event, ResourceRef, merkle, tiles
from privatevault.ledger.reader import PageQuery, Reader
from privatevault.ledger.schema import Database
from privatevault.ledger.store import Ledger
from privatevault.ledger.tiles import ProofTiles

pytestmark = pytest.mark.integration


def event(n: int, tenant: str, action: str) -> Event:
    return Event(
        tenant=tenant,
        actor="test",
        action=action,
        resource=ResourceRef(kind="Namespace", name=f"ns-{n}"),
        outcome="intended",
        idempotency_key=f"reader/{n}",
    )


def test_pages_and_proofs(ledger: Ledger, database: Database) -> None:
    for n in range(30):
        ledger.append(event(n, ("acme", "globex", "")[n % 3], ("create", "update")[n % 2]))
    pool = open_pool(database.operator_dsn, max_size=2)
    try:
        reader = Reader(pool)
        everything = [json.loads(r.canonical) for r in ledger.records()]

        def seqs(query: PageQuery) -> list[int]:
            return [r.seq for r in reader.page(query)]

        assert seqs(PageQuery(limit=100)) == list(range(1, 31))
        assert seqs(PageQuery(tenant="acme", limit=100)) == [b["seq"] for b in everything if b["tenant"] == "acme"]
        assert seqs(PageQuery(tenant="globex", action="update", limit=100)) == [
            b["seq"] for b in everything if b["tenant"] == "globex" and b["action"] == "update"
        ]
        assert seqs(PageQuery(start=5, end=9, limit=100)) == [5, 6, 7, 8, 9]
        assert seqs(PageQuery(start=5, limit=3)) == [5, 6, 7]
        now = datetime.now(UTC)
        assert seqs(PageQuery(since=now + timedelta(hours=1), limit=100)) == []
        assert seqs(PageQuery(since=now - timedelta(hours=1), until=now + timedelta(hours=1), limit=100)) == list(
            range(1, 31)
        )
        assert reader.page(PageQuery(start=7, limit=1))[0] == ledger.record(7)

        size = ledger.size()
        root = ledger.root(size)
        proofs = ProofTiles()
        assert proofs.proof(0, size) is None  # nothing read yet
        for seq in (1, 13, 30):
            found = proofs.proof(seq - 1, size, tiles.read(reader, proofs.missing(seq - 1, size)))
            assert found is not None
            record = ledger.record(seq)
            assert record is not None and found.hashes == ledger.inclusion_proof(seq, size)
            assert found.leaf_hash == merkle.leaf_hash(record.record_hash)
            assert found.tenant == json.loads(record.canonical)["tenant"]
            assert merkle.verify_inclusion(found.leaf_hash, seq - 1, size, found.hashes, root)
        # Beyond the records: the tile holds what is stored, and nothing to prove leaf 31 with.
        beyond = reader.tile(0, 0)
        assert beyond.counts[0] == 30 and len(beyond.tenants) == 30
        assert ProofTiles().proof(30, 31, {(0, 0): beyond}) is None
    finally:
        pool.close()
