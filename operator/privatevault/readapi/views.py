"""The status and tenant views, gathered from what the operator's adapters can read.

Shared by the server (``/api/v1/status``) and by ``pvctl status``/``pvctl tenant`` without
``--server`` (they read the cluster and the ledger directly), so both show the same thing. The
shaping from objects to views is pure (:func:`tenant_view`, :func:`note_view`); :func:`status`
gathers first, then shapes.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from privatevault import __version__
from privatevault.api.v1alpha1 import API_VERSION, Tenant
from privatevault.errors import PrivateVaultError
from privatevault.leader import LEASE
from privatevault.ledger.integrity import Integrity
from privatevault.manifests import ledger as ledger_manifests
from privatevault.readapi import models

SIGNATURE_PREFIX = "\u2014 "


class Objects(Protocol):
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def list(
        self, api_version: str, kind: str, *, label_selector: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]: ...


class Sized(Protocol):
    def size(self) -> int: ...


def note_view(note: str | None) -> models.Checkpoint | None:
    """The published note as a view; None when there is none or it is not a checkpoint."""
    if not note:
        return None
    lines = note.split("\n")
    if len(lines) < 4 or not lines[1].isdigit():
        return None
    return models.Checkpoint(origin=lines[0], size=int(lines[1]), root_hash=lines[2], note=note)


def signers(note: str, *, origin: str) -> list[str]:
    """Names on the note's signature lines other than the log's own (its witnesses')."""
    block = note.split("\n\n", 1)[1] if "\n\n" in note else ""
    names = [
        line[len(SIGNATURE_PREFIX) :].split(" ", 1)[0]
        for line in block.splitlines()
        if line.startswith(SIGNATURE_PREFIX)
    ]
    return sorted({name for name in names if name != origin})


def _ready(obj: Mapping[str, Any]) -> tuple[str, str]:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status") or "Unknown"), str(condition.get("reason") or "")
    return "Unknown", "NotReconciled"


def tenant_view(obj: Mapping[str, Any]) -> models.TenantView:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ready, reason = _ready(obj)
    kms = status.get("kms") or None
    return models.TenantView(
        name=str(obj["metadata"]["name"]),
        ready=ready,
        reason=reason,
        region=spec.get("region"),
        level=status.get("mcsLevel"),
        namespaces=list(status.get("namespaces") or []),
        key=None
        if kms is None
        else models.KeyView(
            provider=str(kms.get("provider", "")),
            key_name=str(kms.get("keyName", "")),
            latest_version=int(kms.get("latestVersion", 0)),
        ),
        protection_policy=spec.get("protectionPolicyRef") or None,
        quorum_policy=spec.get("quorumPolicyRef") or None,
        pending=[
            models.PendingView(
                action=str(held.get("action", "")),
                approvals=str(held.get("approvals", "")),
                message=str(held.get("message", "")),
            )
            for held in status.get("pending") or []
            if held.get("state", "Pending") == "Pending"
        ],
    )


def tenants(cluster: Objects) -> list[models.TenantView]:
    found = cluster.list(API_VERSION, Tenant.kind)
    return sorted((tenant_view(obj) for obj in found), key=lambda view: view.name)


@dataclass
class Sources:
    """What the status is gathered from; ``integrity`` and ``kms`` only inside the operator."""

    cluster: Objects
    ledger: Sized
    namespace: str
    origin: str = "privatevault.io/ledger"
    integrity: Integrity | None = None
    kms: Mapping[str, Callable[[], bool]] = field(default_factory=dict)


def _leader(cluster: Objects, namespace: str) -> str | None:
    """The Lease's holder; None without leader election (or without the right to read the Lease)."""
    try:
        lease = cluster.get("coordination.k8s.io/v1", "Lease", LEASE, namespace)
    except PrivateVaultError:
        return None
    holder = ((lease or {}).get("spec") or {}).get("holderIdentity")
    return str(holder) if holder else None


def status(sources: Sources) -> models.Status:
    """The installation at a glance (each read is one call; nothing is written)."""
    views = tenants(sources.cluster)
    published = sources.cluster.get("v1", "ConfigMap", ledger_manifests.CHECKPOINT_CONFIGMAP, sources.namespace)
    note = ledger_manifests.published_note(published)
    integrity = sources.integrity
    kms: dict[str, str] = {}
    for name, healthy in sources.kms.items():
        try:
            kms[name] = "Reachable" if healthy() else "Unreachable"
        except Exception as exc:  # a health check must never fail the status
            kms[name] = f"Unreachable: {type(exc).__name__}"
    operator = {"namespace": sources.namespace, "version": __version__}
    holder = _leader(sources.cluster, sources.namespace)
    if holder:
        operator["leader"] = holder
    return models.Status(
        operator=operator,
        ledger=models.LedgerView(
            size=sources.ledger.size(),
            integrity_ok=None if integrity is None else integrity.refusal is None,
            integrity_reason=None if integrity is None or integrity.refusal is None else integrity.refusal.reason,
            last_verified_size=None if integrity is None else integrity.checkpoint_size,
        ),
        checkpoint=note_view(note),
        cosignatures=signers(note, origin=sources.origin) if note else [],
        kms=kms,
        tenants_by_condition=dict(Counter(f"{view.ready}/{view.reason}" for view in views)),
        awaiting_quorum=[
            f"tenant/{view.name}: {held.action} {held.approvals}" for view in views for held in view.pending
        ],
    )


def root_b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()
