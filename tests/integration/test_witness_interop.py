"""Witness interop on a real PostgreSQL ledger, both ways: torchwood's litewitness (an independent
C2SP tlog-witness) cosigns the checkpoints our checkpointer signs, and `pvctl audit verify
--witness-key` accepts its cosignatures as it does those of `pvctl witness run`; Go's note package
verifies both witnesses' lines; the two witnesses answer the same protocol table alike (409 with the
known size, 422 for an inconsistent checkpoint). Then the issue's attack: a superuser rewrite, the
published checkpoint rolled back, the operator restarted without memory, so the checkpointer itself
signs over the rewrite: both witnesses refuse to cosign, and verify with their keys fails, naming them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey

from privatevault.ledger.checkpoint import LocalSigner, parse_and_verify, sign_checkpoint
from privatevault.ledger.checkpointer import Checkpointer
from privatevault.ledger.cosignature import cosigned_by, parse_cosignature_key
from privatevault.ledger.schema import Database
from privatevault.ledger.store import Ledger
from privatevault.ledger.verify import verify
from privatevault.ledger.witness import AddCheckpoint
from privatevault.testbench import Bench
from privatevault.witness.client import Witness, Witnesses, http_post
from tests.support import rewrite_history
from tests.unit.fakes import ledger_event
from tests.unit.test_merkle import build_noteverify
from tests.witnesses import Litewitness, OurWitness

from .test_ledger_integrity import Alarm, Published

pytestmark = pytest.mark.integration

ORIGIN = "privatevault.io/witnessed-ledger"


@pytest.fixture
def signers() -> list[LocalSigner]:
    return [LocalSigner(ORIGIN, Ed25519PrivateKey.generate()), LocalSigner(ORIGIN, MLDSA65PrivateKey.generate())]


@pytest.fixture
def witnesses(tmp_path: Path, signers: list[LocalSigner]) -> Iterator[tuple[Litewitness, OurWitness]]:
    # litewitness reads verifier keys with Go's note.NewVerifier: the Ed25519 key only; ours takes both.
    ed25519 = signers[0].verifier_key
    lite = Litewitness(tmp_path, "litewitness.test/w1", {ORIGIN: [ed25519]})
    ours = OurWitness(tmp_path, "privatevault.test/w1", [s.verifier_key for s in signers])
    try:
        yield lite.start(), ours.start()
    finally:
        lite.stop()
        ours.stop()


@pytest.fixture
def ledger(database: Database) -> Iterator[Ledger]:
    opened = Ledger(database.operator_dsn)
    yield opened
    opened.close()


@dataclass
class Scene:
    """A ledger on PostgreSQL, its signers, both witnesses running, and where pvctl finds the ledger."""

    ledger: Ledger
    signers: list[LocalSigner]
    lite: Litewitness
    ours: OurWitness
    dsn_file: Path
    workdir: Path


@pytest.fixture
def scene(
    ledger: Ledger,
    signers: list[LocalSigner],
    witnesses: tuple[Litewitness, OurWitness],
    operator_dsn_file: Path,
    tmp_path: Path,
) -> Scene:
    return Scene(ledger, signers, *witnesses, operator_dsn_file, tmp_path)


def client(lite: Litewitness, ours: OurWitness) -> Witnesses:
    return Witnesses([Witness(lite.url, lite.verifier), Witness(ours.url, parse_cosignature_key(ours.vkey))])


def pvctl_verify(dsn_file: Path, published: bytes, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    note = tmp_path / f"published-{len(list(tmp_path.glob('published-*')))}.note"
    note.write_bytes(published)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "privatevault", "audit", "verify", "--dsn-file", str(dsn_file)),
            *("--checkpoint", str(note), "--state", str(tmp_path / "fresh.state"), "--forget-state"),
            *("--format", "json", *extra),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_litewitness_and_ours_cosign_our_checkpoints_and_verify_accepts_them(scene: Scene) -> None:
    ledger, signers, lite, ours = scene.ledger, scene.signers, scene.lite, scene.ours
    operator_dsn_file, tmp_path = scene.dsn_file, scene.workdir
    assert lite.logged_vkey() == lite.verifier.verifier_key  # the key ID is computed alike
    assert ours.printed_vkey() == ours.vkey
    published, cosigners = Published(), client(lite, ours)
    checkpointer = Checkpointer(
        ledger, signers, origin=ORIGIN, publication=published, alarm=Alarm(), witnesses=cosigners
    )
    for block, count in enumerate((20, 15, 1)):
        ledger.append_many([ledger_event(f"w{block}-{i}") for i in range(count)])
        stored = checkpointer.issue()
        assert published.latest.startswith(stored.note)
    assert all(status.ok for status in cosigners.status.values()), cosigners.status
    assert lite.known(ORIGIN) == (36, ledger.root(36))
    both = [lite.verifier, parse_cosignature_key(ours.vkey)]
    assert cosigned_by(published.latest, both) == ([lite.name, "privatevault.test/w1"], [])
    report = verify(ledger, verifiers=[s.verifier for s in signers], published=published.latest, witnesses=both)
    assert report.ok and report.cosigned_by == [lite.name, "privatevault.test/w1"], report.problem

    keys = ["--verifier-key", signers[0].verifier_key, "--witness-key", lite.verifier.verifier_key]
    code, result = pvctl_verify(operator_dsn_file, published.latest, tmp_path, *keys, "--witness-key", ours.vkey)
    assert code == 0 and result["cosignedBy"] == [lite.name, "privatevault.test/w1"], result

    go = subprocess.run(
        [str(build_noteverify()), "cosig", lite.verifier.verifier_key, ours.vkey],
        input=published.latest,
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert go.returncode == 0, go.stderr
    assert b"2 cosignature(s) verified" in go.stderr
    cosigners.close()


def test_both_witnesses_answer_the_protocol_alike(
    ledger: Ledger, signers: list[LocalSigner], witnesses: tuple[Litewitness, OurWitness]
) -> None:
    """The same requests to litewitness and to ours: the same statuses (and bodies, for 409)."""
    ledger.append_many([ledger_event(f"p{i}") for i in range(12)])
    at_7 = sign_checkpoint(ORIGIN, 7, ledger.root(7), signers)
    at_12 = sign_checkpoint(ORIGIN, 12, ledger.root(12), signers)
    forged = sign_checkpoint(ORIGIN, 12, bytes(32), signers)
    proof = tuple(ledger.consistency_proof(7, 12))
    stranger = sign_checkpoint(ORIGIN, 12, ledger.root(12), [LocalSigner(ORIGIN, Ed25519PrivateKey.generate())])
    table = [
        (AddCheckpoint(0, (), at_7), 200, None),
        (AddCheckpoint(0, (), at_12), 409, b"7\n"),
        (AddCheckpoint(7, proof, forged), 422, None),  # not consistent with what it cosigned
        (AddCheckpoint(7, proof[1:], at_12), 422, None),  # a bad proof
        (AddCheckpoint(13, (), at_12), 400, None),  # old size above the checkpoint's
        (AddCheckpoint(7, proof, stranger), 403, None),  # signed by a key it does not trust
        (AddCheckpoint(7, proof, at_12), 200, None),
    ]  # fmt: skip
    for witness in witnesses:
        for request, status, body in table:
            got, answer = http_post(witness.url + "/add-checkpoint", request.body(), 10)
            assert got == status, (type(witness).__name__, request.old_size, answer)
            if body is not None:
                assert answer == body
    unknown = sign_checkpoint("unknown.test/log", 1, bytes(32), signers)
    # The spec says 404 for an unknown origin; torchwood v0.6.1 still answers 403 (older spec text).
    assert http_post(witnesses[1].url + "/add-checkpoint", AddCheckpoint(0, (), unknown).body(), 10)[0] == 404
    assert http_post(witnesses[0].url + "/add-checkpoint", AddCheckpoint(0, (), unknown).body(), 10)[0] == 403


def test_a_rewrite_signed_after_a_rollback_is_never_cosigned(bench: Bench, database: Database, scene: Scene) -> None:
    ledger, signers, lite, ours = scene.ledger, scene.signers, scene.lite, scene.ours
    operator_dsn_file, tmp_path = scene.dsn_file, scene.workdir
    published = Published()
    first = Checkpointer(
        ledger, signers, origin=ORIGIN, publication=published, alarm=Alarm(), witnesses=client(lite, ours)
    )
    ledger.append_many([ledger_event(f"a{i}") for i in range(10)])
    first.issue()
    early = published.latest
    ledger.append_many([ledger_event(f"b{i}") for i in range(10)])
    first.issue()
    both = [lite.verifier, parse_cosignature_key(ours.vkey)]
    assert cosigned_by(published.latest, both)[1] == []

    # The insider rewrites record 15 (after the early checkpoint), rolls the published checkpoint
    # back to the early one and restarts the operator: the new process remembers nothing, the early
    # head is consistent with the rewritten tree, so the checkpointer signs over the rewrite.
    rewrite_history(bench, database, 15)
    published.notes = [n for n in published.notes if n.size <= 10]
    assert published.latest == early
    restarted = client(lite, ours)
    second = Checkpointer(ledger, signers, origin=ORIGIN, publication=published, alarm=Alarm(), witnesses=restarted)
    ledger.append_many([ledger_event(f"c{i}") for i in range(3)])
    laundered = second.issue()
    assert published.latest == laundered.note  # published, with no cosignature: both refused
    assert {s.reason for s in restarted.status.values()} == {"Inconsistent"}, restarted.status
    assert lite.known(ORIGIN)[0] == 20  # litewitness kept the head it cosigned
    assert json.loads(ours.state.read_text())["logs"][ORIGIN]["size"] == 20
    assert "not consistent with the one at size 20" in ours.log()

    log_key = ["--verifier-key", signers[0].verifier_key]
    code, result = pvctl_verify(operator_dsn_file, published.latest, tmp_path, *log_key)
    assert code == 0  # without witnesses, a verifier without memory is fooled
    code, result = pvctl_verify(
        operator_dsn_file, published.latest, tmp_path, *log_key,
        "--witness-key", lite.verifier.verifier_key, "--witness-key", ours.vkey, "--witness-threshold", "1",
    )  # fmt: skip
    assert code == 1, result
    assert result["problem"].startswith(
        "the published checkpoint at size 23 is cosigned by 0 of the 1 witness(es) required; missing:"
        f" {lite.name} ({lite.verifier.key_id:08x}): no cosignature; privatevault.test/w1"
    ), result["problem"]
    assert parse_and_verify(laundered.note, [signers[0].verifier]).size == 23
