"""Helpers shared by the integration and end-to-end tests: kubectl, the operator process, and the
database superuser who rewrites the ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from privatevault.ledger import merkle, record_hash
from privatevault.ledger.schema import Database
from privatevault.ledger.writer import HEAD_LOCK
from privatevault.testbench import Bench
from privatevault.testbench.process import ManagedProcess

REPO = Path(__file__).resolve().parents[1]


class Kubectl:
    """The real kubectl against the bench's API server."""

    def __init__(self, binary: Path, kubeconfig: Path) -> None:
        self.binary, self.kubeconfig = binary, kubeconfig

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.binary), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            text=True,
            capture_output=True,
            check=False,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr}")
        return done

    def apply(self, manifest: dict[str, Any] | str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self.run("apply", "-f", "-", stdin=text, check=check)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        args = ["get", kind, name, "-o", "json"] + (["-n", namespace] if namespace else [])
        done = self.run(*args, check=False)
        if done.returncode != 0:
            if "NotFound" in done.stderr or "not found" in done.stderr:
                return None
            raise AssertionError(done.stderr)
        result: dict[str, Any] = json.loads(done.stdout)
        return result


def eventually(check: Callable[[], Any], *, timeout: float = 60, what: str | Callable[[], str] = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    described = what() if callable(what) else what
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {described} (last: {last!r})")


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for item in (obj or {}).get("status", {}).get("conditions", []):
        if item["type"] == type_:
            return dict(item)
    return None


def wait_for_condition(
    kubectl: Kubectl,
    kind: str,
    name: str,
    type_: str,
    *,
    status: str = "True",
    current: bool = False,
    timeout: float = 60,
) -> dict[str, Any]:
    """The object once its condition ``type_`` has ``status`` (and, with ``current``, status is of
    the latest generation); fails naming the last status seen."""
    seen: list[Any] = [None]

    def check() -> dict[str, Any] | None:
        obj = kubectl.get(kind, name)
        seen[0] = obj and obj.get("status")
        cond = condition(obj, type_)
        if not obj or not cond or cond["status"] != status:
            return None
        if current and obj["status"].get("observedGeneration") != obj["metadata"]["generation"]:
            return None
        return obj

    found: dict[str, Any] = eventually(
        check, timeout=timeout, what=lambda: f"{kind} {name} {type_}={status} (last status: {seen[0]})"
    )
    return found


class Operator:
    """``python -m privatevault operator run`` as a real process against the bench."""

    def __init__(
        self, workdir: Path, kubeconfig: Path, dsn_file: Path, *, liveness: str | None = None, **env: str
    ) -> None:
        # Each operator under test gets its own namespace: its KMS key, signing keys, checkpoint.
        self.namespace = env.pop("PRIVATEVAULT_NAMESPACE", f"pv-system-{uuid.uuid4().hex[:8]}")
        probe = ["--liveness", liveness] if liveness else []
        self.process = ManagedProcess(
            "operator",
            [sys.executable, "-m", "privatevault", "operator", "run", "--kubeconfig", str(kubeconfig), *probe],
            workdir / f"operator-{time.monotonic_ns()}.log",
            env={
                **os.environ,
                "PRIVATEVAULT_LEDGER_DSN_FILE": str(dsn_file),
                "PRIVATEVAULT_DRIFT_INTERVAL": "2",
                "PRIVATEVAULT_RETRY_DELAY": "1",
                "PRIVATEVAULT_NAMESPACE": self.namespace,
                **env,
            },
        )

    def start(self) -> Operator:
        self.process.start()
        return self

    def stop(self) -> None:
        self.process.stop(grace=10)

    def log(self) -> str:
        return self.process.log.read_text(errors="replace")


def superuser(bench: Bench, database: Database) -> psycopg.Connection[tuple[Any, ...]]:
    """The database superuser, with triggers off for the session: what an insider could do."""
    dbname = psycopg.conninfo.conninfo_to_dict(database.owner_dsn)["dbname"]
    conn = psycopg.connect(bench.postgres.superuser_dsn.rsplit("/", 1)[0] + f"/{dbname}", autocommit=True)
    conn.execute("SET session_replication_role = replica")
    return conn


def rewrite_history(bench: Bench, database: Database, seq: int) -> None:
    """The careful insider: record ``seq`` changed, every later hash and the whole Merkle tree
    recomputed, the stored checkpoints dropped (they cannot sign new ones), all under the chain
    head's lock, so a running operator's appends wait and then carry on from the forged head."""
    with superuser(bench, database) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (HEAD_LOCK,))
        rows = conn.execute("SELECT seq, canonical, record_hash FROM audit_records ORDER BY seq").fetchall()
        leaves: list[bytes] = []
        forged: list[tuple[bytes, bytes, bytes, int]] = []
        prev = bytes(32)
        for at, stored_body, stored_digest in rows:
            body, digest = bytes(stored_body), bytes(stored_digest)
            if at == seq:
                body = body.replace(b'"intended"', b'"rewrite"')
            if at >= seq:
                digest = record_hash(prev, body)
                forged.append((body, prev, digest, at))
            leaves.append(merkle.leaf_hash(digest))
            prev = digest
        nodes = merkle.append_leaves(0, leaves, merkle.MemoryNodeStore())
        conn.execute("DELETE FROM checkpoints")
        conn.execute("DELETE FROM merkle_nodes")
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE audit_records SET canonical = %s, prev_hash = %s, record_hash = %s WHERE seq = %s", forged
            )
            cur.executemany("INSERT INTO merkle_nodes (level, idx, hash) VALUES (%s, %s, %s)", nodes)
