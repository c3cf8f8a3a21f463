"""The evidence bundle's reads on a real PostgreSQL: a section's COPY in batches gives the rows
whatever the batch size (and ends cleanly however many there are), node runs come back in the
order asked and name what is missing, and a section written from PostgreSQL has the same bytes
as the same section written from the rows as tuples (compressed as it was written), every
proof verifying against the root."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from privatevault.database import open_pool
from privatevault.evidence import layout, store, writer
from privatevault.evidence.store import PgEvidenceSource
from privatevault.ledger import Event, ResourceRef, merkle
from privatevault.ledger.schema import bootstrap
from privatevault.ledger.store import Ledger
from privatevault.testbench import Postgres

pytestmark = pytest.mark.integration

RECORDS = 300


def event(n: int) -> Event:
    return Event(
        tenant="globex" if n % 7 == 0 else "acme",
        actor="test",
        action="update-resourcequota",
        outcome="intended",
        resource=ResourceRef(kind="ResourceQuota", name="q", namespace="ns"),
        idempotency_key=f"k{n}",
        details={"n": n},
    )


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgEvidenceSource]:
    postgres = Postgres(tmp_path_factory.mktemp("evidence-pg"))
    postgres.start()
    try:
        database = bootstrap(postgres.superuser_dsn)
        pool = open_pool(database.operator_dsn, max_size=3)
        ledger = Ledger(pool=pool)
        ledger.append_many([event(n) for n in range(RECORDS)])
        yield PgEvidenceSource(pool, ledger)
        pool.close()
    finally:
        postgres.stop()


def inflate(segment: bytes) -> bytes:
    """A segment's bytes (raw deflate, flushed, no final block: the middle of a gzip stream)."""
    return zlib.decompressobj(-zlib.MAX_WBITS).decompress(segment)


def window() -> tuple[datetime, datetime]:
    return datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(days=1)


@pytest.mark.parametrize("batch", [1, 7, 4096])
def test_copy_batches_give_every_row_whatever_the_batch(
    source: PgEvidenceSource, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "BATCH", batch)
    rows = list(source.tenant_records("globex", *window()))
    assert [row[0] for row in rows] == [n + 1 for n in range(RECORDS) if n % 7 == 0]
    assert all(b'"tenant":"globex"' in body and len(prev) == len(digest) == 32 for _, body, prev, digest in rows)
    assert list(source.tenant_records("nobody", *window())) == []
    # The connection goes back clean when a reader stops early: the next read works.
    first = source.tenant_records("acme", *window())
    assert isinstance(first, store.CopyRows)
    assert next(first)[0] == 2
    first.close()
    assert len(list(source.tenant_records("acme", *window()))) == RECORDS - len(rows)


def test_node_runs_in_the_order_asked_and_missing_ones_named(source: PgEvidenceSource) -> None:
    runs = [(0, 10, 14), (0, 2, 3), (3, 0, 4), (1, 40, 41)]
    keys = [(level, index) for level, lo, hi in runs for index in range(lo, hi)]
    nodes = source.nodes(keys)
    assert source.node_runs(runs) == b"".join(nodes[key] for key in keys)
    assert source.node_runs([]) == b""
    with pytest.raises(merkle.MissingNodes, match=r"\(level 0, index 300\)"):
        source.node_runs([(0, 298, 301)])


def test_a_section_from_postgres_equals_one_from_tuples(source: PgEvidenceSource, tmp_path: Path) -> None:
    size = RECORDS
    root = merkle.tree_root(size, writer._SourceNodes(source))
    rows = list(source.tenant_records("acme", *window()))
    written = []
    for name, given in (("pg", source.tenant_records("acme", *window())), ("tuples", iter(rows))):
        records, proofs = tmp_path / name / "records.jsonl", tmp_path / name / "proofs.jsonl"
        section = writer.write_section(source, given, size, records, proofs)
        assert section.count == len(rows)
        written.append((records.read_bytes(), proofs.read_bytes()))
    assert written[0] == written[1]
    proof_lines = inflate(written[0][1])
    assert hashlib.sha256(proof_lines).hexdigest() == section.proofs.sha256
    assert b"".join(row[1] + b"\n" for row in rows) == inflate(written[0][0])
    for line in proof_lines.splitlines():
        proof = layout.ProofLine.parse(line)
        assert merkle.verify_inclusion(merkle.leaf_hash(proof.record_hash), proof.seq - 1, size, proof.proof, root)


def test_every_query_of_the_source_runs_on_postgres(tmp_path: Path) -> None:
    """Each section's query, on a ledger with compliance records: the fakes of the unit tests
    cannot see SQL (a query with a placeholder COPY cannot bind was once only caught end to end)."""
    postgres = Postgres(tmp_path / "pg")
    postgres.start()
    try:
        database = bootstrap(postgres.superuser_dsn)
        pool = open_pool(database.operator_dsn, max_size=3)
        ledger = Ledger(pool=pool)

        def compliance(tenant: str, n: int) -> Event:
            return Event(
                tenant=tenant,
                actor="test",
                action="compliance-state",
                outcome="intended",
                resource=ResourceRef(kind="ComplianceFramework", name="soc2", uid="uid-1"),
                idempotency_key=f"complianceframework/uid-1/compliance-state/{tenant}-{n}",
                details={"n": n},
            )

        written = ledger.append_many([event(1), compliance("acme", 1), compliance("acme", 2), compliance("globex", 1)])
        source = PgEvidenceSource(pool, ledger)
        start, end = window()
        later = end + timedelta(days=1)
        assert [row[0] for row in source.compliance_before(["acme"], later)] == [written[2].seq]  # the last one of acme
        assert {row[0] for row in source.compliance_before(["acme", "globex"], later)} == {
            written[2].seq,
            written[3].seq,
        }
        assert list(source.compliance_before(["acme"], start)) == []
        assert [row[0] for row in source.tenant_records("globex", start, end)] == [written[3].seq]
        assert len(list(source.action_records(["compliance-state"], ["acme"], start, end))) == 2
        assert list(source.in_force_records(["tenant-gate-in-force"], start, end)) == []
        assert [row[0] for row in source.boundaries("acme", later, later)] == [written[2].seq]
        assert source.last_seq_before(later) == written[-1].seq
        pool.close()
    finally:
        postgres.stop()
