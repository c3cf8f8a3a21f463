"""kopf wiring of the read API: started in kopf's event loop at start-up, stopped at clean-up.

``evidence`` is the seam for evidence bundles (:mod:`privatevault.readapi.evidence`): the function
that finds the bundle of an EvidenceExport by name; by default :func:`bundles`, the finished
bundles the operator's exporter wrote (``App.evidence_bundle``) with the tenants they cover.
"""

from __future__ import annotations

from typing import Any

import kopf

from privatevault.api.v1alpha1 import API_VERSION
from privatevault.app import App
from privatevault.readapi.evidence import EvidenceBundle, Locator
from privatevault.readapi.server import ReadApi


def bundles(app: App) -> Locator:
    """The finished bundle of an EvidenceExport and the tenants it covers, or None."""

    def locate(name: str) -> EvidenceBundle | None:
        path = app.evidence_bundle(name)
        found = app.cluster.get(API_VERSION, "EvidenceExport", name) if path is not None else None
        if path is None or found is None:
            return None
        digest = (found.get("status") or {}).get("digest")
        return EvidenceBundle(
            path=path,
            tenants=tuple((found.get("spec") or {}).get("tenants") or ()),
            digest=str(digest) if digest else None,
        )

    return locate


def register(registry: kopf.OperatorRegistry, app: App, *, evidence: Locator | None = None) -> None:
    """The server when ``PRIVATEVAULT_API_PORT`` is set; it is ready once the start-up handlers ran."""
    if app.settings.api.port is None:
        return
    api = ReadApi.of(app, evidence=evidence or bundles(app))

    @kopf.on.startup(registry=registry)
    async def serve_read_api(**_: Any) -> None:
        # Registered after the operator's own start-up handler, so it runs after App.start().
        await api.start()
        api.started = True

    @kopf.on.cleanup(registry=registry)
    async def stop_read_api(**_: Any) -> None:
        await api.stop()
