"""kopf wiring of EvidenceExport: the shared handlers of ``wiring`` (see ``reconcile.evidenceexport``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from privatevault.api.v1alpha1 import EvidenceExport
from privatevault.api.v1alpha1.evidenceexport import EvidenceExportStatus
from privatevault.app import App
from privatevault.handlers import complianceframework as compliance
from privatevault.handlers import wiring
from privatevault.reconcile import evidenceexport as decisions
from privatevault.reconcile import status


def kind(app: App) -> wiring.Kind[EvidenceExport]:
    def work(export: EvidenceExport, context: wiring.Context) -> status.Done:
        done = decisions.reconcile(
            export, context.body, ports=app.evidenceexport_ports(), actor=app.settings.actor, now=context.now
        )
        if done.held is None:
            context.logger.info("evidence exported: %s", done.message)
        return done

    def then(body: Mapping[str, Any], logger: Any) -> None:
        # A finished export is what `evidence-exported-within` reads: its tenants are re-evaluated.
        compliance.tenants_changed(app, (body.get("spec") or {}).get("tenants") or [], logger)

    return wiring.Kind(
        resource=EvidenceExport,
        status_model=EvidenceExportStatus,
        work=work,
        begin_message=decisions.BEGIN_MESSAGE,
        then=then,
    )


def register(registry: kopf.OperatorRegistry, app: App) -> None:
    wiring.register(registry, app, kind(app), resync=app.settings.drift_interval)
