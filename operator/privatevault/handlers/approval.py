"""kopf wiring of Approval: verified on create and on the resync timer (expiry), then the object
it approves is reconciled at once, so a held action goes ahead as soon as its quorum exists."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from privatevault.api.v1alpha1 import API_VERSION, Approval
from privatevault.api.v1alpha1.approval import ApprovalStatus
from privatevault.app import App
from privatevault.handlers import wiring
from privatevault.reconcile import approval as decisions
from privatevault.reconcile import status


def kind(app: App) -> wiring.Kind[Approval]:
    def work(approval: Approval, context: wiring.Context) -> status.Done:
        return decisions.reconcile(approval, ledger=app.ledger, actor=app.settings.actor, now=context.now)

    return wiring.Kind(resource=Approval, status_model=ApprovalStatus, work=work, begin_message=decisions.BEGIN_MESSAGE)


def register(registry: kopf.OperatorRegistry, app: App, targets: Mapping[str, wiring.Kind[Any]]) -> None:
    """``targets``: the kinds an Approval can approve a change of, by kind name."""
    approvals = kind(app)
    wiring.register(registry, app, approvals, resync=app.settings.drift_interval)

    @kopf.on.create(*wiring.resource_of(Approval), registry=registry, id="reconcile-target")
    def on_new(body: kopf.Body, logger: kopf.Logger, **kwargs: Any) -> None:
        app.cluster.bind(kwargs)
        action = (body.get("spec") or {}).get("action") or {}
        target = targets.get(str(action.get("kind")))
        if target is None:
            return
        found = app.cluster.get(API_VERSION, target.name, str(action.get("name")))
        if found is None or found["metadata"].get("uid") != action.get("uid"):
            return
        if found["metadata"].get("deletionTimestamp"):
            return  # a held deletion is retried by its own finalizer handler
        try:
            wiring.run(app, target, found, logger)
        except kopf.TemporaryError as exc:
            logger.warning("%s %s not reconciled after a new approval: %s", target.name, action.get("name"), exc)
