"""pvctl evidence verify, offline: a genuine bundle verifies (table and JSON), a tampered one fails
with exit 1 naming the problem, a malformed key is a usage error; export and get on a fake cluster;
get --server takes the kubeconfig's token without --token-file, and reports progress on stderr."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from privatevault.cli.client import ReadApiClient
from privatevault.cli.evidence import _Progress, app
from privatevault.cli.session import Session
from tests.evidence_scenario import scenario
from tests.unit.fakes import FakeCluster

runner = CliRunner()


def _bundle(tmp_path: Path) -> tuple[Path, list[str]]:
    world = scenario()
    work = tmp_path / "w"
    work.mkdir()
    out = tmp_path / "b.tar.gz"
    world.build(work, out)
    args = [arg for key in world.verifier_keys for arg in ("--verifier-key", key)]
    return out, [*args, "--witness-key", world.witness.verifier_key]


def test_verify_a_genuine_bundle(tmp_path: Path) -> None:
    bundle, keys = _bundle(tmp_path)
    done = runner.invoke(app, ["verify", str(bundle), *keys])
    assert done.exit_code == 0, done.output
    assert "verified" in done.output and "1 decision(s) (1 re-run)" in done.output
    assert (
        "compliance baseline / acme: score 33 (record 4) at the start, 100 (record 18) at the end,"
        " 1 change(s) in the window"
    ) in done.output
    done = runner.invoke(app, ["verify", str(bundle), *keys, "--format", "json"])
    assert done.exit_code == 0 and json.loads(done.output)["ok"] is True
    assert [c["framework"] for c in json.loads(done.output)["compliance"]] == ["baseline", "nist"]


def test_verify_names_the_first_problem(tmp_path: Path) -> None:
    bundle, keys = _bundle(tmp_path)
    data = bytearray(bundle.read_bytes())
    data[-30] ^= 0xFF
    bundle.write_bytes(bytes(data))
    done = runner.invoke(app, ["verify", str(bundle), *keys, "--format", "json"])
    assert done.exit_code == 1
    assert json.loads(done.output)["problem"]["check"] == "archive"
    done = runner.invoke(app, ["verify", str(bundle), "--verifier-key", "nonsense"])
    assert done.exit_code == 2


class _Cluster(FakeCluster):
    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        self.put(obj)
        return obj


def test_export_creates_the_object_and_get_shows_what_to_sign(tmp_path: Path) -> None:
    cluster = _Cluster()
    obj = Session(connect=lambda _: cluster)
    done = runner.invoke(
        app,
        ["export", "q1", "--tenant", "acme", "--from", "2026-03-01T00:00:00Z", "--to", "2026-03-02T00:00:00Z"],
        obj=obj,
    )
    assert done.exit_code == 0, done.output
    created = cluster.get("privatevault.io/v1alpha1", "EvidenceExport", "q1")
    assert created is not None and created["spec"]["tenants"] == ["acme"]
    created["status"] = {
        "conditions": [{"type": "Reconciling", "status": "True", "reason": "AwaitingQuorum", "message": "0/1"}],
        "pending": [{"approvals": "0/1", "signWith": "pvctl approvals create EvidenceExport/q1 --action X"}],
    }
    cluster.put(created)
    done = runner.invoke(app, ["get", "q1"], obj=obj)
    assert done.exit_code == 0 and "pvctl approvals create EvidenceExport/q1" in done.output
    done = runner.invoke(app, ["get", "q1", "-o", str(tmp_path / "x.tar.gz")], obj=obj)
    assert done.exit_code == 1 and "no finished bundle" in done.output


def _kubeconfig(tmp_path: Path, user: dict[str, Any]) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def test_without_a_token_file_the_kubeconfigs_token_is_used(tmp_path: Path) -> None:
    with_token = _kubeconfig(tmp_path, {"token": "kube-token"})
    client = ReadApiClient.of("https://api:8443/", None, None, False, kubeconfig=with_token, from_kubeconfig=True)
    assert (client.server, client.token) == ("https://api:8443", "kube-token")
    (tmp_path / "t").write_text("file-token\n")
    assert ReadApiClient.of("https://api", tmp_path / "t", None, False, kubeconfig=with_token).token == "file-token"
    certificate = _kubeconfig(tmp_path, {"client-certificate-data": "", "client-key-data": ""})
    done = runner.invoke(
        app, ["get", "q1", "--server", "https://api:8443", "--kubeconfig", str(certificate)], catch_exceptions=False
    )
    assert done.exit_code == 2 and "pass --token-file" in done.output


def test_progress_is_reported_for_large_bundles_only(capsys: pytest.CaptureFixture[str]) -> None:
    with _Progress("q1", quiet=False, every=10) as progress:
        for done in (4, 8):
            progress(done, 8)
    assert capsys.readouterr().err == ""  # under the step: nothing
    with _Progress("q1", quiet=False, every=10) as progress:
        for done in range(5, 35, 5):
            progress(done, 30)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4 and lines[-1] == "q1: done" and "(33%)" in lines[0]
