"""A PostgreSQL superuser rewrites the ledger under a running operator (a record changed, every hash
and Merkle node recomputed, the stored checkpoints dropped) and the operator keeps writing: no
checkpoint is signed or published over it, `pvctl audit verify` keeps failing, and the alarm is
visible (metric, readiness probe, Event, condition, ERROR log). Someone then rolls the ConfigMap back
to a checkpoint older than the rewrite: a verifier without memory is fooled, the one that remembers
fails naming both sizes, and the operator still signs nothing. A deliberate `pvctl audit reanchor`
ends it: the incident is in the ledger under the next checkpoint, and remembering verifiers see the
fork until a person tells them to forget.

With witnesses (ours, `pvctl witness run`, and torchwood's litewitness): the operator's checkpoints
are cosigned by both and published with their lines, a witness that is down does not hold the
checkpoint back; after the rewrite, the ConfigMap rolled back and the operator restarted without its
memory, the checkpointer signs over the rewrite, but neither witness cosigns it, the metric and an
ERROR log name them, and `pvctl audit verify --witness-key` fails where a verifier without witness
keys or memory is fooled."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from privatevault.ledger.checkpoint import parse_verifier_key
from privatevault.ledger.cosignature import parse_cosignature_key
from privatevault.ledger.schema import Database
from privatevault.testbench import Bench
from privatevault.testbench.ports import free_ports
from tests import builders
from tests.support import Kubectl, Operator, eventually, rewrite_history, superuser, wait_for_condition
from tests.witnesses import Litewitness, OurWitness

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]


def pvctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "privatevault", *args], capture_output=True, text=True, check=False, timeout=120
    )


def http(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - a loopback URL of the test
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def metric(port: int, name: str) -> float | None:
    _, text = http(f"http://127.0.0.1:{port}/metrics")
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def note_size(note: str) -> int:
    return int(note.split("\n")[1]) if note.count("\n") > 2 else 0


def record_count(bench: Bench, database: Database) -> int:
    with superuser(bench, database) as conn:
        row = conn.execute("SELECT coalesce(max(seq), 0) FROM audit_records").fetchone()
    return int(row[0]) if row else 0


def test_a_rewrite_under_a_running_operator_is_never_signed_over(
    kubectl: Kubectl, bench: Bench, database: Database, operator_dsn_file: Path, tmp_path: Path
) -> None:
    metrics_port, probe_port = free_ports(2)
    operator = Operator(
        tmp_path,
        kubectl.kubeconfig,
        operator_dsn_file,
        liveness=f"http://127.0.0.1:{probe_port}/healthz",
        PRIVATEVAULT_CHECKPOINT_EVERY_RECORDS="4",
        PRIVATEVAULT_CHECKPOINT_EVERY_SECONDS="1",
        PRIVATEVAULT_METRICS_PORT=str(metrics_port),
        PRIVATEVAULT_METRICS_ADDR="127.0.0.1",
    ).start()
    namespace = operator.namespace
    state = tmp_path / "verifier.state"
    common = ["--dsn-file", str(operator_dsn_file), "--kubeconfig", str(kubectl.kubeconfig), "--namespace", namespace]

    def published() -> str:
        cm = kubectl.get("configmap", "privatevault-ledger-checkpoint", namespace)
        return str(((cm or {}).get("data") or {}).get("checkpoint", ""))

    size = note_size

    def records() -> int:
        return record_count(bench, database)

    def settled() -> str:
        """The published checkpoint once it covers every record and nothing more is written for a
        few seconds: the operator is idle (objects other tests left in the cluster are resumed and
        resynced into this test's fresh ledger too, a few records after its start)."""

        def quiet() -> str | None:
            note = published()
            if not note or size(note) != records():
                return None
            time.sleep(3)  # beyond a resync interval (2 s) and a checkpoint interval (1 s)
            return note if published() == note and records() == size(note) else None

        return str(eventually(quiet, timeout=90))

    def verify(*extra: str) -> tuple[int, dict[str, Any]]:
        done = pvctl("audit", "verify", *common, "--format", "json", *extra)
        assert done.returncode in (0, 1), done.stderr
        return done.returncode, json.loads(done.stdout)

    try:
        kubectl.apply(builders.tenant("e2e-ledger-a"))
        wait_for_condition(kubectl, "tenant", "e2e-ledger-a", "Ready")
        early = settled()
        assert verify("--state", str(state))[0] == 0
        kubectl.apply(builders.tenant("e2e-ledger-b"))
        wait_for_condition(kubectl, "tenant", "e2e-ledger-b", "Ready")
        before = settled()
        code, result = verify("--state", str(state))
        assert code == 0 and result["rememberedSize"] == size(early) and result["remembers"] == size(before)
        assert result["nodes"] > 0 and metric(metrics_port, "privatevault_ledger_integrity_ok") == 1.0
        assert http(f"http://127.0.0.1:{probe_port}/healthz")[0] == 200

        # The insider rewrites the record after the early checkpoint, under the running operator.
        rewrite_history(bench, database, size(early) + 1)
        kubectl.apply(builders.tenant("e2e-ledger-c"))  # the operator keeps writing on the forged head
        wait_for_condition(kubectl, "tenant", "e2e-ledger-c", "Ready")
        eventually(
            lambda: (metric(metrics_port, "privatevault_ledger_checkpoints_refused_total") or 0) >= 3,
            what="three refused checkpoints (one a second)",
        )
        assert published() == before  # nothing published over the rewrite ...
        with superuser(bench, database) as conn:
            assert conn.execute("SELECT count(*) FROM checkpoints").fetchone() == (0,)  # ... nor signed
        assert metric(metrics_port, "privatevault_ledger_integrity_ok") == 0.0
        # kopf's probe endpoint (it keeps an answer for 10 s): point a readinessProbe at it.
        eventually(lambda: http(f"http://127.0.0.1:{probe_port}/healthz")[0] == 500, what="the probe failing")
        events = json.loads(kubectl.run("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
        refusal = [e for e in events if e["reason"] == "InconsistentWithPublished"]
        assert refusal and refusal[0]["type"] == "Warning"
        assert f"not consistent with the published checkpoint at size {size(before)}" in refusal[0]["message"]
        condition = (kubectl.get("configmap", "privatevault-ledger-integrity", namespace) or {})["data"]
        assert (condition["status"], condition["reason"]) == ("False", "InconsistentWithPublished")
        assert re.search(r"ERROR.*ledger integrity: no checkpoint signed \(InconsistentWithPublished", operator.log())
        for extra in ((), ("--state", str(state)), ("--state", str(tmp_path / "fresh"))):
            code, result = verify(*extra)
            assert code == 1 and "do not match the published checkpoint" in result["problem"], result

        # Someone with access to the ConfigMap puts the early checkpoint back, below the rewrite.
        patch = json.dumps({"data": {"checkpoint": early}})
        kubectl.run("patch", "configmap", "privatevault-ledger-checkpoint", "-n", namespace, "-p", patch)
        code, result = verify("--state", str(tmp_path / "fresh-2"))
        assert code == 0  # a verifier without memory is fooled: the rewrite is after the early checkpoint
        code, result = verify("--state", str(state))
        assert code == 1 and result["problem"] == (
            f"the published checkpoint at size {size(early)} is older than the checkpoint at size {size(before)}"
            " this verifier remembers: a rollback"
        )
        time.sleep(3)  # a few checkpoint intervals
        assert published() == early  # the running operator remembers what it signed: still nothing signed

        # Recovery is a person's act: the dry run shows what would be vouched for, the flags do it.
        shown = pvctl("audit", "reanchor", *common)
        assert shown.returncode == 0, shown.stderr
        command = re.search(r"--at (\d+) --root (\S+) --abandon (\S+)", shown.stdout)
        assert command is not None, shown.stdout
        at, root, abandon = command.groups()
        assert abandon == str(size(early))
        refused = pvctl("audit", "reanchor", *common, "--at", at, "--root", root, "--abandon", "1", "--reason", "x")
        assert refused.returncode == 2 and "nothing written" in refused.stderr
        done = pvctl(
            "audit", "reanchor", *common, "--at", at, "--root", root, "--abandon", abandon,
            "--reason", "record rewritten by an insider, no backup; incident E2E-1", "--by", "e2e",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout
        eventually(lambda: size(published()) > int(at), what="a checkpoint signed from the anchor")
        assert metric(metrics_port, "privatevault_ledger_integrity_ok") == 1.0
        with superuser(bench, database) as conn:
            actions = [
                row[0]
                for row in conn.execute(
                    "SELECT action FROM audit_records WHERE action IN ('reanchor-ledger', 'close-integrity-incident')"
                    " ORDER BY seq"
                )
            ]
        assert actions == ["reanchor-ledger", "close-integrity-incident"]
        assert verify("--state", str(tmp_path / "fresh-3"))[0] == 0
        code, result = verify("--state", str(state))
        assert code == 1 and result["problem"].startswith(
            f"the published checkpoint at size {size(published())} is not provably consistent with the checkpoint"
            f" at size {size(before)} this verifier remembers: a fork"
        )
        assert verify("--state", str(state), "--forget-state")[0] == 0  # after a person reviewed the incident
    finally:
        for name in ("e2e-ledger-a", "e2e-ledger-b", "e2e-ledger-c"):
            kubectl.run("delete", "tenant", name, "--wait=true", "--ignore-not-found", check=False)
        operator.stop()


def witness_metric(port: int, name: str, witness: str) -> tuple[str, float] | None:
    """(reason, value) of ``privatevault_ledger_witness_ok`` for one witness."""
    _, text = http(f"http://127.0.0.1:{port}/metrics")
    found = re.search(rf'^{name}{{reason="([^"]*)",witness="{re.escape(witness)}"}} (\S+)$', text, re.MULTILINE)
    return (found.group(1), float(found.group(2))) if found else None


def test_witnesses_cosign_the_operators_checkpoints_and_never_a_rewrite(
    kubectl: Kubectl, bench: Bench, database: Database, operator_dsn_file: Path, tmp_path: Path
) -> None:
    ours = OurWitness(tmp_path, "privatevault.test/e2e-witness")
    lite = Litewitness(tmp_path, "litewitness.test/e2e")
    (metrics_port,) = free_ports(1)
    settings = {
        "PRIVATEVAULT_CHECKPOINT_EVERY_RECORDS": "4",
        "PRIVATEVAULT_CHECKPOINT_EVERY_SECONDS": "1",
        "PRIVATEVAULT_METRICS_PORT": str(metrics_port),
        "PRIVATEVAULT_METRICS_ADDR": "127.0.0.1",
        "PRIVATEVAULT_WITNESSES": f"{ours.url} {ours.vkey}\n{lite.url} {lite.verifier.verifier_key}",
        "PRIVATEVAULT_WITNESS_TIMEOUT": "2",
    }
    operator = Operator(tmp_path, kubectl.kubeconfig, operator_dsn_file, **settings).start()
    namespace = operator.namespace
    common = ["--dsn-file", str(operator_dsn_file), "--kubeconfig", str(kubectl.kubeconfig), "--namespace", namespace]
    witness_keys = ["--witness-key", ours.vkey, "--witness-key", lite.verifier.verifier_key]

    def configmap() -> dict[str, str]:
        return dict((kubectl.get("configmap", "privatevault-ledger-checkpoint", namespace) or {}).get("data") or {})

    size = note_size

    def records() -> int:
        return record_count(bench, database)

    def cosigned(note: str) -> bool:
        return ours.name in note and lite.name in note

    def verify(*extra: str, state: Path | None = None) -> tuple[int, dict[str, Any]]:
        state = state or tmp_path / f"state-{time.monotonic_ns()}"  # a fresh verifier unless told
        done = pvctl("audit", "verify", *common, "--format", "json", "--state", str(state), *extra)
        assert done.returncode in (0, 1), done.stderr
        return done.returncode, json.loads(done.stdout)

    try:
        # Both witnesses are still down: the first checkpoint is published all the same.
        first = str(eventually(lambda: configmap().get("checkpoint"), what="the first checkpoint"))
        assert not cosigned(first)
        eventually(
            lambda: witness_metric(metrics_port, "privatevault_ledger_witness_ok", ours.name) == ("Unreachable", 0.0)
        )
        assert re.search(r"WARNING.*witness privatevault.test/e2e-witness .* \(Unreachable\)", operator.log())
        # A witness is told the log's keys: the operator's, as published beside the checkpoint.
        log_keys = configmap()["verifier-keys"].split()
        ed25519 = next(key for key in log_keys if parse_verifier_key(key).algorithm.label == "Ed25519")
        ours.configure(log_keys)
        ours.start()
        lite.fill({"privatevault.io/ledger": [ed25519]})
        lite.start()

        kubectl.apply(builders.tenant("e2e-witness-a"))
        wait_for_condition(kubectl, "tenant", "e2e-witness-a", "Ready")
        early = str(
            eventually(
                lambda: (n := configmap().get("checkpoint", "")) and cosigned(n) and size(n) == records() and n,
                timeout=60,
            )
        )
        kubectl.apply(builders.tenant("e2e-witness-b"))
        wait_for_condition(kubectl, "tenant", "e2e-witness-b", "Ready")
        before = str(
            eventually(
                lambda: (
                    (n := configmap().get("checkpoint", ""))
                    and cosigned(n)
                    and size(n) == records()
                    and size(n) > size(early)
                    and n
                ),
                timeout=60,
            )
        )
        code, result = verify(*witness_keys, state=tmp_path / "remembering.state")
        assert code == 0 and result["cosignedBy"] == [ours.name, lite.name], result
        assert witness_metric(metrics_port, "privatevault_ledger_witness_ok", lite.name) == ("", 1.0)

        # The insider: operator stopped, record after the early checkpoint rewritten, the ConfigMap
        # rolled back to the early checkpoint, the operator started again (its memory gone).
        operator.stop()
        rewrite_history(bench, database, size(early) + 1)
        patch = json.dumps({"data": {"checkpoint": early}})
        kubectl.run("patch", "configmap", "privatevault-ledger-checkpoint", "-n", namespace, "-p", patch)
        operator = Operator(
            tmp_path, kubectl.kubeconfig, operator_dsn_file, PRIVATEVAULT_NAMESPACE=namespace, **settings
        ).start()
        laundered = str(
            eventually(lambda: (n := configmap().get("checkpoint", "")) and size(n) > size(early) and n, timeout=60)
        )
        assert size(laundered) >= size(before) and not cosigned(laundered)  # signed over the rewrite: no witness line
        for name in (ours.name, lite.name):
            eventually(
                lambda name=name: (
                    witness_metric(metrics_port, "privatevault_ledger_witness_ok", name) == ("Inconsistent", 0.0)
                )
            )
            assert re.search(rf"ERROR.*witness {re.escape(name)} .* \(Inconsistent\)", operator.log()), operator.log()[
                -3000:
            ]
        assert "not consistent with the one at size" in ours.log()
        assert lite.known("privatevault.io/ledger")[0] == size(before)

        assert verify()[0] == 0  # no witness keys, no memory: fooled by the laundered checkpoint
        code, result = verify(*witness_keys)
        assert code == 1 and "is cosigned by 0 of the 2 witness(es) required" in result["problem"], result
        assert f"{ours.name} ({parse_cosignature_key(ours.vkey).key_id:08x}): no cosignature" in result["problem"]
        code, result = verify(state=tmp_path / "remembering.state")  # one that remembers sees the fork
        assert code == 1 and "this verifier remembers: a fork" in result["problem"], result
    finally:
        kubectl.run(
            "delete", "tenant", "e2e-witness-a", "e2e-witness-b", "--wait=true", "--ignore-not-found", check=False
        )
        operator.stop()
        ours.stop()
        lite.stop()
