"""kopf wiring only: parse into the model, call one reconcile function, write status.

Nothing is registered at import time: :func:`registry` builds a fresh ``kopf.OperatorRegistry``
around an :class:`~privatevault.app.App` built by the composition root, so tests and the CLI
decide what runs (and tests hand in an App of fakes).
"""

from __future__ import annotations

import asyncio.sslproto
import logging
from typing import Any

import kopf

from privatevault.api.v1alpha1 import GROUP
from privatevault.app import App
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


def _lifecycle(registry: kopf.OperatorRegistry, app: App) -> None:
    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # kopf's watches log in with the same credentials as the Kubernetes adapter.
        creds = app.cluster.live.credentials()
        return kopf.ConnectionInfo(
            server=creds.server,
            ca_path=creds.ca_path,
            insecure=creds.insecure,
            certificate_path=creds.certificate_path,
            private_key_path=creds.private_key_path,
            token=creds.token,
        )

    @kopf.on.startup(registry=registry)
    def start(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Progress and diff-base live in annotations: the structural status schema would prune
        # anything kopf wrote under status.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        settings.execution.max_workers = app.settings.workers
        # No settings.queueing.worker_limit: with indexes on the same resources, workers held
        # waiting for the indexes to fill would starve the events that fill them (measured: the
        # resume of 1,000 tenants stalled for minutes).
        # Warnings and errors become Kubernetes Events; routine successes stay in the log only.
        settings.posting.level = logging.WARNING
        app.start()

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


def registry(app: App) -> kopf.OperatorRegistry:
    reg = kopf.OperatorRegistry()
    _lifecycle(reg, app)
    indexes.register(reg)
    tenant.register(reg, app)
    protectionpolicy.register(reg, app)
    quorumpolicy.register(reg, app)
    evidenceexport.register(reg, app)
    complianceframework.register(reg, app)
    kinds = (
        tenant.kind(app),
        protectionpolicy.kind(app),
        quorumpolicy.kind(app),
        evidenceexport.kind(app),
        complianceframework.kind(app),
    )
    targets = {k.name: k for k in kinds}
    approval.register(reg, app, targets)
    admission.register(reg, app)
    readapi.register(reg, app)
    return reg


__all__ = ["registry", "tune_transport"]
