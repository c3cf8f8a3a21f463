"""The ConfigMap that publishes the ledger's latest checkpoint outside the database."""

from __future__ import annotations

from typing import Any

from privatevault.manifests import labels

CHECKPOINT_CONFIGMAP = "privatevault-ledger-checkpoint"
CHECKPOINT_KEY = "checkpoint"
VERIFIER_KEYS_KEY = "verifier-keys"


def checkpoint_configmap(namespace: str, note: bytes, verifier_keys: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CHECKPOINT_CONFIGMAP,
            "namespace": namespace,
            "labels": {labels.MANAGED_BY: labels.MANAGER},
        },
        "data": {CHECKPOINT_KEY: note.decode(), VERIFIER_KEYS_KEY: "".join(f"{key}\n" for key in verifier_keys)},
    }


def published_size(configmap: dict[str, Any] | None) -> int:
    """The tree size of the checkpoint a ConfigMap holds; -1 when there is none."""
    note = ((configmap or {}).get("data") or {}).get(CHECKPOINT_KEY, "")
    lines = note.split("\n")
    return int(lines[1]) if len(lines) > 2 and lines[1].isdigit() else -1
