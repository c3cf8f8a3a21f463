"""Tamper and fault tests on a real PostgreSQL, as its superuser: a changed, removed, swapped or
inserted record is caught and named, a careful attacker who recomputes every hash is caught by the
published checkpoint and gets no checkpoint signed over the rewrite, a wrong or missing Merkle node
off the frontier is named, a verifier that remembers refuses a rollback and a fork, proofs from the
store verify, and a PostgreSQL restart or eight concurrent writer processes leave one valid chain."""

from __future__ import annotations

import multiprocessing
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey

from privatevault.errors import LedgerUnavailable
from privatevault.ledger import libpq, merkle, record_hash
from privatevault.ledger.checkpoint import LocalSigner, parse_and_verify, sign_checkpoint
from privatevault.ledger.checkpointer import Checkpointer, CheckpointRefused
from privatevault.ledger.event import canonical
from privatevault.ledger.integrity import Incident, Integrity, Refusal
from privatevault.ledger.integrity import Published as Publication
from privatevault.ledger.schema import Database
from privatevault.ledger.store import Ledger, StoredCheckpoint
from privatevault.ledger.verify import verify
from privatevault.testbench import Bench
from tests.support import rewrite_history, superuser
from tests.unit.fakes import ledger_event

pytestmark = pytest.mark.integration

ORIGIN = "privatevault.io/test-ledger"


class Published:
    """The checkpoints as published outside the database (the ConfigMap in production)."""

    def __init__(self) -> None:
        self.notes: list[StoredCheckpoint] = []

    def read(self) -> Publication:
        return Publication(self.latest if self.notes else None)

    def publish(self, checkpoint: StoredCheckpoint) -> None:
        if not self.notes or checkpoint.size > self.notes[-1].size:
            self.notes.append(checkpoint)

    @property
    def latest(self) -> bytes:
        return self.notes[-1].note


class Alarm:
    """What the checkpointer raised (the composition root logs, raises an Event, sets a condition)."""

    def __init__(self) -> None:
        self.refusals: list[Refusal] = []
        self.incidents: list[Incident] = []

    def refused(self, refusal: Refusal, integrity: Integrity) -> None:
        self.refusals.append(refusal)

    def resolved(self, incident: Incident) -> None:
        self.incidents.append(incident)

    def signed(self, checkpoint: StoredCheckpoint) -> None:
        pass


def checkpointer(ledger: Ledger, signers: list[LocalSigner], published: Published) -> Checkpointer:
    return Checkpointer(ledger, signers, origin=ORIGIN, publication=published, alarm=Alarm())


@pytest.fixture
def signers() -> list[LocalSigner]:
    return [LocalSigner(ORIGIN, Ed25519PrivateKey.generate()), LocalSigner(ORIGIN, MLDSA65PrivateKey.generate())]


@pytest.fixture
def filled(ledger: Ledger, signers: list[LocalSigner]) -> tuple[Ledger, Published]:
    """60 records with checkpoints at 20, 40 and 60, each published."""
    published = Published()
    issuer = checkpointer(ledger, signers, published)
    for block in range(3):
        ledger.append_many([ledger_event(f"k{block}-{i}") for i in range(20)])
        issuer.issue()
    return ledger, published


def check(ledger: Ledger, signers: list[LocalSigner], published: Published) -> tuple[int | None, str | None]:
    report = verify(ledger, verifiers=[s.verifier for s in signers], published=published.latest)
    return report.first_bad_seq, report.problem


def test_intact_ledger_verifies_and_proves(filled: tuple[Ledger, Published], signers: list[LocalSigner]) -> None:
    ledger, published = filled
    assert check(ledger, signers, published) == (None, None)
    roots = {c.size: c.root for c in published.notes}
    leaves = [merkle.leaf_hash(r.record_hash) for r in ledger.records()]
    assert roots[60] == merkle.root([r.record_hash for r in ledger.records()]) == ledger.root(60)
    for seq in (1, 17, 40, 60):
        assert merkle.verify_inclusion(leaves[seq - 1], seq - 1, 60, ledger.inclusion_proof(seq, 60), roots[60])
    assert merkle.verify_consistency(20, 60, roots[20], roots[60], ledger.consistency_proof(20, 60))


