"""Evidence benchmarks on a real PostgreSQL 15 started for the run: an export of one tenant's
window of ``PV_BENCH_EVIDENCE_RECORDS`` records (default 1,000,000) streamed to a bundle with an
inclusion proof each, its peak memory, and the offline verification rate of that bundle.

The export and the verification each run in a process of their own, so the peak resident set
measured is theirs alone (the ledger was filled by this one)."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privatevault.database import open_pool
from privatevault.evidence import keys, lines, manifest, verifier, writer
from privatevault.evidence.store import PgEvidenceSource
from privatevault.ledger import Event, ResourceRef
from privatevault.ledger.checkpoint import LocalSigner, parse_verifier_key, sign_checkpoint
from privatevault.ledger.schema import bootstrap
from privatevault.ledger.store import Ledger, StoredCheckpoint
from privatevault.quorum import dsse
from privatevault.testbench import Postgres

RECORDS = int(os.environ.get("PV_BENCH_EVIDENCE_RECORDS", "1000000"))
ORIGIN = "bench/ledger"
_keys = itertools.count()


def _event(tenant: str) -> Event:
    n = next(_keys)
    return Event(
        tenant=tenant,
        actor="privatevault-operator",
        action="update-resourcequota",
        resource=ResourceRef(kind="ResourceQuota", namespace=f"{tenant}-ns", name="privatevault-quota"),
        outcome="intended",
        idempotency_key=f"bench/{n}",
        details={"digest": "sha256:" + f"{n:064x}"[-64:], "tenantGeneration": n},
    )


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _export(dsn: str, start: datetime, end: datetime, out: str, seed: bytes) -> dict[str, float]:
    pool = open_pool(dsn, max_size=2)
    ledger = Ledger(pool=pool)
    evidence = keys.from_seeds(keys.key_name(ORIGIN), {"Ed25519": seed})
    request = writer.Request(("acme",), start, end, frozenset({"Audit", "KeyMetadata", "ComplianceResults"}), ORIGIN)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=Path(out).parent) as work:
        built = writer.build(
            PgEvidenceSource(pool, ledger),
            request,
            Path(work),
            sign=lambda statement: manifest.envelope_bytes(dsse.sign(statement, evidence.pairs)),
        )
        with open(out, "wb") as sink:
            packed = writer.pack(built, sink)
    elapsed = time.perf_counter() - began
    ledger.close()
    pool.close()
    return {
        "records": float(built.records),
        "seconds": elapsed,
        "bytes": float(packed.size),
        "peak_rss_mb": _peak_mb(),
    }


def _verify(bundle: str, verifier_keys: list[str]) -> dict[str, float]:
    began = time.perf_counter()
    report = verifier.verify(Path(bundle), [parse_verifier_key(k) for k in verifier_keys])
    assert report.ok, report.problem
    return {"records": float(report.records), "seconds": time.perf_counter() - began, "peak_rss_mb": _peak_mb()}


def _in_child(function: object, *args: object) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        result: dict[str, float] = pool.apply(function, args)  # type: ignore[arg-type]
        return result


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="pv-bench-evidence-") as workdir:
        postgres = Postgres(Path(workdir))
        postgres.start()
        try:
            database = bootstrap(postgres.superuser_dsn)
            ledger = Ledger(database.operator_dsn)
            ledger.append(_event("acme"))
            time.sleep(0.01)
            start = datetime.now(UTC)
            written = 0
            while written < RECORDS:
                batch = [_event("acme" if n % 10 else "globex") for n in range(min(1000, RECORDS - written))]
                ledger.append_many(batch)
                written += len(batch)
            end = datetime.now(UTC) + timedelta(milliseconds=1)
            time.sleep(0.01)
            ledger.append(_event("acme"))  # the record after the window that ends the tenant's chain
            size = ledger.size()
            signer = LocalSigner(ORIGIN, Ed25519PrivateKey.generate())
            root = ledger.root(size)
            ledger.add_checkpoint(StoredCheckpoint(size, root, sign_checkpoint(ORIGIN, size, root, [signer])))
            ledger.close()
            seed = os.urandom(32)
            bundle = str(Path(workdir) / "bundle.tar.gz")
            exported = _in_child(_export, database.operator_dsn, start, end, bundle, seed)
            figures["evidence.export.records"] = exported["records"]
            figures["evidence.export.records_per_s"] = exported["records"] / exported["seconds"]
            figures["evidence.export.bundle_mb"] = exported["bytes"] / 2**20
            figures["evidence.export.peak_rss_mb"] = exported["peak_rss_mb"]
            figures["evidence.export.compiled"] = float(lines.ENGINE == "c")
            evidence_key = keys.from_seeds(keys.key_name(ORIGIN), {"Ed25519": seed}).verifier_keys()
            checked = _in_child(_verify, bundle, [signer.verifier_key, *evidence_key])
            figures["evidence.verify.records_per_s"] = checked["records"] / checked["seconds"]
            figures["evidence.verify.peak_rss_mb"] = checked["peak_rss_mb"]
        finally:
            postgres.stop()
    return figures
