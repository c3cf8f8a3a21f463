"""The ledger on a real PostgreSQL: appends chain and verify, retries are idempotent, records
cannot be changed (triggers and privileges), concurrent writer processes build one chain, and an
unreachable database fails closed."""

from __future__ import annotations

import dataclasses
import multiprocessing

import psycopg
import pytest

from privatevault.errors import LedgerUnavailable
from privatevault.ledger import GENESIS, Event, ResourceRef, appendrows, tenantchain, verify_chain
from privatevault.ledger.schema import Database, _alembic, migrate
from privatevault.ledger.store import Ledger
from privatevault.ledger.verify import verify
from privatevault.testbench.ports import free_port

pytestmark = pytest.mark.integration


def event(key: str, tenant: str = "acme") -> Event:
    return Event(
        tenant=tenant,
        actor="test",
        action="create-namespace",
        outcome="intended",
        resource=ResourceRef(kind="Namespace", name=f"ns-{key}"),
        idempotency_key=key,
        details={"digest": "sha256:" + "0" * 64},
    )


def test_appends_chain_and_verify(ledger: Ledger) -> None:
    written = [ledger.append(event(f"k{i}", tenant="acme" if i % 2 else "globex")) for i in range(50)]
    assert [r.seq for r in written] == list(range(1, 51))
    assert verify_chain(ledger.records()) is None
    assert [r.seq for r in ledger.records(tenant="globex")] == list(range(1, 51, 2))


def test_each_tenant_has_its_own_chain_across_batches(ledger: Ledger) -> None:
    ledger.append(event("t0", tenant="acme"))
    ledger.append_many([event(f"t{i}", tenant="acme" if i % 3 else "globex") for i in range(1, 40)])
    ledger.append(event("cluster-wide", tenant=""))
    for tenant in ("acme", "globex"):
        records = list(ledger.records(tenant=tenant))
        links = [tenantchain.of(r.canonical) for r in records]
        assert [link[0] for link in links if link] == list(range(1, len(records) + 1))
        previous = [GENESIS] + [r.record_hash for r in records[:-1]]
        assert [link[1] for link in links if link] == previous
    [unlinked] = [r for r in ledger.records() if r.idempotency_key == "cluster-wide"]
    assert tenantchain.of(unlinked.canonical) is None


def test_retried_append_returns_the_original(ledger: Ledger) -> None:
    first = ledger.append(event("same"))
    ledger.append(event("other"))
    again = ledger.append(event("same"))
    assert again == first
    assert len(list(ledger.records())) == 2


@pytest.mark.parametrize("size", [5, 100])  # through INSERTs and through COPY
def test_a_batch_with_keys_written_before_writes_only_the_new_ones(ledger: Ledger, size: int) -> None:
    """The writer does not look keys up first: a key already there fails the insert, and the batch
    is written again with the look-up; a key twice in one batch is written once."""
    before = ledger.append_many([event(f"old{i}") for i in range(size)])
    batch = [event(f"new{i}") if i % 2 else event(f"old{i}") for i in range(size)] + [event("new1")]
    written = ledger.append_many(batch)
    assert [r for r in written if r.idempotency_key.startswith("old")] == before[::2]
    new = [r for r in written if r.idempotency_key.startswith("new")]
    assert [r.seq for r in new[:-1]] == list(range(size + 1, size + 1 + size // 2))
    assert new[-1] == new[0]
    assert ledger.size() == size + size // 2
    assert verify_chain(ledger.records()) is None


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_records SET tenant = 'mallory'",
        "DELETE FROM audit_records",
        "TRUNCATE audit_records",
    ],
)
def test_owner_cannot_change_records(database: Database, ledger: Ledger, statement: str) -> None:
    ledger.append(event("k1"))
    with psycopg.connect(database.owner_dsn) as conn, pytest.raises(psycopg.Error, match="append-only"):
        conn.execute(statement)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_records SET tenant = 'mallory'",
        "DELETE FROM audit_records",
        "TRUNCATE audit_records",
        "DROP TRIGGER audit_records_no_update ON audit_records",
    ],
)
def test_operator_role_is_refused_by_privileges(database: Database, ledger: Ledger, statement: str) -> None:
    ledger.append(event("k1"))
    with psycopg.connect(database.operator_dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


def _writer(dsn: str, worker: int, count: int) -> None:
    ledger = Ledger(dsn)
    for i in range(count):
        ledger.append(event(f"w{worker}-{i}", tenant=f"t{worker}"))
    ledger.close()


def test_concurrent_writer_processes_build_one_chain(database: Database) -> None:
    workers, each = 4, 150
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_writer, args=(database.operator_dsn, w, each)) for w in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    ledger = Ledger(database.operator_dsn)
    records = list(ledger.records())
    ledger.close()
    assert len(records) == workers * each
    assert verify_chain(records) is None


def test_unreachable_database_fails_closed() -> None:
    ledger = Ledger(f"postgresql://nobody:x@127.0.0.1:{free_port()}/none", connect_timeout=1)
    with pytest.raises(LedgerUnavailable, match="cannot be written"):
        ledger.append(event("k"))


