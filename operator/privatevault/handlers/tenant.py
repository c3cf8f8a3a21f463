"""kopf handlers for Tenant: create, update, resume and the drift timer share one reconcile."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from privatevault import failpoints
from privatevault.api.v1alpha1 import GROUP, VERSION, Tenant, TenantStatus
from privatevault.cluster import Cluster
from privatevault.errors import GateClosed, PrivateVaultError, SpecError, TransientError
from privatevault.handlers.runtime import Runtime
from privatevault.handlers.status import write_status
from privatevault.reconcile import tenant as decisions


def _write_status(cluster: Cluster, tenant: Tenant, status: TenantStatus) -> None:
    write_status(cluster, "Tenant", str(tenant.metadata["name"]), tenant.status, status)


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    tenants = (GROUP, VERSION, "tenants")
    settings = runtime.settings

    def reconcile(body: kopf.Body, logger: kopf.Logger) -> None:
        cluster, ports = runtime.connect(), runtime.tenant_ports()
        tenant = Tenant.model_validate(dict(body))
        now = datetime.now(UTC)
        with runtime.lock(str(tenant.metadata["uid"])):
            if tenant.status is None or tenant.status.observed_generation != tenant.metadata.get("generation"):
                # kstatus: say at once that work is under way, so GitOps never reads an empty status as done.
                begin = decisions.status_after(tenant, result=None, error=None, now=now)
                _write_status(cluster, tenant, begin)
                tenant = tenant.model_copy(update={"status": begin})
            try:
                result = decisions.reconcile(
                    tenant,
                    ports=ports,
                    actor=settings.actor,
                    now=now,
                    crash_point=lambda: failpoints.point("after-audit"),
                )
            except (TransientError, SpecError) as exc:
                _write_status(cluster, tenant, decisions.status_after(tenant, result=None, error=exc, now=now))
                if isinstance(exc, SpecError):
                    logger.warning("tenant stalled: %s (%s)", exc, exc.reason)
                    return
                raise kopf.TemporaryError(str(exc), delay=settings.retry_delay) from exc
            except PrivateVaultError as exc:
                raise kopf.TemporaryError(str(exc), delay=settings.retry_delay) from exc
            runtime.metrics.inventories[str(tenant.metadata["name"])] = result.inventory
            if result.changed:
                logger.info("tenant reconciled: %d change(s) made", result.changed)
            _write_status(cluster, tenant, decisions.status_after(tenant, result=result, error=None, now=now))

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

    @kopf.on.delete(*tenants, registry=registry, id="finalize")
    def on_delete(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        tenant = Tenant.model_validate(dict(body))
        with runtime.lock(str(tenant.metadata["uid"])):
            try:
                decisions.finalize(tenant, ports=runtime.tenant_ports(), actor=settings.actor)
            except GateClosed as exc:
                raise kopf.TemporaryError(f"deletion waits: {exc}", delay=settings.retry_delay * 6) from exc
            except PrivateVaultError as exc:
                raise kopf.TemporaryError(str(exc), delay=settings.retry_delay) from exc
        runtime.metrics.inventories.pop(str(tenant.metadata["name"]), None)
        logger.info("tenant finalized (%s): its namespaces go by garbage collection", tenant.spec.deletion_policy)
