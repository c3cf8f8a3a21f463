"""The read API's routes on an App of fakes (aiohttp's test server, real TLS-less HTTP): probes,
the evidence seam authorised per tenant, and a record of another tenant answered as absent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from aiohttp.test_utils import TestClient, TestServer

from privatevault.app import App
from privatevault.ledger.integrity import Integrity, Refusal
from privatevault.metrics import OperatorMetrics
from privatevault.readapi.authz import Authorizer
from privatevault.readapi.evidence import EvidenceBundle
from privatevault.readapi.server import ReadApi
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


def api(tmp_path: Path, *, integrity: Integrity | None = None) -> ReadApi:
    ledger = MemoryLedger()
    ledger.append(ledger_event("a1", tenant="acme"))
    ledger.append(ledger_event("g1", tenant="globex"))
    bundle = tmp_path / "acme-q1.tar.gz"
    bundle.write_bytes(b"\x1f\x8bbundle")
    app = SimpleNamespace(ledger=ledger, integrity=integrity or Integrity(), metrics=OperatorMetrics())
    grants = {("alice", "audit", "acme"), ("alice", "evidence", "acme"), ("bob", "evidence", "globex")}
    built = ReadApi(
        app=cast(App, app),
        authorizer=Authorizer(Reviews(grants), _now),
        evidence=lambda name: EvidenceBundle(bundle, ("acme",)) if name == "acme-q1" else None,
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
    assert call(read_api, "/api/v1/evidence/acme-q1", "token-bob")[0] == 404  # globex's reader
    assert call(read_api, "/api/v1/evidence/unknown", "token-alice")[0] == 404


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
