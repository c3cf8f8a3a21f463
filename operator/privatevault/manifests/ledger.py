"""The ledger's objects in the operator's namespace: the published checkpoint, its integrity, Events.

``privatevault-ledger-checkpoint`` publishes the latest checkpoint outside the database (and,
after ``pvctl audit reanchor``, the anchor beside it until the next checkpoint replaces both).
``privatevault-ledger-integrity`` holds one condition in the manner of kstatus: ``LedgerVerified``
``True``/``False`` with a CamelCase reason, a message and ``lastTransitionTime``, for a person
(or a policy engine) to look at; a Kubernetes Event is raised on the published ConfigMap when it
changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from privatevault.manifests import labels

CHECKPOINT_CONFIGMAP = "privatevault-ledger-checkpoint"
CHECKPOINT_KEY = "checkpoint"
VERIFIER_KEYS_KEY = "verifier-keys"
#: The public halves of the operator's evidence keys (``evidence.keys``), which sign bundle manifests.
EVIDENCE_KEYS_KEY = "evidence-keys"
REANCHOR_KEY = "reanchor"
INTEGRITY_CONFIGMAP = "privatevault-ledger-integrity"
COMPONENT = "privatevault-operator"


def checkpoint_configmap(
    namespace: str,
    note: bytes,
    verifier_keys: list[str],
    *,
    reanchor: str | None = None,
    evidence_keys: Sequence[str] = (),
) -> dict[str, Any]:
    data = {CHECKPOINT_KEY: note.decode(), VERIFIER_KEYS_KEY: "".join(f"{key}\n" for key in verifier_keys)}
    if evidence_keys:
        data[EVIDENCE_KEYS_KEY] = "".join(f"{key}\n" for key in evidence_keys)
    if reanchor is not None:
        data[REANCHOR_KEY] = reanchor
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CHECKPOINT_CONFIGMAP,
            "namespace": namespace,
            "labels": {labels.MANAGED_BY: labels.MANAGER},
        },
        "data": data,
    }


def _data(configmap: dict[str, Any] | None) -> dict[str, str]:
    return dict((configmap or {}).get("data") or {})


def published_note(configmap: dict[str, Any] | None) -> str | None:
    """The published signed note, verbatim; None when there is none."""
    return _data(configmap).get(CHECKPOINT_KEY) or None


def published_reanchor(configmap: dict[str, Any] | None) -> str | None:
    """The anchor written beside the published checkpoint (JSON), if any."""
    return _data(configmap).get(REANCHOR_KEY) or None


def published_verifier_keys(configmap: dict[str, Any] | None) -> list[str]:
    return [line for line in _data(configmap).get(VERIFIER_KEYS_KEY, "").splitlines() if line]


def published_size(configmap: dict[str, Any] | None) -> int:
    """The tree size of the checkpoint a ConfigMap holds; -1 when there is none."""
    lines = (published_note(configmap) or "").split("\n")
    return int(lines[1]) if len(lines) > 2 and lines[1].isdigit() else -1


def integrity_configmap(
    namespace: str, *, verified: bool, reason: str, message: str, since: str, facts: dict[str, str]
) -> dict[str, Any]:
    """The ``LedgerVerified`` condition; ``since`` is its lastTransitionTime (RFC 3339)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": INTEGRITY_CONFIGMAP,
            "namespace": namespace,
            "labels": {labels.MANAGED_BY: labels.MANAGER},
        },
        "data": {
            "type": "LedgerVerified",
            "status": "True" if verified else "False",
            "reason": reason,
            "message": message,
            "lastTransitionTime": since,
            **facts,
        },
    }


def event(namespace: str, *, name: str, warning: bool, reason: str, message: str, time: str) -> dict[str, Any]:
    """A core/v1 Event on the published checkpoint's ConfigMap (``kubectl get events -n <namespace>``)."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace, "labels": {labels.MANAGED_BY: labels.MANAGER}},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": CHECKPOINT_CONFIGMAP,
            "namespace": namespace,
        },
        "type": "Warning" if warning else "Normal",
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": time,
        "lastTimestamp": time,
        "count": 1,
    }