def test_migrations_are_idempotent_and_reach_the_newest_revision(database: Database) -> None:
    role = psycopg.conninfo.conninfo_to_dict(database.operator_dsn)["user"]
    assert migrate(database.owner_dsn, operator_role=str(role)) == "0005"
    assert migrate(database.owner_dsn, operator_role=str(role)) == "0005"


def _verified(ledger: Ledger) -> None:
    """The whole ledger verifies (chain, every stored Merkle node) and each tenant's chain links up."""
    report = verify(ledger, verifiers=[])
    assert report.ok, report.problem
    tenants = {r.idempotency_key.split("/")[0] for r in ledger.records()} - {""}
    for tenant in tenants:
        records = list(ledger.records(tenant=tenant))
        links = [tenantchain.of(r.canonical) for r in records]
        assert [link[0] for link in links if link] == list(range(1, len(records) + 1))
        assert [link[1] for link in links if link] == [GENESIS] + [r.record_hash for r in records[:-1]]


@pytest.mark.parametrize("engine", ["c", "python"])
def test_writers_that_take_turns_read_the_head_the_other_left(
    database: Database, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer keeps the chain head, Merkle frontier and tenant heads of its last commit; another
    writer appending in between must make it read them again, through COPY and INSERT batches
    (with the writer's C extension and with its pure-Python twin)."""
    if engine == "python":
        monkeypatch.setattr(appendrows, "records", appendrows.records_py)
        monkeypatch.setattr(appendrows, "nodes", appendrows.nodes_py)
    else:
        assert appendrows.ENGINE == "c"
    first, second = Ledger(database.operator_dsn), Ledger(database.operator_dsn)
    try:
        for turn, size in enumerate([100, 3, 64, 1, 40, 100, 2]):
            writer = first if turn % 2 == 0 else second
            tenants = ("acme", "globex", "")  # "": a record of no tenant
            writer.append_many([event(f"{tenants[i % 3]}/{turn}-{i}", tenant=tenants[i % 3]) for i in range(size)])
        assert first.size() == 310
        _verified(first)
    finally:
        first.close()
        second.close()


def test_a_failed_batch_leaves_no_head_behind(ledger: Ledger) -> None:
    """A batch PostgreSQL refuses in its COPY (a NUL in a text column), after the writer has
    advanced its chain, tree and tenant heads in memory, is rolled back whole; the next batch goes
    on from the head that was committed, not from the refused one's."""
    ledger.append_many([event(f"acme/a{i}") for i in range(50)])
    refused = dataclasses.replace(event("acme/b-nul"), actor="te\x00st")
    with pytest.raises(psycopg.errors.CharacterNotInRepertoire):
        ledger.append_many([event(f"acme/b{i}") for i in range(49)] + [refused])
    assert ledger.size() == 50
    ledger.append_many([event(f"acme/c{i}") for i in range(50)])
    ledger.append(event("acme/d"))
    assert ledger.size() == 101
    _verified(ledger)


def test_records_written_before_migration_0005_verify_and_keys_stay_unique(database: Database) -> None:
    """0005 drops two indexes and replaces the key's two; a ledger written before keeps verifying,
    a retried key still returns its first record, and the key-prefix search still finds it."""
    role = str(psycopg.conninfo.conninfo_to_dict(database.operator_dsn)["user"])
    import sqlalchemy  # noqa: PLC0415 - only this test migrates down
    from alembic import command  # noqa: PLC0415

    engine = sqlalchemy.create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(database.owner_dsn), poolclass=sqlalchemy.NullPool
    )
    with engine.begin() as connection:
        command.downgrade(_alembic(connection), "0004")
    engine.dispose()
    ledger = Ledger(database.operator_dsn)
    try:
        before = ledger.append_many([event(f"acme/old{i}") for i in range(100)])
        assert migrate(database.owner_dsn, operator_role=role) == "0005"
        assert ledger.append(event("acme/old7")) == before[7]
        ledger.append_many([event(f"acme/new{i}") for i in range(100)])
        assert [r.idempotency_key for r in ledger.find("acme/old1")] == [
            "acme/old1",
            *(f"acme/old1{i}" for i in range(10)),
        ]
        _verified(ledger)
    finally:
        ledger.close()
    with psycopg.connect(database.owner_dsn) as conn:
        indexes = {row[0] for row in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'audit_records'")}
        conn.execute("SET enable_seqscan = off")  # whether the index can serve them, whatever the table's size
        plans = [
            " ".join(row[0] for row in conn.execute(query).fetchall())
            for query in (
                "EXPLAIN SELECT 1 FROM audit_records WHERE idempotency_key LIKE 'acme/old1%'",
                "EXPLAIN SELECT 1 FROM audit_records WHERE idempotency_key = ANY(ARRAY['acme/old1'])",
            )
        ]
    assert indexes == {"audit_records_pkey", "audit_records_tenant_seq", "audit_records_idempotency_key"}
    assert all("Index" in plan and "audit_records_idempotency_key" in plan for plan in plans), plans
