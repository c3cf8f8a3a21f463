"""kopf wiring only: parse into the model, call one reconcile function, write status.

Nothing is registered at import time: :func:`registry` builds a fresh ``kopf.OperatorRegistry``
around an :class:`~privatevault.app.App` built by the composition root, so tests and the CLI
decide what runs (and tests hand in an App of fakes).
"""

from __future__ import annotations

import asyncio.sslproto
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import kopf

from privatevault.api.v1alpha1 import GROUP, KINDS
from privatevault.app import App
from privatevault.cache import CACHED, Cached
from privatevault.handlers import (
    admission,
    approval,
    complianceframework,
    evidenceexport,
    indexes,
    protectionpolicy,
    quorumpolicy,
    readapi,
    tenant,
)
from privatevault.handlers.observed import storages

log = logging.getLogger("privatevault.handlers")


#: Seconds between log lines while the start-up waits for the informers' first listings.
SYNC_REPORT_SECONDS = 30.0

OnChange = Callable[[Cached, str, dict[str, Any]], None]


def _lifecycle(registry: kopf.OperatorRegistry, app: App, on_change: OnChange, observed: frozenset[str]) -> None:
    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.AiohttpSession:
        # kopf's watches log in with the same credentials as the Kubernetes adapter, through a
        # session of our own (async: it must be made on kopf's event loop).
        creds = app.cluster.live.credentials()
        info = kopf.ConnectionInfo(
            server=creds.server,
            ca_path=creds.ca_path,
            insecure=creds.insecure,
            certificate_path=creds.certificate_path,
            private_key_path=creds.private_key_path,
            token=creds.token,
        )
        return kopf.AiohttpSession(server=info.server, aiohttp_session=session(info, app.settings.api_connections))

    @kopf.on.startup(registry=registry)
    def start(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Progress lives in annotations (the structural status schema would prune anything kopf
        # wrote under status), the last handled state in the status of the ``observed`` kinds.
        diffbase, progress = storages(observed, app.finished)
        settings.persistence.progress_storage = progress
        settings.persistence.diffbase_storage = diffbase
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        settings.execution.max_workers = app.settings.workers
        # No settings.queueing.worker_limit: with indexes on the same resources, workers held
        # waiting for the indexes to fill would starve the events that fill them (measured: the
        # resume of 1,000 tenants stalled for minutes).
        # Warnings and errors become Kubernetes Events; routine successes stay in the log only.
        settings.posting.level = logging.WARNING
        app.start(on_change)
        # kopf starts its watches (and so runs handlers) only after the start-up handlers: no
        # handler reads a cache before every informed kind is listed.
        while not app.informers.wait(SYNC_REPORT_SECONDS):
            log.warning("start-up waits for the first listing of: %s", ", ".join(app.informers.unsynced()))

    @kopf.on.cleanup(registry=registry)
    def stop(**_: Any) -> None:
        app.close()

    @kopf.on.probe(id="ledger-integrity", registry=registry)
    def ledger_integrity(**_: Any) -> dict[str, Any]:
        # Served by `pvctl operator run --liveness URL` (kopf's health endpoint): an HTTP 500 while
        # the checkpointer refuses to sign. Point a readinessProbe at it, not a livenessProbe: a
        # restart cannot repair a rewritten ledger, and the new process would refuse again.
        integrity = app.integrity
        if integrity.refusal is not None:
            since = integrity.since.isoformat() if integrity.since else "start-up"
            raise kopf.PermanentError(
                f"no checkpoint signed since {since} ({integrity.refusal.reason}): {integrity.refusal.message}"
            )
        return {"ok": True, "checkpointSize": integrity.checkpoint_size}


#: Bytes each TLS connection of kopf's reads at a time (asyncio's default is 256 KiB per connection).
TLS_READ_BUFFER = 32 * 1024


def tune_transport() -> None:
    """Smaller TLS read buffers for kopf's connections, once per process, before kopf starts.

    kopf's aiohttp session has no connection limit (``TCPConnector(limit=0)``), so a thousand
    objects processed at once hold a thousand connections, and asyncio gives each a 256 KiB read
    buffer: measured as the largest part of the operator's memory while onboarding 1,000 tenants.
    A TLS record is at most 16 KiB, so 32 KiB reads lose nothing but a few more read calls.
    """
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


#: Connections always left for requests beside the long-lived watch streams (one per watched resource).
REQUEST_CONNECTIONS = 16


def session(info: kopf.ConnectionInfo, connections: int) -> aiohttp.ClientSession:
    """kopf's own session, with at most ``connections`` connections to the API server.

    kopf's built-in session has no limit (``TCPConnector(limit=0)``): with a thousand objects
    handled at once it held a thousand TLS connections, each with its buffers and TLS state, the
    largest part of the operator's memory while onboarding. Above the limit, requests wait for a
    free connection. Every watch stream holds one for as long as it runs, so the limit is raised
    to leave :data:`REQUEST_CONNECTIONS` beside them whatever the setting says.
    """
    watches = len(CACHED) + len(KINDS)
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=max(connections, watches + REQUEST_CONNECTIONS), ssl=info.as_ssl_context()
        ),
        headers=info.as_http_headers(),
    )


def registry(app: App) -> kopf.OperatorRegistry:
    reg = kopf.OperatorRegistry()
    kinds = (
        tenant.kind(app),
        protectionpolicy.kind(app),
        quorumpolicy.kind(app),
        evidenceexport.kind(app),
        complianceframework.kind(app),
    )
    _lifecycle(reg, app, tenant.changes(app), frozenset(k.name for k in kinds if not k.reads_previous))
    indexes.register(reg)
    tenant.register(reg, app)
    protectionpolicy.register(reg, app)
    quorumpolicy.register(reg, app)
    evidenceexport.register(reg, app)
    complianceframework.register(reg, app)
    targets = {k.name: k for k in kinds}
    approval.register(reg, app, targets)
    admission.register(reg, app)
    readapi.register(reg, app)
    return reg


__all__ = ["registry", "tune_transport"]
