"""Comparing Kubernetes objects as intents: what the server adds is not a difference."""

from __future__ import annotations

from typing import Any

#: Fields the server owns; two objects that differ only here carry the same intent.
_VOLATILE = ("resourceVersion", "managedFields", "generation", "creationTimestamp", "uid", "selfLink")


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without server-maintained metadata or status."""
    metadata = {k: v for k, v in obj.get("metadata", {}).items() if k not in _VOLATILE}
    return {k: v for k, v in obj.items() if k != "status"} | {"metadata": metadata}
