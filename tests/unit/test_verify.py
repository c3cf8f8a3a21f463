"""The verifier checks every stored Merkle node, not only the head: a wrong or missing node anywhere
is named with the records it covers, in every batch; and a verifier that remembers refuses a
published checkpoint older than (rollback) or not consistent with (fork) the one it remembers,
naming both sizes, and remembers only what verified, in a file it checks again on every read."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privatevault.ledger import merkle, recompute
from privatevault.ledger import verify as verify_module
from privatevault.ledger.checkpoint import Checkpoint, CheckpointError, LocalSigner, parse_and_verify, sign_checkpoint
from privatevault.ledger.remembered import RememberedCheckpoint, default_path
from privatevault.ledger.store import StoredCheckpoint
from privatevault.ledger.verify import Report, verify

from .fakes import MemoryLedger

ORIGIN = "privatevault.io/test"


@pytest.fixture
def signer() -> LocalSigner:
    return LocalSigner(ORIGIN, Ed25519PrivateKey.generate())


def note(ledger: MemoryLedger, signer: LocalSigner, size: int | None = None) -> bytes:
    size = len(ledger.rows) if size is None else size
    return sign_checkpoint(ORIGIN, size, ledger.root(size), [signer])


def checkpoint(ledger: MemoryLedger, signer: LocalSigner, size: int) -> None:
    ledger.add_checkpoint(StoredCheckpoint(size, ledger.root(size), note(ledger, signer, size)))


def run(ledger: MemoryLedger, signer: LocalSigner, **kwargs: object) -> Report:
    return verify(ledger, verifiers=[signer.verifier], **kwargs)  # type: ignore[arg-type]


def filled(size: int) -> MemoryLedger:
    ledger = MemoryLedger()
    ledger.add(size)
    return ledger


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 8 leaves, so a ledger of tens of records crosses several of them."""
    monkeypatch.setattr(verify_module, "BATCH", 8)


