"""kopf wiring of the read API: started in kopf's event loop at start-up, stopped at clean-up.

``evidence`` is the seam for evidence bundles (:mod:`privatevault.readapi.evidence`): the function
that finds the bundle of an EvidenceExport by name.
"""

from __future__ import annotations

from typing import Any

import kopf

from privatevault.app import App
from privatevault.readapi.evidence import Locator, none
from privatevault.readapi.server import ReadApi


def register(registry: kopf.OperatorRegistry, app: App, *, evidence: Locator = none) -> None:
    """The server when ``PRIVATEVAULT_API_PORT`` is set; it is ready once the start-up handlers ran."""
    if app.settings.api.port is None:
        return
    api = ReadApi.of(app, evidence=evidence)

    @kopf.on.startup(registry=registry)
    async def serve_read_api(**_: Any) -> None:
        # Registered after the operator's own start-up handler, so it runs after App.start().
        await api.start()
        api.started = True

    @kopf.on.cleanup(registry=registry)
    async def stop_read_api(**_: Any) -> None:
        await api.stop()
