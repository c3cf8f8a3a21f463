"""kopf indexes behind the operator's cached reads (``privatevault.cache``).

One index per watched kind; each object is kept (without managedFields, and without a TLS
private key) under its name and under its namespace. Children of tenants are watched by the
``app.kubernetes.io/managed-by`` label only; Secrets only when they are ours or TLS Secrets (the
crypto inventory's input). kopf fills every index before it runs any handler, so a handler never
reads a half-filled cache.
"""

from __future__ import annotations

from typing import Any

import kopf

from privatevault.cache import CACHED, Cached, Entry, index_keys
from privatevault.manifests import labels

_TLS = "kubernetes.io/tls"


def _split(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _secret_wanted(body: kopf.Body, **_: Any) -> bool:
    ours = (body.get("metadata", {}).get("labels") or {}).get(labels.MANAGED_BY) == labels.MANAGER
    return ours or body.get("type") == _TLS


def _register(registry: kopf.OperatorRegistry, cached: Cached) -> None:
    group, version = _split(cached.api_version)
    options: dict[str, Any] = {}
    if cached.managed_only:
        options["labels"] = {labels.MANAGED_BY: labels.MANAGER}
    if cached.kind == "Secret":
        options["when"] = _secret_wanted

    def keys(body: kopf.Body, **_: Any) -> dict[tuple[str, ...], Entry]:
        return index_keys(body, cached.kind)

    kopf.index(group, version, cached.plural, registry=registry, id=cached.index, **options)(keys)


def register(registry: kopf.OperatorRegistry) -> None:
    for cached in CACHED:
        _register(registry, cached)
