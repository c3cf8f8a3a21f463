"""Checkpoint + witness round trip on a real PostgreSQL 15: the median time of ``Checkpointer.issue()``
after 100 new records (sign with Ed25519 and ML-DSA-65, store, prove consistency, publish) without
witnesses, with `pvctl witness run` and with torchwood's litewitness over loopback HTTP (each a
process of its own), and the witness's ``add-checkpoint`` round trip alone."""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey

from privatevault.ledger.checkpoint import LocalSigner
from privatevault.ledger.checkpointer import Checkpointer, Cosigners
from privatevault.ledger.cosignature import parse_cosignature_key
from privatevault.ledger.integrity import Incident, Integrity, Published, Refusal
from privatevault.ledger.schema import bootstrap
from privatevault.ledger.store import Ledger, StoredCheckpoint
from privatevault.testbench import Postgres
from privatevault.witness.client import Witness, Witnesses
from tests.unit.fakes import ledger_event
from tests.witnesses import Litewitness, OurWitness

ORIGIN = "privatevault.io/bench-witness"
ROUNDS = 100
_keys = itertools.count()


class _Memory:
    """The published checkpoint kept in memory (the ConfigMap's cost is the API server's, not ours)."""

    def __init__(self) -> None:
        self.note: bytes | None = None

    def read(self) -> Published:
        return Published(self.note)

    def publish(self, checkpoint: StoredCheckpoint) -> None:
        self.note = checkpoint.note


class _Quiet:
    def refused(self, refusal: Refusal, integrity: Integrity) -> None:
        raise AssertionError(refusal.message)

    def resolved(self, incident: Incident) -> None:
        pass

    def signed(self, checkpoint: StoredCheckpoint) -> None:
        pass


def _issue_ms(
    ledger: Ledger, signers: list[LocalSigner], configs: dict[str, Cosigners | None]
) -> dict[str, list[float]]:
    """Rounds of: for each configuration in turn, 100 new records then one timed ``issue()``.

    Interleaved, so that PostgreSQL's background work (autovacuum, checkpoints) falls on all alike.
    """
    published = _Memory()
    checkpointers = {
        label: Checkpointer(ledger, signers, origin=ORIGIN, publication=published, alarm=_Quiet(), witnesses=w)
        for label, w in configs.items()
    }
    timings: dict[str, list[float]] = {label: [] for label in configs}
    for _ in range(ROUNDS):
        for label, checkpointer in checkpointers.items():
            ledger.append_many([ledger_event(f"bench-witness/{next(_keys)}") for _ in range(100)])
            started = time.perf_counter()
            checkpointer.issue()
            timings[label].append((time.perf_counter() - started) * 1000)
    return timings


class _Timed(Witnesses):
    """The witnesses' round trip alone: the client's ``cosign`` (request, witness, answer verified)."""

    def __init__(self, witnesses: list[Witness]) -> None:
        super().__init__(witnesses)
        self.round_trips_ms: list[float] = []

    def cosign(self, note: bytes, size: int, proof: Callable[[int], Sequence[bytes]]) -> bytes:
        started = time.perf_counter()
        lines = super().cosign(note, size, proof)
        self.round_trips_ms.append((time.perf_counter() - started) * 1000)
        return lines


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="pv-bench-witness-") as workdir:
        work = Path(workdir)
        postgres = Postgres(work)
        postgres.start()
        signers = [LocalSigner(ORIGIN, Ed25519PrivateKey.generate()), LocalSigner(ORIGIN, MLDSA65PrivateKey.generate())]
        ours = OurWitness(work, "privatevault.bench/w1", [s.verifier_key for s in signers]).start()
        lite = Litewitness(work, "litewitness.bench/w1", {ORIGIN: [signers[0].verifier_key]}).start()
        try:
            ledger = Ledger(bootstrap(postgres.superuser_dsn).operator_dsn)
            timed = {
                "pvctl_witness": _Timed([Witness(ours.url, parse_cosignature_key(ours.vkey))]),
                "litewitness": _Timed([Witness(lite.url, lite.verifier)]),
            }
            issued = _issue_ms(ledger, signers, {"no_witness": None, **timed})
            for label, timings in issued.items():
                figures[f"ledger.checkpoint.issue.{label}.p50_ms"] = statistics.median(timings)
            for label, witnesses in timed.items():
                assert all(s.ok for s in witnesses.status.values()), witnesses.status
                figures[f"ledger.witness.round_trip.{label}.p50_ms"] = statistics.median(witnesses.round_trips_ms)
                witnesses.close()
            ledger.close()
        finally:
            ours.stop()
            lite.stop()
            postgres.stop()
    return figures
