"""The read API's aiohttp application, served over TLS in the operator's event loop.

Routes (``docs/read-api.md``): ``/healthz`` (the process answers), ``/readyz`` (ledger reachable,
integrity not refused, kopf's start-up done), ``/metrics`` (the operator's Prometheus collector,
as on the metrics port), and under ``/api/v1`` the ledger views, each authorised per tenant
(:mod:`privatevault.readapi.authz`). Blocking reads (PostgreSQL, the API server's reviews) run on
a small thread pool of the API's own, so a burst of readers never starves kopf's workers.

Nothing secret is logged: the access log is off, and errors name the view and the reason, never
the Authorization header.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel

from privatevault import servingcert
from privatevault.app import App
from privatevault.errors import PrivateVaultError
from privatevault.ledger import merkle
from privatevault.ledger.event import Record
from privatevault.ledger.reader import PageQuery, Reader
from privatevault.ledger.tiles import Proof, ProofTiles
from privatevault.ledger.tiles import read as read_tiles
from privatevault.manifests import ledger as ledger_manifests
from privatevault.readapi import models, query, views
from privatevault.readapi.authz import Attributes, Authorizer, Unauthenticated, User
from privatevault.readapi.evidence import Locator, none
from privatevault.readapi.openapi import document

log = logging.getLogger("privatevault.readapi")

T = TypeVar("T")

#: Seconds the published checkpoint is reused between reads of its ConfigMap (proofs are made
#: against it; a new checkpoint appears at most this late).
CHECKPOINT_TTL = 1.0
#: Threads for the API's blocking reads.
THREADS = 8


class Refused(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.problem = models.Problem(status=status, reason=reason, message=message)


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(model.model_dump(mode="json", by_alias=True), separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def record_view(record: Record) -> models.AuditRecord:
    return models.AuditRecord(
        seq=record.seq,
        canonical=record.canonical.decode(),
        prev_hash=_b64(record.prev_hash),
        record_hash=_b64(record.record_hash),
        leaf_hash=_b64(merkle.leaf_hash(record.record_hash)),
    )


def record_body(record: Record) -> bytes:
    """:func:`record_view` as :func:`_json` writes it, built directly (a page holds up to 1,000)."""
    return b'{"seq":%d,"canonical":%s,"prevHash":"%s","recordHash":"%s","leafHash":"%s"}' % (
        record.seq,
        json.dumps(record.canonical.decode()).encode(),
        binascii.b2a_base64(record.prev_hash, newline=False),
        binascii.b2a_base64(record.record_hash, newline=False),
        binascii.b2a_base64(merkle.leaf_hash(record.record_hash), newline=False),
    )


def page_body(records: list[Record], cursor: str | None) -> bytes:
    """A :class:`~privatevault.readapi.models.AuditPage` as :func:`_json` writes it."""
    return b'{"records":[%s],"nextCursor":%s}' % (
        b",".join([record_body(record) for record in records]),
        json.dumps(cursor).encode(),
    )


def tenant_of(record: Record) -> str:
    return str(json.loads(record.canonical).get("tenant") or "")


def _seq(request: web.Request) -> int:
    try:
        return int(request.match_info["seq"])
    except ValueError:
        raise Refused(400, "BadQuery", "seq must be an integer") from None


def bearer(headers: Mapping[str, str]) -> str | None:
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


@dataclass(frozen=True)
class _Published:
    at: float = -1e9
    view: models.Checkpoint | None = None
    #: ``view`` as JSON, as :func:`_json` writes it (every proof against it carries it).
    body: bytes = b"null"


def proof_body(proof: Proof, checkpoint: bytes) -> bytes:
    """An :class:`~privatevault.readapi.models.InclusionProof` as :func:`_json` writes it, built
    directly: the hot path of the API (base64 needs no JSON escaping; ``checkpoint`` is the
    checkpoint's JSON, made once per checkpoint)."""
    hashes = b",".join([b'"%s"' % binascii.b2a_base64(digest, newline=False) for digest in proof.hashes])
    return b'{"seq":%d,"leafIndex":%d,"treeSize":%d,"leafHash":"%s","hashes":[%s],"checkpoint":%s}' % (
        proof.index + 1,
        proof.index,
        proof.size,
        binascii.b2a_base64(proof.leaf_hash, newline=False),
        hashes,
        checkpoint,
    )


@dataclass
class ReadApi:
    """The routes over an :class:`~privatevault.app.App`; :meth:`start` binds, :meth:`stop` unbinds."""

    app: App
    authorizer: Authorizer
    evidence: Locator = none
    clock: Callable[[], float] = time.monotonic
    #: Set once kopf's start-up handlers ran (read by /readyz).
    started: bool = False
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(THREADS, "privatevault-readapi"))
    _published: _Published = field(default_factory=_Published)
    #: The Merkle tree's stored hashes a proof needs, kept after their first read.
    tiles: ProofTiles = field(default_factory=ProofTiles)
    _runner: web.AppRunner | None = None

    @classmethod
    def of(cls, app: App, *, evidence: Locator = none) -> ReadApi:
        pool = ThreadPoolExecutor(THREADS, "privatevault-readapi")

        async def run(call: Callable[[], Any]) -> Any:
            return await asyncio.get_running_loop().run_in_executor(pool, call)

        return cls(
            app=app,
            authorizer=Authorizer(app.cluster.live, run),
            evidence=evidence,
            tiles=ProofTiles(app.settings.api.proof_cache_mib << 20),
            _pool=pool,
        )

    async def _run(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    # -- serving

    def application(self) -> web.Application:
        web_app = web.Application(middlewares=[self._problems])
        web_app.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
                web.get("/metrics", self.metrics),
                web.get("/api/v1/openapi.json", self.openapi),
                web.get("/api/v1/status", self.status),
                web.get("/api/v1/tenants", self.tenants),
                web.get("/api/v1/audit", self.audit),
                web.get("/api/v1/audit/{seq}", self.audit_record),
                web.get("/api/v1/proofs/{seq}", self.proof),
                web.get("/api/v1/checkpoints/latest", self.checkpoint),
                web.get("/api/v1/evidence/{name}", self.evidence_bundle),
            ]
        )
        return web_app

    def ssl_context(self) -> ssl.SSLContext:
        api, settings = self.app.settings.api, self.app.settings
        if api.cert_file is not None and api.key_file is not None:
            cert, key = api.cert_file, api.key_file
        else:
            files = servingcert.ensure(settings.state_dir / settings.namespace / "api", api.advertised_host)
            cert, key = files.cert, files.key
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        return context

    async def start(self) -> None:
        api = self.app.settings.api
        if api.port is None:
            return
        self._runner = web.AppRunner(self.application(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, api.addr, api.port, ssl_context=self.ssl_context()).start()
        log.info("the read API listens on https://%s:%d", api.addr, api.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._pool.shutdown(wait=False, cancel_futures=True)

    @web.middleware
    async def _problems(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refused as refused:
            return _json(refused.problem, refused.problem.status)
        except query.QueryError as exc:
            return _json(models.Problem(status=400, reason="BadQuery", message=str(exc)), 400)
        except Unauthenticated as exc:
            response = _json(models.Problem(status=401, reason="Unauthorized", message=str(exc)), 401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="privatevault"'
            return response
        except PrivateVaultError as exc:
            log.warning("read API: %s failed: %s", request.path, exc)
            return _json(models.Problem(status=503, reason="Unavailable", message=str(exc)), 503)
        except web.HTTPException:
            raise
        except Exception:
            # The path only: a query string or header could carry something secret.
            log.exception("read API: %s failed", request.path)
            return _json(models.Problem(status=500, reason="InternalError", message="see the operator's log"), 500)

    # -- authorisation

    async def _user(self, request: web.Request) -> User:
        return await self.authorizer.authenticate(bearer(request.headers))

    async def _require(self, user: User, attributes: Attributes) -> None:
        if not await self.authorizer.allowed(user, attributes):
            scope = f"tenant {attributes.name}" if attributes.name else "all tenants"
            raise Refused(
                403,
                "Forbidden",
                f"{user.username} may not {attributes.verb} {attributes.resource}.privatevault.io of {scope}",
            )

    # -- probes and metrics (no token: the kubelet and Prometheus call them)

    async def healthz(self, _: web.Request) -> web.Response:
        return _json(models.Health(ok=True))

    async def readyz(self, _: web.Request) -> web.Response:
        checks: dict[str, str] = {"kopf": "ok" if self.started else "starting"}
        try:
            await self._run(self.app.ledger.size)
            checks["ledger"] = "ok"
        except PrivateVaultError as exc:
            checks["ledger"] = f"unreachable: {exc}"
        refusal = self.app.integrity.refusal
        checks["integrity"] = "ok" if refusal is None else f"refused: {refusal.reason}"
        ok = all(value == "ok" for value in checks.values())
        return _json(models.Health(ok=ok, checks=checks), 200 if ok else 503)

    async def metrics(self, _: web.Request) -> web.Response:
        registry = CollectorRegistry()
        registry.register(self.app.metrics)
        body = await self._run(lambda: generate_latest(registry))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def openapi(self, _: web.Request) -> web.Response:
        return web.json_response(document())

    # -- views

    async def status(self, request: web.Request) -> web.Response:
        await self._require(await self._user(request), Attributes("get", "status"))
        app = self.app
        kms: dict[str, Callable[[], bool]] = {"local": lambda: True}
        if app.providers.vault is not None:
            kms["vault"] = app.providers.vault.admin.healthy
        sources = views.Sources(
            cluster=app.cluster,
            ledger=app.ledger,
            namespace=app.settings.namespace,
            origin=app.settings.ledger_origin,
            integrity=app.integrity,
            kms=kms,
        )
        return _json(await self._run(lambda: views.status(sources)))

    async def tenants(self, request: web.Request) -> web.Response:
        user = await self._user(request)
        found = await self._run(lambda: views.tenants(self.app.cluster))
        if not await self.authorizer.allowed(user, Attributes("list", "tenants")):
            found = [
                view for view in found if await self.authorizer.allowed(user, Attributes("get", "tenants", view.name))
            ]
        return _json(models.TenantList(tenants=found))

    async def audit(self, request: web.Request) -> web.Response:
        user = await self._user(request)
        wanted = query.parse(request.query)
        await self._require(user, Attributes("list", "audit", wanted.tenant or ""))
        page = PageQuery(
            start=wanted.start,
            end=wanted.seq_to,
            tenant=wanted.tenant,
            action=wanted.action,
            since=wanted.since,
            until=wanted.until,
            limit=wanted.limit + 1,
        )
        records = await self._run(lambda: Reader(self.app.pool).page(page))
        more = len(records) > wanted.limit
        records = records[: wanted.limit]
        cursor = wanted.cursor_after(records[-1].seq) if more and records else None
        return web.Response(body=page_body(records, cursor), content_type="application/json")

    async def _readable(self, request: web.Request, resource: str) -> tuple[User, Record]:
        """The record ``{seq}`` if the caller may read its tenant's ``resource``; 404 alike when it
        does not exist or belongs to a tenant the caller may not read (nothing leaks either way)."""
        user = await self._user(request)
        seq = _seq(request)
        record = await self._run(lambda: self.app.ledger.record(seq)) if seq >= 1 else None
        if record is None or not await self.authorizer.allowed(user, Attributes("get", resource, tenant_of(record))):
            raise Refused(404, "NotFound", f"no {resource} record {seq} that {user.username} may read")
        return user, record

    async def audit_record(self, request: web.Request) -> web.Response:
        _, record = await self._readable(request, "audit")
        return _json(record_view(record))

    async def _published_checkpoint(self) -> _Published:
        cached = self._published
        if self.clock() - cached.at > CHECKPOINT_TTL:
            app = self.app
            found = await self._run(
                lambda: app.cluster.live.get(
                    "v1", "ConfigMap", ledger_manifests.CHECKPOINT_CONFIGMAP, app.settings.namespace
                )
            )
            view = views.note_view(ledger_manifests.published_note(found))
            if view == cached.view:
                cached = _Published(self.clock(), cached.view, cached.body)
            else:
                body = b"null" if view is None else _json(view).body
                cached = _Published(self.clock(), view, cast(bytes, body))
            self._published = cached
        return cached

    async def _checkpoint(self) -> models.Checkpoint | None:
        return (await self._published_checkpoint()).view

    async def _proven(self, index: int, size: int) -> Proof | None:
        """Leaf ``index``'s proof at ``size``: from memory, else after reading the tiles it lacks."""
        found = self.tiles.proof(index, size)
        if found is None:
            wanted = self.tiles.missing(index, size)
            reader = Reader(self.app.pool)
            loaded = await self._run(lambda: read_tiles(reader, wanted))
            found = self.tiles.proof(index, size, loaded)
            self.tiles.add(loaded)
        return found

    async def proof(self, request: web.Request) -> web.Response:
        user = await self._user(request)
        seq = _seq(request)
        published = await self._published_checkpoint()
        checkpoint = published.view
        found = None
        if checkpoint is not None and 1 <= seq <= checkpoint.size:
            # The caller is checked before anything of the record is sent.
            found = await self._proven(seq - 1, checkpoint.size)
        if found is None or not await self.authorizer.allowed(user, Attributes("get", "proofs", found.tenant)):
            raise Refused(
                404,
                "NotFound",
                f"no proofs record {seq} that {user.username} may read under the published checkpoint"
                " (a new record is proved once a checkpoint covers it)",
            )
        return web.Response(body=proof_body(found, published.body), content_type="application/json")

    async def checkpoint(self, request: web.Request) -> web.Response:
        await self._require(await self._user(request), Attributes("get", "checkpoints"))
        found = await self._checkpoint()
        if found is None:
            raise Refused(404, "NoCheckpoint", "no checkpoint is published yet")
        return _json(found)

    async def evidence_bundle(self, request: web.Request) -> web.StreamResponse:
        user = await self._user(request)
        name = request.match_info["name"]
        bundle = await self._run(lambda: self.evidence(name))
        if bundle is None:
            raise Refused(404, "NotFound", f"no finished evidence bundle {name} (unknown export, or not Ready yet)")
        for tenant in bundle.tenants or ("",):
            await self._require(user, Attributes("get", "evidence", tenant))
        headers = {
            "Content-Type": bundle.media_type,
            "Content-Disposition": f'attachment; filename="{bundle.path.name}"',
        }
        if bundle.digest is not None:
            headers["Repr-Digest"] = repr_digest(bundle.digest)
        return web.FileResponse(bundle.path, headers=headers)


def repr_digest(digest: str) -> str:
    """``sha256:<hex>`` as an RFC 9530 ``Repr-Digest`` value: ``sha-256=:<base64>:``."""
    return f"sha-256=:{base64.b64encode(bytes.fromhex(digest.removeprefix('sha256:'))).decode()}:"
