"""EvidenceExport reconcile: refuse what cannot be exported, wait for the quorum, build the bundle once.

Which quorum: the QuorumPolicy that gates the exported tenants (the ``tenant-gate-in-force``
in the ledger, and the Tenant's own ``quorumPolicyRef``), under its ``CreateEvidenceExport``
rule. Not a ref on the export itself: whoever writes the export would choose its gate, and an
export naming no policy would be a route around the tenants' gate. A tenant whose policy has no
such rule, or that names no policy, is exported without approvals. The tenants of one export
must share one policy (each policy decides under its own approvers; export them separately).

Once approved (a ``quorum-decision`` record for this spec and generation exists), the decision
is not taken again: approvals expiring later do not un-approve a finished export. The bundle is
recorded in the ledger before it is written (``export-evidence``, one record per tenant: each
tenant's first record after the window, which its completeness proof ends on, so the export
waits for a checkpoint covering it), and the manifest's signature
too (``sign-evidence-manifest``, keyed by the Statement's digest): ML-DSA signing is hedged, so
a rebuild of the same Statement reuses the recorded envelope and gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from privatevault.api.v1alpha1 import API_VERSION, EvidenceExport
from privatevault.errors import SpecError
from privatevault.evidence.exporter import Job, Result, bundle_name, writable
from privatevault.ledger import ResourceRef
from privatevault.quorum import changes
from privatevault.quorum.statement import parse_time
from privatevault.reconcile import quorum, status
from privatevault.reconcile.audit import event
from privatevault.reconcile.ports import EvidenceExportPorts
from privatevault.reconcile.tenant_gate import IN_FORCE

BEGIN_MESSAGE = "checking the export's tenants, window and destination"
ACTION = "CreateEvidenceExport"
EXPORT = "export-evidence"
SIGN = "sign-evidence-manifest"
PIN = "pin-evidence-checkpoint"
#: The algorithms of the operator's evidence keys (``evidence.keys``).
SIGNING = ("Ed25519", "ML-DSA-65")


def ref(export: EvidenceExport) -> ResourceRef:
    return ResourceRef(kind="EvidenceExport", name=str(export.metadata["name"]), uid=str(export.metadata["uid"]))


def _tenant(export: EvidenceExport) -> str:
    """The ledger's tenant column of the export's records: its tenant, or none for several."""
    return export.spec.tenants[0] if len(export.spec.tenants) == 1 else ""


def refusal(export: EvidenceExport, tenants: Mapping[str, Mapping[str, Any] | None], now: datetime) -> SpecError | None:
    """What makes the spec impossible, in the order a person would fix it; None when it can be exported."""
    end = parse_time(export.spec.window.to)
    if end > now:
        return SpecError(
            f"the window ends at {export.spec.window.to}, in the future: evidence of a window can be exported once"
            " it has ended; set window.to to a past time",
            reason="WindowInFuture",
        )
    missing = sorted(name for name, body in tenants.items() if body is None)
    if missing:
        return SpecError(f"no Tenant named {', '.join(missing)}: export only existing tenants", reason="TenantNotFound")
    unavailable = sorted(set(export.spec.signing) - set(SIGNING))
    if unavailable:
        return SpecError(
            f"the operator's evidence keys are {' and '.join(SIGNING)}; it holds no {', '.join(unavailable)} key:"
            " remove it from spec.signing",
            reason="SigningUnavailable",
        )
    problem = writable(export.spec.destination.path)
    if problem is not None:
        return SpecError(
            f"{problem}; mount a writable volume there or change spec.destination", reason="DestinationNotWritable"
        )
    return None


def gating_policy(ports: EvidenceExportPorts, tenants: Mapping[str, Mapping[str, Any] | None]) -> str | None:
    """The one QuorumPolicy gating the tenants (None: none does); SpecError when they differ."""
    names = set()
    for body in tenants.values():
        assert body is not None
        recorded = quorum.latest(ports.ledger, "tenant", str(body["metadata"]["uid"]), IN_FORCE)
        names |= {
            ref
            for ref in ((recorded or {}).get("quorumPolicyRef"), (body.get("spec") or {}).get("quorumPolicyRef"))
            if ref
        }
    if len(names) > 1:
        raise SpecError(
            f"the tenants are gated by different QuorumPolicies ({', '.join(sorted(names))}): export them separately",
            reason="MixedQuorumPolicies",
        )
    return next(iter(names), None)


def gate(
    export: EvidenceExport,
    body: Mapping[str, Any],
    policy_name: str | None,
    *,
    ports: EvidenceExportPorts,
    actor: str,
    now: datetime,
) -> quorum.Gate | None:
    """The held creation, or None when it is approved (now or before) or nothing gates it."""
    if policy_name is None:
        return None
    change = changes.new_spec(ACTION, body)
    decided = (
        f"evidenceexport/{change.target.uid}/{quorum.DECISION}/{ACTION}:{change.digest}:{change.target.generation}"
    )
    if ports.ledger.find(decided, limit=1):
        return None
    state = quorum.policy(ports.ledger, policy_name)
    if state.deleted:
        return None
    if state.in_force is None:
        raise SpecError(
            f"the tenants name QuorumPolicy {policy_name}, which has never been in force: the export can never be"
            " approved; create the QuorumPolicy",
            reason="QuorumRefused",
        )
    rules = state.in_force.rules(ACTION)
    if not rules:
        return None
    decision = quorum.decide(
        change,
        rules,
        state.in_force,
        cluster=ports.cluster,
        ledger=ports.ledger,
        actor=actor,
        tenant=_tenant(export),
        now=now,
    )
    return None if decision.approved else decision


def facts(result: Result) -> dict[str, Any]:
    export = result.export
    counts = export["counts"]
    return {
        "digest": result.digest,
        "size": result.size,
        "location": result.location,
        "records": sum(counts["audit"].values()) + counts["approvals"] + counts["decisions"] + counts["policies"],
        "approvals": counts["approvals"],
        "decisions": counts["decisions"],
        "policies": counts["policies"],
        "checkpoint": export["checkpoint"]["size"],
        "checkpoint_root": export["checkpoint"]["root"],
        "latest_checkpoint": export["latest"]["size"],
        "pending": [],
    }


def remembered(export: EvidenceExport) -> dict[str, Any]:
    """The facts of the bundle this generation already built (from the status)."""
    st = export.status
    assert st is not None
    keep = (
        "digest",
        "size",
        "location",
        "records",
        "approvals",
        "decisions",
        "policies",
        "checkpoint",
        "checkpoint_root",
        "latest_checkpoint",
    )
    return {name: getattr(st, name) for name in keep} | {"pending": []}


def memo_signer(export: EvidenceExport, *, ports: EvidenceExportPorts, actor: str) -> Callable[[bytes], bytes]:
    """Sign a Statement once: the envelope recorded in the ledger the first time is the one used."""

    def sign(statement: bytes) -> bytes:
        digest = hashlib.sha256(statement).hexdigest()
        found = ports.ledger.find(f"evidence/{digest}/{SIGN}/", limit=1)
        if not found:
            envelope = json.loads(ports.sign(statement, frozenset(export.spec.signing)))
            found = [
                ports.ledger.append(
                    event(
                        kind="evidence",
                        uid=digest,
                        tenant=_tenant(export),
                        actor=actor,
                        action=SIGN,
                        resource=ref(export),
                        change="v1",
                        details={"statement": f"sha256:{digest}", "envelope": envelope},
                    )
                )
            ]
        recorded = quorum.details(found[-1])["envelope"]
        return json.dumps(recorded, sort_keys=True, separators=(",", ":")).encode() + b"\n"

    return sign


def reconcile(
    export: EvidenceExport, body: Mapping[str, Any], *, ports: EvidenceExportPorts, actor: str, now: datetime
) -> status.Done:
    spec = export.spec
    tenants = {name: ports.cluster.get(API_VERSION, "Tenant", name) for name in spec.tenants}
    refused = refusal(export, tenants, now)
    if refused is not None:
        raise refused
    held = gate(export, body, gating_policy(ports, tenants), ports=ports, actor=actor, now=now)
    if held is not None:
        return quorum.with_gates(status.Done(message="waiting for approvals"), [held])
    generation = export.metadata.get("generation")
    previous = export.status
    built_before = previous is not None and previous.digest is not None and previous.observed_generation == generation
    if (
        built_before
        and previous is not None
        and previous.location
        and ports.exporter.existing(previous.location) == previous.digest
    ):
        return status.Done(message=_message(previous.records, previous.checkpoint), facts=remembered(export))
    # One record per tenant, after its window: the first record after the window that the
    # bundle's completeness proof needs exists, whatever the tenant does next.
    for tenant in spec.tenants:
        ports.ledger.append(
            event(
                kind="evidenceexport",
                uid=str(export.metadata["uid"]),
                tenant=tenant,
                actor=actor,
                action=EXPORT,
                resource=ref(export),
                change=f"{generation}/{tenant}",
                details={
                    "tenants": list(spec.tenants),
                    "window": {"from": spec.window.from_, "to": spec.window.to},
                    "include": sorted(spec.include),
                    "destination": f"{spec.destination.path}/{bundle_name(str(export.metadata['name']))}",
                },
            )
        )
    job = Job(
        name=str(export.metadata["name"]),
        tenants=tuple(spec.tenants),
        start=parse_time(spec.window.from_),
        end=parse_time(spec.window.to),
        include=frozenset(spec.include),
        signing=tuple(sorted(spec.signing)),
        destination=spec.destination.path,
        latest=previous.latest_checkpoint if built_before and previous is not None else None,
        latest_note=_pinned(ports, export) if built_before else None,
    )
    result = ports.exporter.export(job, sign=memo_signer(export, ports=ports, actor=actor))
    # The published checkpoint changes; a rebuild must reach the same one, cosignatures and all.
    ports.ledger.append(
        event(
            kind="evidenceexport",
            uid=str(export.metadata["uid"]),
            tenant=_tenant(export),
            actor=actor,
            action=PIN,
            resource=ref(export),
            change=str(generation),
            details={"note": result.latest_note.decode()},
        )
    )
    found = facts(result)
    if built_before and previous is not None and previous.digest != result.digest:
        raise SpecError(
            f"the bundle was rebuilt with digest {result.digest}, not {previous.digest} as before: the ledger changed"
            " under the window; investigate with pvctl audit verify",
            reason="BundleChanged",
        )
    return status.Done(message=_message(found["records"], found["checkpoint"]), facts=found)


def _pinned(ports: EvidenceExportPorts, export: EvidenceExport) -> bytes | None:
    """The latest checkpoint's note this generation's bundle was built with (None: not recorded)."""
    generation = export.metadata.get("generation")
    found = ports.ledger.find(f"evidenceexport/{export.metadata['uid']}/{PIN}/{generation}", limit=1)
    return str(quorum.details(found[-1])["note"]).encode() if found else None


def _message(records: int | None, checkpoint: int | None) -> str:
    return f"bundle of {records} record(s), proved against checkpoint {checkpoint}"
