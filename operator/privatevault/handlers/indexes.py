"""kopf indexes behind the operator's cached reads of its own kinds (``privatevault.cache``).

One index per kind kopf watches anyway for its handlers (``cache.INDEXED``); each object is kept
(without managedFields) under its name. kopf fills every index before it runs any handler, so a
handler never reads a half-filled cache. The Kubernetes kinds the operator reads are kept by its
own informers instead (``privatevault.informer``), which kopf does not watch at all.
"""

from __future__ import annotations

from typing import Any

import kopf

from privatevault.cache import INDEXED, Cached, Entry, index_keys


def _split(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _register(registry: kopf.OperatorRegistry, cached: Cached) -> None:
    group, version = _split(cached.api_version)

    def keys(body: kopf.Body, **_: Any) -> dict[tuple[str, ...], Entry]:
        return index_keys(body, cached.kind)

    kopf.index(group, version, cached.plural, registry=registry, id=cached.index)(keys)


def register(registry: kopf.OperatorRegistry) -> None:
    for cached in INDEXED:
        _register(registry, cached)
