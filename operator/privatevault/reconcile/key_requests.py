"""Key actions out of schedule, asked for with an annotation on the Tenant and gated by quorum.

- ``privatevault.io/rotate-kek: <token>`` asks for a new KEK version now (``RotateKeyOutOfSchedule``);
- ``privatevault.io/destroy-kek: <token>`` asks for the KEK to be destroyed now (``DestroyKey``):
  everything wrapped under it becomes unreadable, and the next reconcile makes a fresh KEK.

Each token is answered once: the ledger record of the action (keyed by the token) is the answer,
written before the action. A request is decided under the Tenant's gate in force (the QuorumPolicy
last approved for it) and that policy's rule for the action; with no such rule it is not gated.
A new token asks again. The admission webhook records who set the token (``reconcile.requesters``);
when it did not (it was down or absent), the requester is unknown and a rule that forbids
self-approval asks for one approval more.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from privatevault.api.v1alpha1 import Tenant
from privatevault.quorum import changes
from privatevault.quorum.changes import Change
from privatevault.reconcile import quorum, tenant_gate
from privatevault.reconcile.audit import Audit
from privatevault.reconcile.ports import TenantPorts

REQUESTS = changes.KEY_REQUESTS


def answer(
    tenant: Tenant, body: Mapping[str, Any], audit: Audit, *, ports: TenantPorts, actor: str, now: datetime
) -> list[quorum.Gate]:
    """Carry out every approved (or ungated) request not answered yet; return those still held."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    uid, name = str(tenant.metadata["uid"]), str(tenant.metadata["name"])
    held = []
    for request in REQUESTS:
        token = annotations.get(request.annotation)
        if not token or ports.ledger.find(f"tenant/{uid}/{request.record}/{token}", limit=1):
            continue
        change = changes.key_request(request.action, body, request.annotation, token)
        gate = _decide(tenant, change, ports=ports, actor=actor, now=now)
        if gate is not None and not gate.approved:
            held.append(gate)
            continue
        provider = ports.keys.for_provider(tenant.spec.kms.provider)
        ref = tenant_gate.ref(tenant)
        details = {"provider": provider.provider, "token": token, "gate": "Approved" if gate else "NotGated"}
        audit.record(request.record, ref, token, details)
        if request.action == "DestroyKey":
            provider.shred(name)
        else:
            provider.rotate(name)
    return held


def _decide(tenant: Tenant, change: Change, *, ports: TenantPorts, actor: str, now: datetime) -> quorum.Gate | None:
    known = tenant_gate.in_force(ports, tenant) or changes.gate_fields(tenant.spec.model_dump(by_alias=True))
    if not known["quorumPolicyRef"]:
        return None
    state = quorum.policy(ports.ledger, str(known["quorumPolicyRef"]))
    rules = state.in_force.rules(change.action) if state.in_force else []
    if state.in_force is None or not rules:
        return None
    return tenant_gate.decide(tenant, change, rules, state.in_force, ports=ports, actor=actor, now=now)
