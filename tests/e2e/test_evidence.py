"""Evidence end to end on the real control plane, with the operator as a real process and the
ledger in the real PostgreSQL: an export of a gated tenant waits in AwaitingQuorum, an approval
signed as `pvctl approvals create` does lets it through, the bundle verifies offline with
`pvctl evidence verify` and the published keys alone, tampering is caught, and the bundle
rebuilt after it was removed has the same bytes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from privatevault.evidence import archive, keys, manifest
from privatevault.ledger.store import Ledger
from privatevault.manifests import ledger as ledger_manifests
from privatevault.quorum import dsse
from tests import builders, compliance_history
from tests.compliance_history import control
from tests.quorum_keys import ApproverKeys, approver, signed_approval
from tests.support import Kubectl, Operator, eventually, wait_for_condition

from .test_quorum import pending_of, waiting

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]

FAILING = {"ac-1": control("pass"), "ac-2": control("fail", "Critical")}
PASSING = {"ac-1": control("pass"), "ac-2": control("pass", "Critical")}


@pytest.fixture
def operator(kubectl: Kubectl, operator_dsn_file: Path, tmp_path: Path) -> Iterator[Operator]:
    running = Operator(
        tmp_path, kubectl.kubeconfig, operator_dsn_file, PRIVATEVAULT_CHECKPOINT_EVERY_SECONDS="1"
    ).start()
    yield running
    running.stop()


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def pvctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "privatevault", *args], capture_output=True, text=True, check=False, timeout=300
    )


def published_keys(kubectl: Kubectl, operator: Operator) -> list[str]:
    def found() -> list[str] | None:
        data = (kubectl.get("configmap", ledger_manifests.CHECKPOINT_CONFIGMAP, operator.namespace) or {}).get("data")
        if not data or not data.get(ledger_manifests.EVIDENCE_KEYS_KEY):
            return None
        return [
            line
            for key in (ledger_manifests.VERIFIER_KEYS_KEY, ledger_manifests.EVIDENCE_KEYS_KEY)
            for line in data[key].splitlines()
            if line
        ]

    result: list[str] = eventually(found, timeout=60, what="the published verifier and evidence keys")
    return result


def _pack(files: Path, out: Path) -> Path:
    with out.open("wb") as sink:
        archive.write(sink, [(str(p.relative_to(files)), p) for p in files.rglob("*") if p.is_file()])
    return out


def verify(bundle: Path, verifier_keys: list[str]) -> dict[str, Any]:
    done = pvctl(
        "evidence",
        "verify",
        str(bundle),
        *[a for k in verifier_keys for a in ("--verifier-key", k)],
        "--format",
        "json",
    )
    assert done.returncode in (0, 1), done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_an_approved_export_verifies_offline_and_tampering_is_caught(
    kubectl: Kubectl, operator: Operator, operator_dsn_file: Path, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]
    qp, tenant, name = f"exports-{suffix}", f"audited-{suffix}", f"q1-{suffix}"
    alice = ApproverKeys.generate()
    # Self-approval allowed: no admission webhook runs here, so the requester is unknown.
    kubectl.apply(
        builders.quorum_policy(
            qp,
            approvers=[approver("alice", alice, roles=["security"])],
            rules=[builders.rule("CreateEvidenceExport", allow_self_approval=True)],
        )
    )
    wait_for_condition(kubectl, "quorumpolicy", qp, "Ready", current=True)
    # The tenant's compliance state before the window and a change of it in the window, as the
    # controller records them (through the real Ledger, in the operator's database).
    ledger = Ledger(operator_dsn_file.read_text().strip())
    try:
        (before,) = compliance_history.append(ledger, [(tenant, FAILING)])
        time.sleep(2.1)
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
        kubectl.apply(builders.tenant(tenant, quorum_policy_ref=qp))
        wait_for_condition(kubectl, "tenant", tenant, "Ready", current=True)
        changed = ledger.append(
            compliance_history.event(
                tenant, PASSING, (before, FAILING), framework="baseline", uid="uid-baseline", generation=1
            )
        )
    finally:
        ledger.close()
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 0.5)

    destination = tmp_path / "evidence"
    destination.mkdir()
    kubectl.apply(
        builders.evidence_export(
            name, tenants=[tenant], start=_time(start), end=_time(end), destination={"path": str(destination)}
        )
    )
    pending = pending_of(kubectl, "evidenceexport", name, "CreateEvidenceExport")
    assert pending["policy"] == qp and pending["approvals"] == "0/1"
    waiting(kubectl, "evidenceexport", name, "0/1 approvals")
    assert not list(destination.iterdir())

    kubectl.apply(signed_approval(None, pending, "alice", alice))
    ready = wait_for_condition(kubectl, "evidenceexport", name, "Ready", current=True, timeout=120)
    status = ready["status"]
    bundle = Path(status["location"])
    assert bundle == destination / f"{name}.tar.gz"
    assert status["digest"] == "sha256:" + archive.sha256_file(bundle) and status["size"] == bundle.stat().st_size
    # The tenant's records and the policy in force; the export's own decision is after its window.
    assert status["records"] >= 3 and status["policies"] >= 1 and status["checkpoint"] >= 1
    assert [p.name for p in destination.iterdir()] == [bundle.name]  # nothing left aside

    keys_published = published_keys(kubectl, operator)
    report = verify(bundle, keys_published)
    assert report["ok"] is True, report
    assert report["tenants"] == [tenant] and report["records"] == status["records"]
    assert report["complete"] is True and report["unlinkedRecords"] == 0  # the tenant chain, end to end
    assert report["complianceBeforeRecords"] == 1
    assert report["compliance"] == [
        {
            "framework": "baseline",
            "frameworkUid": "uid-baseline",
            "tenant": tenant,
            "start": {"seq": before, "score": 33},
            "end": {"seq": changed.seq, "score": 100, "failing": []},
            "changes": 1,
        }
    ]

    # Tampered: a record changed (its digest), and the manifest signed again by a stranger.
    files = tmp_path / "unpacked"
    files.mkdir()
    archive.unpack(bundle, files)
    records = files / "audit" / tenant / "records.jsonl"
    # Another score in the window's compliance-state record: the file is not the one signed.
    genuine = records.read_bytes()
    assert b'"score":100' in genuine
    records.write_bytes(genuine.replace(b'"score":100', b'"score":99', 1))
    report = verify(_pack(files, tmp_path / "other-score.tar.gz"), keys_published)
    assert report["ok"] is False, report
    assert (report["problem"]["check"], report["problem"]["where"]) == ("digest", f"audit/{tenant}/records.jsonl")
    records.write_bytes(genuine)
    records.write_bytes(records.read_bytes().replace(tenant.encode(), b"someone-else", 1))
    report = verify(_pack(files, tmp_path / "tampered.tar.gz"), keys_published)
    assert report["ok"] is False and report["problem"]["where"] == f"audit/{tenant}/records.jsonl"
    envelope = json.loads((files / manifest.ENVELOPE).read_bytes())
    stranger = keys.generate("intruder/evidence").only("Ed25519")
    payload = dsse.parse(envelope).payload
    (files / manifest.ENVELOPE).write_bytes(manifest.envelope_bytes(dsse.sign(payload, stranger.pairs)))
    report = verify(_pack(files, tmp_path / "resigned.tar.gz"), keys_published)
    assert report["ok"] is False and report["problem"]["check"] == "manifest-signature"

    # Built twice: removed, the resync builds it again to the same bytes (the same anchor, the
    # same latest checkpoint, the manifest signature recorded in the ledger).
    first = bundle.read_bytes()
    bundle.unlink()
    eventually(bundle.is_file, timeout=60, what="the bundle rebuilt")
    assert bundle.read_bytes() == first

    # pvctl evidence get fetches it, checking its digest.
    fetched = tmp_path / "fetched.tar.gz"
    done = pvctl("evidence", "get", name, "--kubeconfig", str(kubectl.kubeconfig), "-o", str(fetched))
    assert done.returncode == 0, done.stdout + done.stderr
    assert fetched.read_bytes() == first
