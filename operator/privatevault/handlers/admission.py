"""kopf wiring of the validating admission webhook that records who requests each gated action.

kopf serves the webhook (``kopf.WebhookServer``, TLS) and keeps the ValidatingWebhookConfiguration
named by the settings up to date, ``clientConfig.url`` and ``caBundle`` included; the operator
records each configuration in the ledger before kopf writes it (``register-admission-webhook``),
as it records every change it makes. Every webhook ignores failures (``failurePolicy: Ignore``)
and declares ``sideEffects: NoneOnDryRun``: a dry run is let through unrecorded. The webhook never
refuses: when the ledger does not take the record within ``record_timeout`` the request goes ahead
unrecorded, and the gates, which never depend on the webhook, then treat its requester as unknown
(``reconcile.requesters``). kopf 1.45 writes ``timeoutSeconds: 30`` (fixed in its
``build_webhooks``); a closed port fails at once, so that matters only for a hung process.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any

import kopf

from privatevault import servingcert
from privatevault.api.v1alpha1 import (
    ComplianceFramework,
    EvidenceExport,
    ProtectionPolicy,
    QuorumPolicy,
    Resource,
    Tenant,
)
from privatevault.app import App, OperatorAudit
from privatevault.errors import PrivateVaultError
from privatevault.handlers import wiring
from privatevault.ledger import Event, ResourceRef
from privatevault.reconcile import requesters
from privatevault.reconcile.audit import digest
from privatevault.settings import Settings

#: The uid of the admission request being served: kopf hands its handlers the user, the objects and
#: the operation, but not the request's own uid, which keys the record.
REQUEST_UID: ContextVar[str] = ContextVar("privatevault_admission_request_uid", default="")

KINDS: tuple[type[Resource], ...] = (Tenant, ProtectionPolicy, QuorumPolicy, EvidenceExport, ComplianceFramework)

log = logging.getLogger("privatevault.admission")


class Server(kopf.WebhookServer):
    """kopf's webhook server, with each request's uid in :data:`REQUEST_UID` while it is served,
    and ``before_register`` called with each client config before kopf registers it."""

    def __init__(
        self,
        *,
        before_register: Callable[[kopf.WebhookClientConfig], Awaitable[None]] | None = None,
        service: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.before_register = before_register
        self.service = service

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async def with_uid(
            request: Any,
            *,
            webhook: str | None = None,
            headers: kopf.Headers | None = None,
            sslpeer: kopf.SSLPeer | None = None,
        ) -> Any:
            token = REQUEST_UID.set(str(request.get("request", {}).get("uid") or ""))
            try:
                return await fn(request, webhook=webhook, headers=headers, sslpeer=sslpeer)
            finally:
                REQUEST_UID.reset(token)

        async for found in super().__call__(with_uid):
            config = by_service(found, self.service, self.port) if self.service else found
            if self.before_register is not None:
                await self.before_register(config)
            yield config


def by_service(config: kopf.WebhookClientConfig, service: str, port: int | None) -> kopf.WebhookClientConfig:
    """``config`` pointing at the Service ``namespace/name`` instead of a URL (kopf appends each
    handler's path to ``service.path`` as it does to the URL)."""
    namespace, _, name = service.partition("/")
    if not namespace or not name:
        raise ValueError(f"PRIVATEVAULT_WEBHOOK_SERVICE must be namespace/name, not {service!r}")
    reference = kopf.WebhookClientConfigService(namespace=namespace, name=name)
    path = urllib.parse.urlsplit(str(config.get("url") or "")).path.rstrip("/")
    if path:
        reference["path"] = path
    if port is not None:
        reference["port"] = port
    out = kopf.WebhookClientConfig(service=reference)
    if config.get("caBundle"):
        out["caBundle"] = config["caBundle"]
    return out


def server(
    settings: Settings, before_register: Callable[[kopf.WebhookClientConfig], Awaitable[None]] | None = None
) -> Server:
    """The TLS server: the configured certificate, else one generated for the advertised host."""
    hook = settings.webhook
    if hook.cert_file is not None and hook.key_file is not None:
        cert, key, ca = hook.cert_file, hook.key_file, hook.ca_file
    else:
        files = servingcert.ensure(settings.state_dir / settings.namespace / "webhook", hook.advertised_host)
        cert, key, ca = files.cert, files.key, hook.ca_file or files.ca
    return Server(
        addr=hook.addr,
        port=hook.port,
        host=hook.advertised_host,
        certfile=cert,
        pkeyfile=key,
        cafile=ca,
        before_register=before_register,
        service=hook.service,
    )


def registration(app: App) -> Callable[[kopf.WebhookClientConfig], Awaitable[None]]:
    """Audits the webhook configuration before kopf writes it, like every change the operator makes;
    while the ledger is down, kopf waits (and so does the webhook: no record, no registration)."""
    audit = OperatorAudit(app.ledger, app.settings)
    name = app.settings.webhook.configuration

    def record(config: kopf.WebhookClientConfig) -> None:
        details = {
            "url": config.get("url"),
            "service": dict(config.get("service") or {}) or None,
            "caBundleSha256": digest({"caBundle": config.get("caBundle", "")}),
            "webhooks": [f"requester-{model.kind.lower()}" for model in KINDS],
        }
        audit.record(
            "register-admission-webhook",
            ResourceRef(kind="ValidatingWebhookConfiguration", name=name),
            change=digest(details),
            details=details,
        )

    async def before_register(config: kopf.WebhookClientConfig) -> None:
        while True:
            try:
                await asyncio.to_thread(record, config)
                return
            except PrivateVaultError as exc:
                log.warning("the admission webhook waits for its registration to be recorded: %s", exc)
                await asyncio.sleep(app.settings.retry_delay)

    return before_register


def _append(app: App, events: Sequence[Event]) -> None:
    for event in events:
        app.ledger.append(event)


def register(registry: kopf.OperatorRegistry, app: App) -> None:
    """The webhook, when enabled: its server and configuration at start-up, one handler per kind."""
    if not app.settings.webhook.enabled:
        return

    @kopf.on.startup(registry=registry)
    def serve(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.admission.server = server(app.settings, registration(app))
        settings.admission.managed = app.settings.webhook.configuration

    for model in KINDS:
        _register_kind(registry, app, model)


def _register_kind(registry: kopf.OperatorRegistry, app: App, model: type[Resource]) -> None:
    kind = model.kind

    @kopf.on.validate(
        *wiring.resource_of(model),
        registry=registry,
        id=f"requester-{kind.lower()}",
        operations=list(requesters.GATED[kind]),
        side_effects=True,  # sideEffects: NoneOnDryRun
        ignore_failures=True,  # failurePolicy: Ignore
    )
    async def record(*, userinfo: kopf.UserInfo, dryrun: bool, logger: kopf.Logger, **kwargs: Any) -> None:
        # kopf passes operation, old and new too, though its WebhookFn protocol does not name them.
        operation: str | None = kwargs.get("operation")
        old: kopf.Body | None = kwargs.get("old")
        new: kopf.Body | None = kwargs.get("new")
        request = requesters.Admission(
            uid=REQUEST_UID.get() or f"unknown-{uuid.uuid4()}",
            operation=operation or "",
            kind=kind,
            user=str(userinfo.get("username") or ""),
            groups=tuple(userinfo.get("groups") or ()),
            old=dict(old) if old is not None else None,
            new=dict(new) if new is not None else None,
            dry_run=dryrun,
        )
        events = requesters.events(request)
        if not events:
            return
        try:
            await asyncio.wait_for(asyncio.to_thread(_append, app, events), app.settings.webhook.record_timeout)
        except Exception as exc:  # never refuse: the gates hold without the record
            logger.warning(
                "the requester %s of %s %s was not recorded in time (let through): %r",
                request.user,
                operation,
                kind,
                exc,
            )
            return
        for event in events:
            logger.info("recorded %s as requester of %s", request.user, event.details["action"])
