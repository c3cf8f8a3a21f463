"""The read API's routes on an App of fakes (aiohttp's test server, real TLS-less HTTP): probes,
the evidence seam authorised per tenant (403 for a tenant not granted, 404 for no bundle), pvctl's
download checked against the digest the API states, and a record of another tenant answered as absent."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer

from privatevault.app import App
from privatevault.cli.client import ApiError, DigestMismatch, ReadApiClient, stated_digest
from privatevault.ledger.event import Record
from privatevault.ledger.integrity import Integrity, Refusal
from privatevault.ledger.tiles import Proof
from privatevault.metrics import OperatorMetrics
from privatevault.readapi import models
from privatevault.readapi.authz import Authorizer
from privatevault.readapi.evidence import EvidenceBundle
from privatevault.readapi.server import ReadApi, _json, page_body, proof_body, record_view, repr_digest
from tests.unit.fakes import MemoryLedger, ledger_event


class Reviews:
    """``token-<user>`` tokens; ``user`` may read what ``grants`` names as (resource, tenant)."""

    def __init__(self, grants: set[tuple[str, str, str]]) -> None:
        self.grants = grants

    def review_token(self, token: str) -> Mapping[str, Any]:
        ok = token.startswith("token-")
        return {"authenticated": ok, "user": {"username": token.removeprefix("token-")}}

    def review_access(self, spec: Mapping[str, Any]) -> Mapping[str, Any]:
        attrs = spec["resourceAttributes"]
        return {"allowed": (spec["user"], attrs["resource"], attrs.get("name", "")) in self.grants}


async def _now(call: Callable[[], Any]) -> Any:
    return call()


BUNDLE = b"\x1f\x8bbundle"
DIGEST = "sha256:" + hashlib.sha256(BUNDLE).hexdigest()


def api(tmp_path: Path, *, integrity: Integrity | None = None, digest: str | None = DIGEST) -> ReadApi:
    ledger = MemoryLedger()
    ledger.append(ledger_event("a1", tenant="acme"))
    ledger.append(ledger_event("g1", tenant="globex"))
    bundle = tmp_path / "acme-q1.tar.gz"
    bundle.write_bytes(BUNDLE)
    app = SimpleNamespace(ledger=ledger, integrity=integrity or Integrity(), metrics=OperatorMetrics())
    grants = {("alice", "audit", "acme"), ("alice", "evidence", "acme"), ("bob", "evidence", "globex")}
    built = ReadApi(
        app=cast(App, app),
        authorizer=Authorizer(Reviews(grants), _now),
        evidence=lambda name: EvidenceBundle(bundle, ("acme",), digest=digest) if name == "acme-q1" else None,
    )
    built.started = True
    return built


def call(read_api: ReadApi, path: str, token: str | None = None) -> tuple[int, bytes]:
    async def go() -> tuple[int, bytes]:
        async with TestClient(TestServer(read_api.application())) as client:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            answer = await client.get(path, headers=headers)
            return answer.status, await answer.read()

    return asyncio.run(go())


def test_probes_and_metrics(tmp_path: Path) -> None:
    read_api = api(tmp_path)
    assert call(read_api, "/healthz")[0] == 200
    assert call(read_api, "/readyz") == (200, b'{"ok":true,"checks":{"kopf":"ok","ledger":"ok","integrity":"ok"}}')
    assert b"privatevault_ledger_integrity_ok" in call(read_api, "/metrics")[1]
    read_api.started = False
    assert call(read_api, "/readyz")[0] == 503
    refused = Integrity(refusal=Refusal("Inconsistent", "rewritten", 2))
    status, body = call(api(tmp_path, integrity=refused), "/readyz")
    assert status == 503 and b"refused: Inconsistent" in body


def test_evidence_seam(tmp_path: Path) -> None:
    read_api = api(tmp_path)
    assert call(read_api, "/api/v1/evidence/acme-q1")[0] == 401
    assert call(read_api, "/api/v1/evidence/acme-q1", "token-alice") == (200, b"\x1f\x8bbundle")
    assert call(read_api, "/api/v1/evidence/acme-q1", "token-bob")[0] == 403  # globex's reader
    assert call(read_api, "/api/v1/evidence/unknown", "token-alice")[0] == 404


def download(read_api: ReadApi, token: str, name: str, into: Path, progress: list[tuple[int, int | None]]) -> Any:
    """pvctl's client (urllib, in a thread) against the API on a loopback port."""

    async def go() -> Any:
        async with TestServer(read_api.application()) as server:
            client = ReadApiClient(str(server.make_url("")).rstrip("/"), token, ssl.create_default_context())
            path = f"/api/v1/evidence/{name}"
            return await asyncio.to_thread(
                lambda: client.download(path, into, progress=lambda done, total: progress.append((done, total)))
            )

    return asyncio.run(go())


