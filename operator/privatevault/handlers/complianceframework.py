"""kopf wiring of ComplianceFramework: the shared handlers of ``wiring`` (see
``reconcile.complianceframework``), the incremental re-evaluation of one tenant after its own
reconcile (:func:`tenant_changed`), and the clean-up of a deleted framework.

A deleted framework's memory, metrics series and Reports go on its ``DELETED`` watch event (no
finalizer holds the deletion); its Reports also carry an owner reference to it, so the garbage
collector removes those of a framework deleted while the operator was not running.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from typing import Any

import kopf

from privatevault.api.v1alpha1 import API_VERSION, ComplianceFramework
from privatevault.api.v1alpha1.complianceframework import ComplianceFrameworkStatus
from privatevault.app import App
from privatevault.compliance import openreports
from privatevault.errors import PrivateVaultError
from privatevault.handlers import wiring
from privatevault.reconcile import complianceframework as decisions
from privatevault.reconcile import status


def kind(app: App) -> wiring.Kind[ComplianceFramework]:
    def work(framework: ComplianceFramework, context: wiring.Context) -> status.Done:
        outcome = decisions.reconcile(
            framework,
            context.body,
            app.cluster.list(API_VERSION, "Tenant"),
            ports=app.compliance_ports(),
            memory=app.compliance,
            actor=app.settings.actor,
            now=context.now,
        )
        frame = outcome.frame
        if frame is not None:
            for gate in frame.gates:
                app.metrics.decisions[(gate.held.change.action, gate.held.decision.state)] += 1
            app.metrics.compliance[frame.name] = decisions.scores(frame, app.compliance)
        if outcome.full:
            context.logger.info("compliance evaluated: %s", outcome.done.message)
        return outcome.done

    return wiring.Kind(
        resource=ComplianceFramework,
        status_model=ComplianceFrameworkStatus,
        work=work,
        begin_message=decisions.BEGIN_MESSAGE,
    )


def register(registry: kopf.OperatorRegistry, app: App) -> None:
    wiring.register(registry, app, kind(app), resync=app.settings.drift_interval)

    @kopf.on.event(*wiring.resource_of(ComplianceFramework), registry=registry, id="forget")
    def on_gone(event: kopf.RawEvent, body: kopf.Body, logger: kopf.Logger, **kwargs: Any) -> None:
        if event.get("type") != "DELETED":
            return
        app.cluster.bind(kwargs)
        forget(app, body, logger)


def forget(app: App, body: Mapping[str, Any], logger: Any) -> None:
    """A deleted framework: its memory, its metrics series and its Reports go."""
    meta = body.get("metadata") or {}
    uid, name = str(meta.get("uid", "")), str(meta.get("name", ""))
    with app.locks.hold(uid):
        known = app.compliance.drop(uid)
    app.metrics.compliance.pop(name, None)
    app.metrics.forget("ComplianceFramework", name)
    for tenant, state in known.items():
        if state.report_namespace is None:
            continue
        try:
            app.reports.delete(openreports.name(name), state.report_namespace)
        except PrivateVaultError as exc:
            logger.warning("the Report of framework %s for tenant %s was not deleted: %s", name, tenant, exc)


def tenant_changed(app: App, body: Mapping[str, Any], logger: Any) -> None:
    """After a tenant's reconcile: re-evaluate it under every framework that selects it (from the
    caches), and write the status of the frameworks whose results moved, only if it changed."""
    try:
        with ExitStack() as stack:
            for uid in sorted(app.compliance.frames):
                stack.enter_context(app.locks.hold(uid))
            moved = decisions.tenant_changed(
                body, ports=app.compliance_ports(), memory=app.compliance, actor=app.settings.actor, now=app.clock()
            )
            for frame in moved:
                app.metrics.compliance[frame.name] = decisions.scores(frame, app.compliance)
                _write_status(app, frame)
    except PrivateVaultError as exc:
        # Nothing moved in memory: the next reconcile of the tenant (or the framework) tries again.
        logger.warning("compliance of tenant %s not re-evaluated: %s", body.get("metadata", {}).get("name"), exc)


def tenants_changed(app: App, names: Iterable[str], logger: Any) -> None:
    """After a ProtectionPolicy's or an EvidenceExport's reconcile: re-evaluate the tenants it
    concerns (their facts read it), each as :func:`tenant_changed` does."""
    if not app.compliance.frames:
        return
    for name in sorted(set(names)):
        found = app.cluster.get(API_VERSION, "Tenant", name)
        if found is not None:
            tenant_changed(app, found, logger)


def tenant_gone(app: App, name: str) -> None:
    """A deleted tenant leaves every framework's results (and its Reports go with its namespaces)."""
    with app.compliance.lock:
        app.compliance.inputs.pop(name, None)
    for frame in list(app.compliance.frames.values()):
        with app.locks.hold(frame.uid):
            known = app.compliance.leave(frame.uid, name)  # its Report went with its namespaces
            if known is not None:
                app.metrics.compliance[frame.name] = decisions.scores(frame, app.compliance)
                _write_status(app, frame)


def _write_status(app: App, frame: decisions.Frame) -> None:
    found = app.cluster.get(API_VERSION, "ComplianceFramework", frame.name)
    if found is None or found["metadata"].get("uid") != frame.uid:
        return
    framework = ComplianceFramework.model_validate(found)
    if int(framework.metadata.get("generation") or 0) != frame.generation:
        return  # a new spec: its own reconcile writes the status
    now = app.clock()
    after = status.done(framework, ComplianceFrameworkStatus, decisions.done(frame, app.compliance, now), now=now)
    wiring.write_status(app, "ComplianceFramework", frame.name, framework.status, after)
