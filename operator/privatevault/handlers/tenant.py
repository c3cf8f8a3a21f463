"""kopf handlers for Tenant: create, update, resume and the drift timer share one reconcile."""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import kopf

from privatevault import failpoints
from privatevault.api.v1alpha1 import API_VERSION, GROUP, VERSION, Tenant, TenantStatus
from privatevault.cluster import Cluster
from privatevault.errors import PrivateVaultError, SpecError, TransientError
from privatevault.ledger import Ledger
from privatevault.reconcile import tenant as decisions
from privatevault.settings import Settings


class _Runtime:
    """Adapters built at start-up, and one lock per tenant so reconciles of it never overlap."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cluster: Cluster | None = None
        self.ledger: Ledger | None = None
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    def lock(self, uid: str) -> threading.Lock:
        return self._locks[uid]


def _write_status(cluster: Cluster, tenant: Tenant, status: TenantStatus) -> None:
    if tenant.status == status:
        return
    cluster.patch_status(
        API_VERSION,
        "Tenant",
        str(tenant.metadata["name"]),
        status.model_dump(mode="json", by_alias=True, exclude_none=True),
    )


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    runtime = _Runtime(settings)
    tenants = (GROUP, VERSION, "tenants")

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # kopf's watches use the same credentials as the adapter: one source of truth.
        if runtime.cluster is None:
            runtime.cluster = Cluster.connect(runtime.settings.kubeconfig)
        creds = runtime.cluster.credentials()
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
        if runtime.cluster is None:
            runtime.cluster = Cluster.connect(runtime.settings.kubeconfig)
        runtime.ledger = Ledger(runtime.settings.ledger_dsn)

    @kopf.on.cleanup(registry=registry)
    def stop(**_: Any) -> None:
        if runtime.ledger is not None:
            runtime.ledger.close()
        if runtime.cluster is not None:
            runtime.cluster.close()

    def reconcile(body: kopf.Body, logger: kopf.Logger) -> None:
        assert runtime.cluster is not None and runtime.ledger is not None
        raw = dict(body)
        tenant = Tenant.model_validate(raw)
        now = datetime.now(UTC)
        with runtime.lock(str(tenant.metadata["uid"])):
            if tenant.status is None or tenant.status.observed_generation != tenant.metadata.get("generation"):
                # kstatus: say at once that work is under way, so GitOps never reads an empty status as done.
                begin = decisions.status_after(tenant, children=None, error=None, now=now)
                _write_status(runtime.cluster, tenant, begin)
                tenant = tenant.model_copy(update={"status": begin})
            try:
                result = decisions.reconcile(
                    tenant,
                    cluster=runtime.cluster,
                    ledger=runtime.ledger,
                    actor=runtime.settings.actor,
                    crash_point=lambda: failpoints.point("after-audit"),
                )
            except TransientError as exc:
                _write_status(
                    runtime.cluster, tenant, decisions.status_after(tenant, children=None, error=exc, now=now)
                )
                raise kopf.TemporaryError(str(exc), delay=runtime.settings.retry_delay) from exc
            except SpecError as exc:
                logger.warning("tenant stalled: %s (%s)", exc, exc.reason)
                _write_status(
                    runtime.cluster, tenant, decisions.status_after(tenant, children=None, error=exc, now=now)
                )
                return
            except PrivateVaultError as exc:
                raise kopf.TemporaryError(str(exc), delay=runtime.settings.retry_delay) from exc
            if result.changed:
                logger.info("tenant reconciled: %d change(s) made", result.changed)
            _write_status(
                runtime.cluster, tenant, decisions.status_after(tenant, children=result.children, error=None, now=now)
            )

    @kopf.on.resume(*tenants, registry=registry, id="resume")
    @kopf.on.create(*tenants, registry=registry, id="create")
    @kopf.on.update(*tenants, registry=registry, id="update", field="spec")
    def on_change(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        reconcile(body, logger)

    @kopf.timer(
        *tenants, registry=registry, id="drift", interval=settings.drift_interval, initial_delay=settings.drift_interval
    )
    def on_timer(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        reconcile(body, logger)
