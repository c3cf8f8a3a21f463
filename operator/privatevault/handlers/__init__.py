"""kopf wiring only: parse into the model, call one reconcile function, write status.

Nothing is registered at import time: :func:`registry` builds a fresh ``kopf.OperatorRegistry``
from the settings, so tests and the CLI decide what runs.
"""

from __future__ import annotations

import kopf

from privatevault.handlers import protection, runtime, tenant
from privatevault.settings import Settings


def registry(settings: Settings) -> kopf.OperatorRegistry:
    reg = kopf.OperatorRegistry()
    shared = runtime.Runtime(settings)
    runtime.register(reg, shared)
    tenant.register(reg, shared)
    protection.register(reg, shared)
    return reg


__all__ = ["registry"]
