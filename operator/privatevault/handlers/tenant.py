"""kopf wiring of Tenant: the shared handlers of ``wiring``, the finalizer, and drift of children.

A change to a child the operator made (a namespace, quota, limit range, network policy or role
binding, watched by label by the operator's informers) that the operator did not make itself
reconciles its tenant at once, from the caches (:func:`child_changed`); the resync catches
anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import kopf

from privatevault import failpoints
from privatevault.api.v1alpha1 import API_VERSION, Tenant, TenantStatus
from privatevault.api.v1alpha1.pending import PendingAction
from privatevault.app import App
from privatevault.cache import CACHED, Cached
from privatevault.errors import GateClosed, PrivateVaultError, SpecError
from privatevault.handlers import complianceframework as compliance
from privatevault.handlers import wiring
from privatevault.manifests import labels
from privatevault.reconcile import quorum, status, tenant_gate
from privatevault.reconcile import tenant as decisions

#: The children whose changes reconcile their tenant (watched with the managed-by label).
CHILDREN = tuple(c for c in CACHED if c.managed_only or c.kind == "Namespace")
_CHILD_KINDS = frozenset(c.kind for c in CHILDREN)


def kind(app: App) -> wiring.Kind[Tenant]:
    def work(tenant: Tenant, context: wiring.Context) -> status.Done:
        result = decisions.reconcile(
            tenant,
            ports=app.tenant_ports(),
            actor=app.settings.actor,
            now=context.now,
            crash_point=lambda: failpoints.point("after-audit"),
        )
        app.metrics.inventories[str(tenant.metadata["name"])] = result.inventory
        if result.changed:
            context.logger.info("tenant reconciled: %d change(s) made", result.changed)
        held = decisions.gates(
            tenant, context.body, ports=app.tenant_ports(), actor=app.settings.actor, now=context.now
        )
        app.metrics.held("Tenant", str(tenant.metadata["name"]), [quorum.decided(gate) for gate in held])
        for gate in held:
            context.logger.info("%s held: %s", gate.held.change.action, gate.held.decision.message)
        return quorum.with_gates(decisions.done(tenant, result), held)

    def then(body: Mapping[str, Any], logger: Any) -> None:
        compliance.tenant_changed(app, body, logger)

    return wiring.Kind(
        resource=Tenant, status_model=TenantStatus, work=work, begin_message=decisions.BEGIN_MESSAGE, then=then
    )


def register(registry: kopf.OperatorRegistry, app: App) -> None:
    wiring.register(registry, app, kind(app), resync=app.settings.drift_interval)
    _deletion(registry, app)
    _bypass(registry, app)


def changes(app: App) -> Callable[[Cached, str, dict[str, Any]], None]:
    """What the informers call on a change of a cached object: a tenant's child reconciles it."""
    tenants = kind(app)

    def on_change(cached: Cached, event: str, body: dict[str, Any]) -> None:
        if cached.kind in _CHILD_KINDS:
            child_changed(app, tenants, event, body)

    return on_change


def child_changed(app: App, tenants: wiring.Kind[Tenant], event: str, body: Mapping[str, Any]) -> None:
    """A child of a tenant changed (MODIFIED) or went (DELETED): reconcile its tenant, unless the
    change is the operator's own write or touches only fields it does not own."""
    meta = body.get("metadata", {})
    labelled = meta.get("labels") or {}
    if labelled.get(labels.MANAGED_BY) != labels.MANAGER and event != "DELETED":
        return
    if event == "DELETED":
        app.cluster.forget(str(body.get("kind")), meta.get("namespace"), meta.get("name", ""))
    elif app.cluster.in_sync(body):
        return
    name = str(labelled.get(labels.TENANT) or "")
    found = app.cluster.get(API_VERSION, "Tenant", name) if name else None
    if found is None or found["metadata"].get("deletionTimestamp"):
        return
    logger = wiring.object_logger("Tenant", name)
    logger.info("%s %s changed: reconciling tenant %s", body.get("kind"), meta.get("name"), name)
    try:
        wiring.run(app, tenants, found, logger)
    except kopf.TemporaryError as exc:
        logger.warning("tenant %s not reconciled after a change of its child: %s", name, exc)


def _deletion(registry: kopf.OperatorRegistry, app: App) -> None:
    """The finalizer: a deletion goes ahead only when its gate (the one in force) approves it."""

    @kopf.on.delete(*wiring.resource_of(Tenant), registry=registry, id="finalize")
    def on_delete(body: kopf.Body, logger: kopf.Logger, **kwargs: Any) -> None:
        app.cluster.bind(kwargs)
        tenant = Tenant.model_validate(dict(body))
        ports, actor = app.tenant_ports(), app.settings.actor
        compliance.tenant_changed(app, body, logger)  # being deleted: it leaves every framework now
        with app.locks.hold(str(tenant.metadata["uid"])):
            try:
                deletion = tenant_gate.deletion(tenant, dict(body), ports=ports, actor=actor, now=app.clock())
                if deletion.gate is not None:
                    app.metrics.held("Tenant", str(tenant.metadata["name"]), [quorum.decided(deletion.gate)])
                if deletion.gate is not None and not deletion.gate.approved:
                    _hold(tenant, deletion.gate.error(), [deletion.gate.held.pending])
                decisions.finalize(
                    tenant,
                    ports=ports,
                    actor=actor,
                    deletion_policy=deletion.deletion_policy,
                    gate="Approved" if deletion.gate is not None else "NotGated",
                )
            except (GateClosed, SpecError) as exc:
                _hold(tenant, exc, [])
            except PrivateVaultError as exc:
                wiring.to_kopf(exc, retry_delay=app.settings.retry_delay, logger=logger, what="deletion")
                return
        app.metrics.inventories.pop(str(tenant.metadata["name"]), None)
        compliance.tenant_gone(app, str(tenant.metadata["name"]))
        app.metrics.forget("Tenant", str(tenant.metadata["name"]))
        logger.info("tenant finalized (%s): its namespaces go by garbage collection", deletion.deletion_policy)

    def _hold(tenant: Tenant, error: GateClosed | SpecError, pending: list[PendingAction]) -> None:
        """A deletion held or refused keeps its finalizer (an error never lets it through), and says why."""
        facts = {"pending": pending} if pending else {}
        after = status.failed(tenant, TenantStatus, error, now=app.clock(), facts=facts)
        wiring.write_status(app, "Tenant", str(tenant.metadata["name"]), tenant.status, after)
        raise kopf.TemporaryError(f"deletion waits: {error}", delay=app.settings.retry_delay) from error


def _bypass(registry: kopf.OperatorRegistry, app: App) -> None:
    """A Tenant gone without a decision (its finalizer stripped by hand) is recorded and raised."""
    wiring.register_bypass(
        registry, app, Tenant, lambda body: tenant_gate.bypassed(body, ledger=app.ledger, actor=app.settings.actor)
    )