@pytest.fixture(autouse=True, params=["c-libpq", "c", "python"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test with the compiled pass taking the rows from (a fake) libpq itself, with the
    compiled pass over rows joined in Python, and with the pure-Python one."""
    implementation = recompute.recompute_py if request.param == "python" else recompute.recompute_c
    if implementation is None or recompute.recompute_copy is None:
        pytest.fail("the C extension privatevault.ledger._recompute is not built: run `make setup`")
    monkeypatch.setattr(recompute, "recompute", implementation)
    monkeypatch.setattr(MemoryLedger, "native", request.param == "c-libpq")


# -- every stored node ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 7, 8, 9, 40, 64, 100])
def test_an_intact_ledger_verifies_every_node(size: int, signer: LocalSigner) -> None:
    ledger = filled(size)
    checkpoint(ledger, signer, size // 2)
    published = note(ledger, signer)
    report = run(ledger, signer, published=published)
    assert report.ok, report.problem
    assert report.nodes == len(ledger.tree) == 2 * size - bin(size).count("1")
    assert report.latest == published


@pytest.mark.parametrize(
    ("key", "records"),
    [
        ((0, 0), "1..1"),  # a leaf at the start
        ((1, 0), "1..2"),  # off the frontier: the head does not change, proofs through it do
        ((2, 5), "21..24"),  # in a later batch
        ((3, 3), "25..32"),
        ((0, 39), "40..40"),  # the last leaf
    ],
)
def test_a_wrong_node_anywhere_is_named(key: tuple[int, int], records: str, signer: LocalSigner) -> None:
    ledger = filled(40)
    published = note(ledger, signer)
    head = ledger.root(40)
    ledger.tree[key] = bytes(32)
    if key not in merkle.root_keys(40):
        assert ledger.root(40) == head  # what the verifier checked before: the head alone
    report = run(ledger, signer)
    assert report.problem == (
        f"stored Merkle node (level {key[0]}, index {key[1]}) over records {records} does not match the records:"
        " proofs served from it would be wrong"
    )
    assert not run(ledger, signer, published=published).ok


def test_a_missing_node_is_named(signer: LocalSigner) -> None:
    ledger = filled(40)
    del ledger.tree[(2, 3)]
    report = run(ledger, signer)
    assert report.problem is not None
    assert report.problem.startswith("stored Merkle node (level 2, index 3) over records 13..16 is missing")


def test_a_wrong_node_before_a_trusted_checkpoint_is_not_read_again(signer: LocalSigner) -> None:
    ledger = filled(40)
    trusted = parse_and_verify(note(ledger, signer, 32), [signer.verifier])
    ledger.tree[(1, 3)] = bytes(32)  # inside the trusted part, off its frontier
    report = run(ledger, signer, trusted=trusted)
    assert report.ok and report.verified_from == 33
    assert report.nodes == 8 + 4 + 2 + 1  # the nodes the 8 records after it complete
    ledger.tree[(1, 17)] = bytes(32)  # after it
    assert run(ledger, signer, trusted=trusted).problem is not None


def test_nothing_after_a_trusted_checkpoint_reads_no_record(signer: LocalSigner) -> None:
    ledger = filled(40)
    trusted = parse_and_verify(note(ledger, signer, 40), [signer.verifier])
    report = run(ledger, signer, trusted=trusted)
    assert report.ok and report.verified_from == 41 and report.nodes == 0
    assert ledger.copies == []  # no COPY opened, so none to end or cancel


def test_a_broken_chain_is_named_before_any_node(signer: LocalSigner) -> None:
    ledger = filled(20)
    ledger.rows[11] = ledger.rows[11]._replace(canonical=ledger.rows[11].canonical + b" ")
    report = run(ledger, signer)
    assert report.first_bad_seq == 12 and report.problem == "record hash does not match its bytes"
    copy = ledger.copies[-1]
    assert not copy.finished  # the read stopped there: the store cancels the rest
    if ledger.native:  # the compiled pass took no row after the broken one
        assert copy.served == 12 < len(copy.messages)


def test_a_whole_pass_reads_the_copy_to_its_end(signer: LocalSigner) -> None:
    ledger = filled(20)
    assert run(ledger, signer).ok
    copy = ledger.copies[-1]
    assert copy.done and copy.finished == ledger.native  # joined in Python, the reader ends it itself
    assert copy.served == (len(copy.messages) if ledger.native else 0)


# -- a verifier that remembers --------------------------------------------------------------


def remembered(ledger: MemoryLedger, signer: LocalSigner, size: int) -> Checkpoint:
    return parse_and_verify(note(ledger, signer, size), [signer.verifier])


def test_a_published_checkpoint_older_than_the_remembered_one_is_a_rollback(signer: LocalSigner) -> None:
    ledger = filled(30)
    report = run(ledger, signer, published=note(ledger, signer, 10), remembered=remembered(ledger, signer, 20))
    assert report.problem == (
        "the published checkpoint at size 10 is older than the checkpoint at size 20 this verifier remembers:"
        " a rollback"
    )


def test_a_published_checkpoint_of_another_history_is_a_fork(signer: LocalSigner) -> None:
    ledger = filled(30)
    mine = remembered(ledger, signer, 20)
    ledger.rewrite(15)  # the insider rewrote history and the ConfigMap carries a head over it
    report = run(ledger, signer, published=note(ledger, signer), remembered=mine)
    assert report.problem is not None
    assert report.problem.startswith(
        "the published checkpoint at size 30 is not provably consistent with the checkpoint at size 20"
        " this verifier remembers: a fork"
    )


def test_records_must_reproduce_the_remembered_checkpoint(signer: LocalSigner) -> None:
    ledger = filled(30)
    mine = remembered(ledger, signer, 20)
    ledger.rewrite(15)
    report = run(ledger, signer, remembered=mine)  # nothing published to compare with
    assert report.problem == "records 1..20 do not match the checkpoint at size 20 this verifier remembers"


def test_records_covered_by_the_remembered_checkpoint_must_be_there(signer: LocalSigner) -> None:
    ledger = filled(30)
    mine = remembered(ledger, signer, 30)
    ledger.truncate(25)
    report = run(ledger, signer, remembered=mine)
    assert report.first_bad_seq == 26
    assert report.problem == (
        "records 26..30 are missing: the checkpoint at size 30 this verifier remembers covers 30 records,"
        " the ledger holds 25"
    )


def test_a_published_checkpoint_consistent_with_the_remembered_one_verifies(signer: LocalSigner) -> None:
    ledger = filled(30)
    mine = remembered(ledger, signer, 20)
    ledger.add(10)
    report = run(ledger, signer, published=note(ledger, signer), remembered=mine)
    assert report.ok, report.problem
    assert (report.remembered_size, report.published_size, report.latest) == (20, 40, note(ledger, signer))


def test_the_state_file_is_per_log_and_checked_on_every_read(tmp_path: Path, signer: LocalSigner) -> None:
    other = LocalSigner(ORIGIN, Ed25519PrivateKey.generate())
    env = {"XDG_STATE_HOME": str(tmp_path)}
    path = default_path([signer.verifier], env)
    assert path.parent == tmp_path / "privatevault" / "checkpoints"
    assert path.name == f"privatevault.io%2Ftest+{signer.key_id:08x}"
    assert default_path([other.verifier], env) != path  # the same origin, another installation

    memory = RememberedCheckpoint(path)
    assert memory.load([signer.verifier]) is None
    ledger = filled(5)
    memory.save(note(ledger, signer))
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = memory.load([signer.verifier])
    assert loaded is not None and loaded.size == 5
    with pytest.raises(CheckpointError, match=r"remembered in .* does not verify"):
        memory.load([other.verifier])
    path.write_bytes(note(ledger, signer).replace(b"\n5\n", b"\n9\n"))  # edited by hand
    with pytest.raises(CheckpointError, match="does not verify"):
        memory.load([signer.verifier])
    memory.forget()
    assert memory.load([signer.verifier]) is None