def test_pvctl_downloads_a_bundle_checked_against_the_stated_digest(tmp_path: Path) -> None:
    into, progress = tmp_path / "got.tar.gz", []
    got = download(api(tmp_path), "token-alice", "acme-q1", into, progress)
    assert (got.path, got.size, got.digest) == (into, len(BUNDLE), DIGEST)
    assert into.read_bytes() == BUNDLE and progress[-1] == (len(BUNDLE), len(BUNDLE))
    for token, name, status in (
        ("token-bob", "acme-q1", 403),
        ("token-alice", "unknown", 404),
        ("nope", "acme-q1", 401),
    ):
        with pytest.raises(ApiError) as refused:
            download(api(tmp_path), token, name, tmp_path / "no.tar.gz", [])
        assert refused.value.status == status
    assert not (tmp_path / "no.tar.gz").exists()


@pytest.mark.parametrize("digest", ["sha256:" + "00" * 32, None], ids=["mismatch", "unstated"])
def test_a_download_that_does_not_match_the_stated_digest_leaves_nothing(tmp_path: Path, digest: str | None) -> None:
    (tmp_path / "out").mkdir()
    into = tmp_path / "out" / "got.tar.gz"
    with pytest.raises(DigestMismatch, match="sha256:0000" if digest else "states no SHA-256"):
        download(api(tmp_path, digest=digest), "token-alice", "acme-q1", into, [])
    assert list((tmp_path / "out").iterdir()) == []  # neither the file nor the one written aside


def test_repr_digest_round_trips() -> None:
    assert stated_digest(repr_digest(DIGEST)) == DIGEST
    assert stated_digest("sha-512=:AAAA:, sha-256=:" + repr_digest(DIGEST).split(":")[1] + ":") == DIGEST
    assert stated_digest("sha-512=:AAAA:") is None and stated_digest(None) is None


def test_other_tenants_record_is_absent(tmp_path: Path) -> None:
    read_api = api(tmp_path)
    status, body = call(read_api, "/api/v1/audit/1", "token-alice")
    assert status == 200 and json.loads(json.loads(body)["canonical"])["tenant"] == "acme"
    missing, forbidden = (
        call(read_api, "/api/v1/audit/99", "token-alice"),
        call(read_api, "/api/v1/audit/2", "token-alice"),
    )
    assert missing[0] == forbidden[0] == 404
    assert b"globex" not in forbidden[1]
    assert call(read_api, "/api/v1/audit/1", "forged")[0] == 401
    assert call(read_api, "/api/v1/audit?tenant=globex", "token-alice")[0] == 403
    assert call(read_api, "/api/v1/audit?tenat=acme", "token-alice")[0] == 400


def test_a_proof_is_written_as_its_model_would_be() -> None:
    """The proof's body, built by hand on the hot path, is byte for byte the model's JSON (the
    OpenAPI document's schema), a non-ASCII signature line in the note included."""
    view = models.Checkpoint(origin="o", size=9, root_hash="cm9vdA==", note="o\n9\ncm9vdA==\n\n\u2014 o AAAA\n")
    proof = Proof(index=4, size=9, tenant="acme", leaf_hash=bytes(range(32)), hashes=[b"\xff" * 32, b"\x01" * 32])
    model = models.InclusionProof(
        seq=5,
        leaf_index=4,
        tree_size=9,
        leaf_hash=base64.b64encode(proof.leaf_hash).decode(),
        hashes=[base64.b64encode(h).decode() for h in proof.hashes],
        checkpoint=view,
    )
    assert proof_body(proof, cast(bytes, _json(view).body)) == _json(model).body
    assert json.loads(proof_body(proof, cast(bytes, _json(view).body)))["checkpoint"]["note"] == view.note


def test_a_page_is_written_as_its_model_would_be() -> None:
    """Pages too are built by hand: the same bytes as the model's JSON, for canonical bytes that
    need escaping (quotes, a backslash, non-ASCII) and with and without a next cursor."""
    records = [
        Record(seq=1, canonical=b'{"a":"x"}', prev_hash=bytes(32), record_hash=b"\x01" * 32, idempotency_key="k1"),
        Record(
            seq=2,
            canonical='{"name":"\u00e9t\u00e9 \\ \\"q\\"","t":"\u2603"}'.encode(),
            prev_hash=b"\x01" * 32,
            record_hash=b"\xfe" * 32,
            idempotency_key="k2",
        ),
    ]
    for cursor in (None, "eyJhZnRlciI6Mn0"):
        model = models.AuditPage(records=[record_view(r) for r in records], next_cursor=cursor)
        assert page_body(records, cursor) == _json(model).body
    assert page_body([], None) == _json(models.AuditPage(records=[])).body