def test_changed_bytes_fail_at_that_record(
    bench: Bench, database: Database, filled: tuple[Ledger, Published], signers: list[LocalSigner]
) -> None:
    ledger, published = filled
    with superuser(bench, database) as conn:
        conn.execute(
            "UPDATE audit_records SET canonical ="
            " convert_to(replace(convert_from(canonical, 'UTF8'), 'acme', 'evil'), 'UTF8') WHERE seq = 33"
        )
    seq, problem = check(ledger, signers, published)
    assert seq == 33 and problem is not None and "record hash" in problem
    # The COPY stopped at record 33 was cancelled and its connection went back to the pool clean.
    assert check(ledger, signers, published) == (seq, problem) and ledger.size() == 60


@pytest.mark.parametrize("reader", ["libpq", "python"])
def test_the_compiled_pass_reads_the_rows_from_psycopgs_libpq(  # noqa: PLR0917 (fixtures)
    bench: Bench,
    database: Database,
    filled: tuple[Ledger, Published],
    signers: list[LocalSigner],
    reader: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On psycopg's own connection and libpq; and when that libpq is not found, the rows are read
    in Python instead, with the same answers."""
    ledger, published = filled
    if reader == "python":
        monkeypatch.setattr(libpq, "copy_functions", lambda conn: None)
    with ledger.record_copy(1, 60) as copy:
        assert (copy.native() is not None) == (reader == "libpq")
    assert check(ledger, signers, published) == (None, None)
    with superuser(bench, database) as conn:
        conn.execute("UPDATE audit_records SET prev_hash = record_hash WHERE seq = 41")
    assert check(ledger, signers, published) == (41, "previous hash does not match the record before it")
    with superuser(bench, database) as conn:
        conn.execute("DELETE FROM audit_records WHERE seq > 50")
    assert (
        check(ledger, signers, published)[1]
        == "records 51..60 are missing: the published checkpoint covers 60 records, the ledger holds 50"
    )


def test_careful_attacker_is_caught_by_the_published_checkpoint(
    bench: Bench, database: Database, filled: tuple[Ledger, Published], signers: list[LocalSigner]
) -> None:
    ledger, published = filled
    rewrite_history(bench, database, 25)
    # Without the published checkpoint the forgery is self-consistent ...
    inside = verify(ledger, verifiers=[s.verifier for s in signers])
    assert inside.ok, inside.problem
    # ... with it, it is caught.
    seq, problem = check(ledger, signers, published)
    assert problem is not None and "do not match the published checkpoint" in problem
    assert seq == 1  # no trusted checkpoint survived: everything up to the published size is suspect


def test_careful_attacker_gets_no_checkpoint_signed_over_the_rewrite(
    bench: Bench, database: Database, filled: tuple[Ledger, Published], signers: list[LocalSigner]
) -> None:
    ledger, published = filled
    running = checkpointer(ledger, signers, published)
    running.issue()
    rewrite_history(bench, database, 25)
    ledger.append_many([ledger_event(f"after-{i}") for i in range(5)])  # the operator keeps writing
    for issuer in (running, checkpointer(ledger, signers, published)):  # and after a restart
        with pytest.raises(CheckpointRefused) as refused:
            issuer.issue()
        assert refused.value.refusal.reason == "InconsistentWithPublished"
        assert (refused.value.refusal.tree_size, refused.value.refusal.published_size) == (65, 60)
    assert ledger.checkpoints() == []
    assert [c.size for c in published.notes] == [20, 40, 60]
    assert check(ledger, signers, published)[1] is not None  # and `pvctl audit verify` keeps failing


def test_a_wrong_or_missing_node_off_the_frontier_is_named(
    bench: Bench, database: Database, filled: tuple[Ledger, Published], signers: list[LocalSigner]
) -> None:
    ledger, published = filled
    head, good = ledger.root(60), ledger.nodes([(1, 3)])[(1, 3)]
    with superuser(bench, database) as conn:
        conn.execute("UPDATE merkle_nodes SET hash = %s WHERE level = 1 AND idx = 3", (bytes(32),))
    assert ledger.root(60) == head  # the head the verifier used to check is unchanged
    _, problem = check(ledger, signers, published)
    assert problem == (
        "stored Merkle node (level 1, index 3) over records 7..8 does not match the records:"
        " proofs served from it would be wrong"
    )
    with superuser(bench, database) as conn:
        conn.execute("UPDATE merkle_nodes SET hash = %s WHERE level = 1 AND idx = 3", (good,))
        conn.execute("DELETE FROM merkle_nodes WHERE level = 2 AND idx = 11")
    _, problem = check(ledger, signers, published)
    assert problem is not None and problem.startswith(
        "stored Merkle node (level 2, index 11) over records 45..48 is missing"
    )


def test_a_verifier_that_remembers_refuses_a_rollback_and_a_fork(
    bench: Bench, database: Database, filled: tuple[Ledger, Published], signers: list[LocalSigner]
) -> None:
    ledger, published = filled
    verifiers = [s.verifier for s in signers]
    remembered = parse_and_verify(published.latest, verifiers)  # what it accepted at 60
    rolled_back = published.notes[0].note  # someone puts the checkpoint at 20 back in the ConfigMap
    report = verify(ledger, verifiers=verifiers, published=rolled_back, remembered=remembered)
    assert report.problem == (
        "the published checkpoint at size 20 is older than the checkpoint at size 60 this verifier remembers:"
        " a rollback"
    )
    assert verify(ledger, verifiers=verifiers, published=rolled_back).ok  # a verifier without memory is fooled
    rewrite_history(bench, database, 25)
    fork = sign_checkpoint(ORIGIN, 60, ledger.root(60), signers)  # signed over the rewrite by a restarted operator
    report = verify(ledger, verifiers=verifiers, published=fork, remembered=remembered)
    assert report.problem is not None and report.problem.startswith(
        "the published checkpoint at size 60 is not provably consistent with the checkpoint at size 60"
        " this verifier remembers: a fork"
    )


def test_deleted_last_records_are_caught(
    bench: Bench, database: Database, filled: tuple[Ledger, Published], signers: list[LocalSigner]
) -> None:
    ledger, published = filled
    with superuser(bench, database) as conn:
        conn.execute("DELETE FROM audit_records WHERE seq > 55")
    seq, problem = check(ledger, signers, published)
    assert seq == 56 and problem is not None and "records 56..60 are missing" in problem


def test_swapped_records_are_caught(
    bench: Bench, database: Database, filled: tuple[Ledger, Published], signers: list[LocalSigner]
) -> None:
    ledger, published = filled
    with superuser(bench, database) as conn:
        conn.execute("UPDATE audit_records SET seq = seq + 1000000 WHERE seq IN (10, 11)")
        conn.execute("UPDATE audit_records SET seq = 11 WHERE seq = 1000010")
        conn.execute("UPDATE audit_records SET seq = 10 WHERE seq = 1000011")
    seq, problem = check(ledger, signers, published)
    assert seq == 10 and problem is not None


def test_inserted_record_is_caught(
    bench: Bench, database: Database, filled: tuple[Ledger, Published], signers: list[LocalSigner]
) -> None:
    ledger, published = filled
    with superuser(bench, database) as conn:
        for seq in range(60, 29, -1):
            conn.execute("UPDATE audit_records SET seq = seq + 1 WHERE seq = %s", (seq,))
        body = canonical(ledger_event("forged").body(seq=30, time=__import__("datetime").datetime.now()))
        prev = conn.execute("SELECT record_hash FROM audit_records WHERE seq = 29").fetchone()
        assert prev is not None
        conn.execute(
            "INSERT INTO audit_records (seq, recorded_at, tenant, actor, action, resource_kind, resource_name,"
            " outcome, canonical, prev_hash, record_hash, idempotency_key)"
            " VALUES (30, now(), 'acme', 'test', 'forged', 'X', 'x', 'intended', %s, %s, %s, 'forged')",
            (body, prev[0], record_hash(bytes(prev[0]), body)),
        )
    seq, problem = check(ledger, signers, published)
    assert seq == 31 and problem is not None and "previous hash" in problem


def test_no_checkpoint_is_issued_over_a_rewritten_tree(
    bench: Bench, database: Database, filled: tuple[Ledger, Published], signers: list[LocalSigner]
) -> None:
    ledger, published = filled
    ledger.append(ledger_event("after"))
    with superuser(bench, database) as conn:
        conn.execute("UPDATE merkle_nodes SET hash = %s WHERE level = 5 AND idx = 0", (bytes(32),))
    with pytest.raises(CheckpointRefused, match="not consistent with the published checkpoint at size 60"):
        checkpointer(ledger, signers, published).issue()


def test_postgres_restart_during_appends_loses_nothing(bench: Bench, database: Database) -> None:
    acknowledged: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        ledger = Ledger(database.operator_dsn, connect_timeout=2)
        n = 0
        while not stop.is_set():
            key = f"restart-{n}"
            try:
                ledger.append(ledger_event(key))
            except LedgerUnavailable:
                continue  # the handler retries with the same key
            acknowledged.append(key)
            n += 1
        ledger.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(acknowledged) < 200:
            threading.Event().wait(0.01)
        bench.postgres.restart()
        count = len(acknowledged)
        while len(acknowledged) < count + 200:
            threading.Event().wait(0.01)
    finally:
        stop.set()
        thread.join(60)
    ledger = Ledger(database.operator_dsn)
    keys = [r.idempotency_key for r in ledger.records()]
    report = verify(ledger, verifiers=[LocalSigner(ORIGIN, Ed25519PrivateKey.generate()).verifier])
    ledger.close()
    assert report.ok, report.problem
    assert len(keys) == len(set(keys))
    assert set(acknowledged) <= set(keys)


def _writer(dsn: str, worker: int, count: int, batch: int) -> None:
    ledger = Ledger(dsn)
    for start in range(0, count, batch):
        ledger.append_many([ledger_event(f"w{worker}-{i}", tenant=f"t{worker}") for i in range(start, start + batch)])
    ledger.close()


def test_eight_writer_processes_build_one_chain(database: Database, signers: list[LocalSigner]) -> None:
    workers, each, batch = 8, 5000, 25
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_writer, args=(database.operator_dsn, w, each, batch)) for w in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(300)
        assert process.exitcode == 0
    ledger = Ledger(database.operator_dsn)
    published = Published()
    checkpointer(ledger, signers, published).issue()
    report = verify(ledger, verifiers=[s.verifier for s in signers], published=published.latest)
    ledger.close()
    assert report.ok, report.problem
    assert report.records == workers * each


def test_incremental_verification_from_a_trusted_checkpoint(
    bench: Bench, database: Database, filled: tuple[Ledger, Published], signers: list[LocalSigner]
) -> None:
    ledger, published = filled
    verifiers = [s.verifier for s in signers]
    trusted = parse_and_verify(published.notes[1].note, verifiers)  # the checkpoint at 40
    report = verify(ledger, verifiers=verifiers, published=published.latest, trusted=trusted)
    assert report.ok and report.verified_from == 41
    with superuser(bench, database) as conn:
        conn.execute("UPDATE audit_records SET canonical = canonical || '\\x20'::bytea WHERE seq = 52")
    report = verify(ledger, verifiers=verifiers, published=published.latest, trusted=trusted)
    assert report.first_bad_seq == 52
