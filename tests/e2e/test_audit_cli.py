"""pvctl audit against a running operator: the checkpoint it published in its ConfigMap verifies the
ledger, a proof for a record verifies, export carries proofs, and a deleted record is named."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from privatevault.ledger import merkle
from privatevault.ledger.schema import Database
from privatevault.testbench import Bench
from tests import builders
from tests.support import Kubectl, Operator, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What `pvctl audit verify` remembers goes under the test's directory, not the user's."""
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


def pvctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "privatevault", *args], capture_output=True, text=True, check=False, timeout=120
    )


def test_audit_verify_prove_export(
    kubectl: Kubectl, bench: Bench, database: Database, operator_dsn_file: Path, tmp_path: Path
) -> None:
    operator = Operator(
        tmp_path,
        kubectl.kubeconfig,
        operator_dsn_file,
        PRIVATEVAULT_CHECKPOINT_EVERY_RECORDS="4",
        PRIVATEVAULT_CHECKPOINT_EVERY_SECONDS="1",
    ).start()
    try:
        kubectl.apply(builders.tenant("e2e-audit", owners=[builders.user("auditor")]))

        def published() -> int:
            cm = kubectl.get("configmap", "privatevault-ledger-checkpoint", operator.namespace)
            note = ((cm or {}).get("data") or {}).get("checkpoint", "")
            return int(note.split("\n")[1]) if note.count("\n") > 2 else 0

        eventually(lambda: published() >= 4, what="a checkpoint covering the tenant's 4 records")
        common = [
            "--dsn-file",
            str(operator_dsn_file),
            "--kubeconfig",
            str(kubectl.kubeconfig),
            "--namespace",
            operator.namespace,
        ]
        verified = pvctl("audit", "verify", *common, "--format", "json")
        assert verified.returncode == 0, verified.stderr + verified.stdout
        result: dict[str, Any] = json.loads(verified.stdout)
        assert result["ok"] is True and result["records"] >= 4 and result["publishedSize"] >= 4

        tail = pvctl(
            "audit",
            "tail",
            "--tenant",
            "e2e-audit",
            "-n",
            "1",
            "--format",
            "json",
            "--dsn-file",
            str(operator_dsn_file),
        )
        assert tail.returncode == 0, tail.stderr
        seq = json.loads(tail.stdout)[0]["seq"]
        eventually(lambda: published() >= seq, what=f"a checkpoint covering record {seq}")
        proved = pvctl("audit", "prove", str(seq), "--dsn-file", str(operator_dsn_file))
        assert proved.returncode == 0, proved.stderr
        proof = json.loads(proved.stdout)
        assert merkle.verify_inclusion(
            merkle.leaf_hash(bytes.fromhex(proof["recordHash"])),
            seq - 1,
            proof["treeSize"],
            [base64.b64decode(p) for p in proof["inclusionProof"]],
            base64.b64decode(proof["rootHash"]),
        )
        assert proof["record"]["tenant"] == "e2e-audit"

        exported = pvctl("audit", "export", "--from", "1", "--dsn-file", str(operator_dsn_file))
        assert exported.returncode == 0, exported.stderr
        lines = [json.loads(line) for line in exported.stdout.splitlines()]
        assert [line["seq"] for line in lines[:-1]] == list(range(1, lines[-1]["treeSize"] + 1))
        assert lines[-1]["checkpoint"].startswith("privatevault.io/ledger\n")
        kubectl.run("delete", "tenant", "e2e-audit", "--wait=true")
    finally:
        operator.stop()

    # A record removed behind the operator's back is named by its sequence number.
    dbname = psycopg.conninfo.conninfo_to_dict(database.owner_dsn)["dbname"]
    with psycopg.connect(bench.postgres.superuser_dsn.rsplit("/", 1)[0] + f"/{dbname}", autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM audit_records WHERE seq = 3")
    broken = pvctl("audit", "verify", *common, "--format", "json")
    assert broken.returncode == 1
    assert json.loads(broken.stdout)["firstBadSeq"] == 3
