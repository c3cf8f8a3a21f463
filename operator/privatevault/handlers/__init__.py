"""kopf wiring only: parse into the model, call one reconcile function, write status.

Nothing is registered at import time: :func:`registry` builds a fresh ``kopf.OperatorRegistry``
from the settings, so tests and the CLI decide what runs.
"""

from __future__ import annotations

import kopf

from privatevault.settings import Settings

from . import tenant


def registry(settings: Settings) -> kopf.OperatorRegistry:
    reg = kopf.OperatorRegistry()
    tenant.register(reg, settings)
    return reg


__all__ = ["registry"]
