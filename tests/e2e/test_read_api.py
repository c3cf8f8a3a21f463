"""The read API served by a running operator: TokenReview + SubjectAccessReview let ordinary RBAC
decide (a tenant's ServiceAccount reads only its tenant: 401 anonymous, 403 unauthorised, 404 for
another tenant's record), pages cover the ledger exactly once, proofs verify against the published
checkpoint, pvctl reads through it (an evidence bundle too, its digest checked), and no token
reaches the log."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from privatevault.cli.client import ApiError, ReadApiClient
from privatevault.ledger import merkle
from privatevault.ledger.checkpoint import parse_and_verify, parse_verifier_key
from privatevault.ledger.store import Ledger
from privatevault.manifests import ledger as ledger_manifests
from tests import builders, compliance_history
from tests.compliance_history import control
from tests.support import Kubectl, Operator, eventually, wait_for_condition
from tests.unit.test_merkle import build_noteverify, go_merkle

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]

READERS = "e2e-api-readers"
TENANTS = ("e2e-api-a", "e2e-api-b")
EXPORT = "e2e-api-export"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rbac(kubectl: Kubectl) -> None:
    """ServiceAccounts: one reader per tenant (resourceNames = the tenant), an auditor of all, a nobody."""
    docs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": READERS}}]

    def grant(name: str, rules: list[dict[str, Any]]) -> None:
        docs.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": READERS}})
        docs.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": f"{READERS}-{name}"},
                "rules": rules,
            }
        )
        docs.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"{READERS}-{name}"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": f"{READERS}-{name}",
                },
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": READERS}],
            }
        )

    for tenant in TENANTS:
        grant(
            f"reader-{tenant}",
            [
                {
                    "apiGroups": ["privatevault.io"],
                    "resources": ["audit", "proofs", "evidence", "tenants"],
                    "resourceNames": [tenant],
                    "verbs": ["get", "list"],
                }
            ],
        )
    grant(
        "auditor",
        [
            {
                "apiGroups": ["privatevault.io"],
                "resources": ["audit", "proofs", "status", "checkpoints", "tenants"],
                "verbs": ["get", "list"],
            }
        ],
    )
    grant("nobody", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["x"]}])
    kubectl.apply({"apiVersion": "v1", "kind": "List", "items": docs})


def token(kubectl: Kubectl, account: str) -> str:
    return kubectl.run("create", "token", account, "-n", READERS, "--duration", "1h").stdout.strip()


@pytest.fixture
def served(kubectl: Kubectl, operator_dsn_file: Path, tmp_path: Path) -> Iterator[tuple[Operator, str, Path]]:
    port = free_port()
    operator = Operator(
        tmp_path,
        kubectl.kubeconfig,
        operator_dsn_file,
        PRIVATEVAULT_API_ADDR="127.0.0.1",
        PRIVATEVAULT_API_PORT=str(port),
        PRIVATEVAULT_STATE_DIR=str(tmp_path / "state"),
        PRIVATEVAULT_CHECKPOINT_EVERY_RECORDS="2",
        PRIVATEVAULT_CHECKPOINT_EVERY_SECONDS="1",
    ).start()
    ca = tmp_path / "state" / operator.namespace / "api" / "ca.crt"
    try:
        yield operator, f"https://127.0.0.1:{port}", ca
    finally:
        operator.stop()
        kubectl.run("delete", "evidenceexport", EXPORT, "--ignore-not-found", "--wait=false", check=False)
        for tenant in TENANTS:
            kubectl.run("delete", "tenant", tenant, "--ignore-not-found", "--wait=false", check=False)


def raw(url: str, ca: Path) -> tuple[int, dict[str, Any]]:
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as answer:  # noqa: S310
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read())
    except urllib.error.URLError:
        return 0, {}  # not listening yet


def status_of(call: Any) -> int:
    try:
        call()
    except ApiError as exc:
        return exc.status
    return 200


def test_read_api(
    served: tuple[Operator, str, Path], kubectl: Kubectl, operator_dsn_file: Path, tmp_path: Path
) -> None:
    operator, server, ca = served
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    rbac(kubectl)
    for tenant in TENANTS:
        kubectl.apply(builders.tenant(tenant, owners=[builders.user("owner")]))
    eventually(lambda: ca.exists() and raw(f"{server}/readyz", ca)[0] == 200, what="the read API ready", timeout=90)
    assert raw(f"{server}/healthz", ca) == (200, {"ok": True, "checks": {}})
    ledger = Ledger(operator_dsn_file.read_text().strip())

    def tenant_seqs(tenant: str) -> list[int]:
        return [record.seq for record in ledger.records(tenant=tenant)]

    eventually(lambda: all(len(tenant_seqs(t)) >= 3 for t in TENANTS), what="records of both tenants")

    def published() -> tuple[str, int]:
        cm = kubectl.get("configmap", ledger_manifests.CHECKPOINT_CONFIGMAP, operator.namespace)
        return ledger_manifests.published_note(cm) or "", ledger_manifests.published_size(cm)

    last = max(tenant_seqs(TENANTS[0]) + tenant_seqs(TENANTS[1]))
    eventually(lambda: published()[1] >= last, what=f"a checkpoint covering record {last}")

    tokens = {account: token(kubectl, account) for account in ("reader-e2e-api-a", "auditor", "nobody")}
    token_files = {}
    for account, value in tokens.items():
        token_files[account] = tmp_path / f"{account}.token"
        token_files[account].write_text(value)

    def client(account: str | None) -> ReadApiClient:
        found = ReadApiClient.of(server, token_files.get(account or "", tmp_path / "none"), ca, False)
        return found

    (tmp_path / "none").write_text("")
    (tmp_path / "forged").write_text("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
    anonymous, forged = client(None), ReadApiClient.of(server, tmp_path / "forged", ca, False)
    reader, auditor, nobody = client("reader-e2e-api-a"), client("auditor"), client("nobody")
    a, b = TENANTS
    a_seq, b_seq = tenant_seqs(a)[0], tenant_seqs(b)[0]

    # Authentication and authorisation.
    assert status_of(lambda: anonymous.get("/api/v1/audit", {"tenant": a})) == 401
    assert status_of(lambda: forged.get("/api/v1/audit", {"tenant": a})) == 401
    assert status_of(lambda: nobody.get("/api/v1/audit", {"tenant": a})) == 403
    assert status_of(lambda: reader.get("/api/v1/audit", {"tenant": b})) == 403
    assert status_of(lambda: reader.get("/api/v1/audit")) == 403  # all tenants: not granted
    assert status_of(lambda: reader.get("/api/v1/status")) == 403
    assert status_of(lambda: reader.get(f"/api/v1/audit/{b_seq}")) == 404  # another tenant's: as if absent
    assert status_of(lambda: reader.get(f"/api/v1/proofs/{b_seq}")) == 404
    assert status_of(lambda: reader.get("/api/v1/audit/999999")) == 404
    assert status_of(lambda: reader.get("/api/v1/audit", {"tenant": a, "limit": "0"})) == 400

    # A tenant's reader reads its tenant's records, verbatim.
    mine = reader.get("/api/v1/audit", {"tenant": a})["records"]
    assert [r["seq"] for r in mine] == tenant_seqs(a)
    assert all(json.loads(r["canonical"])["tenant"] == a for r in mine)
    one = reader.get(f"/api/v1/audit/{a_seq}")
    stored = ledger.record(a_seq)
    assert stored is not None
    assert one["canonical"].encode() == stored.canonical
    assert base64.b64decode(one["recordHash"]) == stored.record_hash
    assert [t["name"] for t in reader.get("/api/v1/tenants")["tenants"]] == [a]

    # The proof verifies against the published, signed checkpoint.
    cm = kubectl.get("configmap", ledger_manifests.CHECKPOINT_CONFIGMAP, operator.namespace)
    verifiers = [parse_verifier_key(key) for key in ledger_manifests.published_verifier_keys(cm)]
    proof = reader.get(f"/api/v1/proofs/{a_seq}")
    checkpoint = parse_and_verify(proof["checkpoint"]["note"].encode(), verifiers)
    assert checkpoint.size == proof["treeSize"] and proof["leafIndex"] == a_seq - 1
    assert merkle.verify_inclusion(
        merkle.leaf_hash(stored.record_hash),
        a_seq - 1,
        checkpoint.size,
        [base64.b64decode(h) for h in proof["hashes"]],
        checkpoint.root,
    )
    # ... and by Go's sumdb/tlog (tlog.CheckRecord), which shares no code with ours.
    request = {
        "size": proof["treeSize"],
        "root": proof["checkpoint"]["rootHash"],
        "inclusion": [{"index": proof["leafIndex"], "leaf": one["recordHash"], "proof": proof["hashes"]}],
        "consistency": [],
    }
    go = go_merkle(build_noteverify(), request)
    assert go.returncode == 0, go.stderr
    latest = auditor.get("/api/v1/checkpoints/latest")
    assert latest["size"] >= last and latest["note"].startswith("privatevault.io/ledger\n")

    # Paging: the auditor walks the whole ledger two records a page, each record once, in order.
    size = ledger.size()
    paged = [r["seq"] for r in auditor.pages("/api/v1/audit", {"limit": 2, "seqTo": size})]
    assert paged == list(range(1, size + 1))
    status = auditor.get("/api/v1/status")
    assert status["ledger"]["size"] >= size and status["ledger"]["integrityOk"] is True
    assert status["kms"] == {"local": "Reachable"}

    # /metrics as on the metrics port.
    context = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(f"{server}/metrics", timeout=10, context=context) as answer:  # noqa: S310
        assert b"privatevault_ledger_integrity_ok" in answer.read()

    # pvctl through the API.
    common = ["--server", server, "--token-file", str(token_files["auditor"]), "--ca-file", str(ca)]
    done = pvctl("status", *common, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ledger"]["size"] >= size
    done = pvctl("tenant", "list", *common, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert {a, b} <= {t["name"] for t in json.loads(done.stdout)}
    done = pvctl("audit", "tail", "-n", "3", *common, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 3
    as_reader = ["--server", server, "--token-file", str(token_files["reader-e2e-api-a"]), "--ca-file", str(ca)]
    mine_tail = pvctl("audit", "tail", "--tenant", a, *as_reader, "--format", "json")
    assert mine_tail.returncode == 0, mine_tail.stderr
    assert {row["tenant"] for row in json.loads(mine_tail.stdout)} == {a}

    # pvctl audit verify through the API, against the published keys pinned on the command line.
    keys = [arg for key in ledger_manifests.published_verifier_keys(cm) for arg in ("--verifier-key", key)]
    done = pvctl("audit", "verify", *common, *keys, "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)[0]["ok"] is True
    done = pvctl("audit", "verify", *common, "--verifier-key", "other+12345678+AQ" + "A" * 43, "--format", "json")
    assert done.returncode != 0
    mine_verify = pvctl("audit", "verify", *as_reader, *keys)
    assert mine_verify.returncode == 2 and "403" in mine_verify.stderr  # the whole chain is not a tenant's to read

    # pvctl evidence get --server: a finished bundle through the API, its digest checked against the
    # one the status reports; 403 for a token not granted the tenant, 404 for no such export.
    destination = tmp_path / "evidence"
    destination.mkdir()
    end = datetime.now(UTC).replace(microsecond=0)
    time.sleep(1.1)  # the window ends in the past
    kubectl.apply(
        builders.evidence_export(
            EXPORT, tenants=[a], start=_time(started), end=_time(end), destination={"path": str(destination)}
        )
    )
    ready = wait_for_condition(kubectl, "evidenceexport", EXPORT, "Ready", current=True, timeout=120)["status"]
    fetched = tmp_path / "fetched" / "bundle.tar.gz"
    fetched.parent.mkdir()
    done = pvctl("evidence", "get", EXPORT, *as_reader, "-o", str(fetched), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["digest"] == ready["digest"]
    assert fetched.read_bytes() == Path(ready["location"]).read_bytes()
    as_nobody = ["--server", server, "--token-file", str(token_files["nobody"]), "--ca-file", str(ca)]
    denied = pvctl("evidence", "get", EXPORT, *as_nobody, "-o", str(tmp_path / "fetched" / "denied.tar.gz"))
    assert denied.returncode == 1 and "403" in denied.stderr and "get evidence" in denied.stderr, denied.stderr
    unknown = pvctl("evidence", "get", "no-such-export", *as_reader, "-o", str(tmp_path / "fetched" / "x.tar.gz"))
    assert unknown.returncode == 1 and "404" in unknown.stderr, unknown.stderr
    assert sorted(p.name for p in fetched.parent.iterdir()) == ["bundle.tar.gz"]  # nothing left aside

    # pvctl compliance report through the API equals the database's; a tenant's reader sees its own.
    states = {"ac-1": control("pass"), "ac-2": control("fail", "Critical")}
    compliance_history.append(ledger, [(a, states), (b, states), (a, states | {"ac-2": control("pass", "Critical")})])
    done = pvctl("compliance", "report", *common, "--format", "json")
    assert done.returncode == 0, done.stderr
    local = pvctl("compliance", "report", "--dsn-file", str(operator_dsn_file), "--format", "json")
    assert local.returncode == 0, local.stderr
    assert json.loads(done.stdout) == json.loads(local.stdout)
    assert {t["tenant"]: t["score"] for t in json.loads(done.stdout)["frameworks"][0]["tenants"]} == {a: 100, b: 33}
    mine = pvctl("compliance", "report", "--tenant", a, *as_reader, "--format", "json")
    assert mine.returncode == 0, mine.stderr
    assert [t["tenant"] for t in json.loads(mine.stdout)["frameworks"][0]["tenants"]] == [a]

    ledger.close()
    log = operator.log()
    for value in tokens.values():
        assert value not in log
    assert "c2ln" not in log


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def pvctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "privatevault", *args], capture_output=True, text=True, check=False, timeout=120
    )
