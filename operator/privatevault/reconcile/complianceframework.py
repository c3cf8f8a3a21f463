"""ComplianceFramework: evaluate the controls against the selected tenants, record what changed.

Gather, then decide: the checks read facts (``compliance_facts``, from the caches); the core
(``privatevault.compliance``) evaluates and scores; this module decides what is recorded, what
the status shows and which Reports are written, over the ports below.

- **Selection.** A tenant is evaluated under a framework when the framework's ``tenantSelector``
  selects its labels (an empty selector selects every tenant, as in Kubernetes), or when the
  tenant names the framework in ``spec.complianceFrameworkRefs`` (a tenant may opt in).
- **Gates.** Each exception (``AddComplianceException``) and attestation
  (``AttestComplianceControl``) is a gated change of the framework, decided by
  ``reconcile.quorum`` under the framework's ``quorumPolicyRef``; once a decision let it through
  (its ``quorum-decision`` record) it stays approved until it expires. A policy that has never
  been in force stalls the framework (``QuorumPolicyNotFound``) and nothing is waived.
- **The approving policy in force.** ``quorumPolicyRef`` cannot change on an object (CEL), and the
  ledger keeps the one in force by the framework's *name* (``complianceframework-gate-in-force``),
  so deleting a framework and making it again with another policy (one whose approvers someone
  holds) is ``ChangeQuorumGate``, decided under the policy in force before (its ChangeQuorumGate
  rule, or every rule it has); until approved, that policy keeps deciding the waivers.
- **Records.** One ``compliance-state`` record per (framework, tenant) evaluation whose control
  states (or severities, weights) changed, written before the in-memory state moves on; an
  unchanged evaluation writes nothing. The :class:`Memory` is rebuilt from these records at
  start, so a restart writes nothing new.
- **Cost.** The framework's reconcile evaluates every selected tenant only when its spec changed,
  ``spec.interval`` passed since the last full evaluation, or what is waived changed (an
  approval, an expiry); otherwise it only re-decides its gates. A Tenant reconcile (and that of
  a ProtectionPolicy or an EvidenceExport, for the tenants they concern) re-evaluates that one
  tenant under every framework selecting it (:func:`tenant_changed`).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from privatevault.api.v1alpha1 import API_VERSION, ComplianceFramework
from privatevault.api.v1alpha1.protectionpolicy import duration_seconds
from privatevault.compliance import openreports, records, waivers
from privatevault.compliance.checks import Finding
from privatevault.compliance.evaluate import (
    ControlResult,
    Framework,
    TenantResult,
    changes,
    compile_framework,
    evaluate,
    ready_message,
    status_fields,
    summarize,
)
from privatevault.compliance.facts import ClusterFacts, TenantFacts
from privatevault.compliance.score import of_states
from privatevault.errors import SpecError
from privatevault.ledger import Record, ResourceRef
from privatevault.quorum import changes as quorum_changes
from privatevault.reconcile import quorum, status
from privatevault.reconcile.audit import event
from privatevault.reconcile.ports import ClusterPort, LedgerPort

BEGIN_MESSAGE: Final = "evaluating the framework's controls against its tenants"
KIND: Final = "complianceframework"
#: Records read back per framework at start (the newest kept): far more than tenants times changes.
LOAD_LIMIT: Final = 100_000
#: Annotation on a Report: the digest of what it says (without times), so an unchanged one is not written.
REPORT_DIGEST: Final = "privatevault.io/report-digest"
FRAMEWORK_LABEL: Final = "privatevault.io/compliance-framework"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class SnapshotPort(Protocol):
    """One evaluation's facts (``compliance_facts.Snapshot``)."""

    @property
    def cluster(self) -> ClusterFacts: ...

    def tenant(self, body: Mapping[str, Any]) -> TenantFacts: ...


class ReportsPort(Protocol):
    """The OpenReports ``Report`` objects (absent when the CRD is not installed)."""

    def installed(self, *, recheck: bool = False) -> bool: ...

    def write(self, report: dict[str, Any]) -> bool:
        """Apply ``report`` unless the one there carries the same ``REPORT_DIGEST``; True when written."""
        ...

    def delete(self, name: str, namespace: str) -> None: ...


@dataclass(frozen=True)
class CompliancePorts:
    cluster: ClusterPort
    ledger: LedgerPort
    snapshot: Callable[[], SnapshotPort]
    reports: ReportsPort
    #: The QuorumPolicy ``name`` as the ledger knows it (kept in memory by the caller).
    policies: Callable[[str], quorum.PolicyState]


# -- memory --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """The last recorded state of one (framework, tenant), and the last result evaluated."""

    seq: int | None
    controls: Mapping[str, Mapping[str, Any]]
    #: Without its findings (see :func:`_slim`).
    result: TenantResult | None = None
    #: The namespace its Report is written in (None: none written).
    report_namespace: str | None = None
    #: ``hash()`` of the whole result, findings included: an equal one leaves the Report alone.
    fingerprint: int | None = None


@dataclass
class Frame:
    """One framework as its last reconcile left it: compiled, with its gates decided."""

    uid: str
    name: str
    generation: int
    obj: ComplianceFramework
    framework: Framework
    entries: tuple[waivers.Entry, ...] = ()
    verdicts: Mapping[str, waivers.Verdict] = field(default_factory=dict)
    gates: tuple[quorum.Gate, ...] = ()
    held: SpecError | None = None
    last_full: datetime | None = None
    #: The digests active at the last full evaluation.
    active: frozenset[str] = frozenset()

    def waivers(self, now: datetime) -> waivers.Waivers:
        return waivers.decide(self.entries, self.verdicts, now)

    def selects(self, tenant: Mapping[str, Any]) -> bool:
        return selected(self.obj, tenant)


def _active(decided: waivers.Waivers) -> frozenset[str]:
    return frozenset(e.entry.digest for e in decided.entries if e.state == "Active")


class Memory:
    """What the compliance controller knows between reconciles; one per process, held by the App."""

    def __init__(self) -> None:
        self.frames: dict[str, Frame] = {}
        self.known: dict[str, dict[str, Known]] = {}
        #: Exceptions and attestations a quorum decision let through, by framework uid.
        self.approved: dict[str, set[str]] = {}
        #: By tenant: the inputs of its last incremental re-evaluation (see :func:`tenant_changed`).
        self.inputs: dict[str, Any] = {}
        self._loaded: set[str] = set()
        self.lock = threading.RLock()

    def load(self, uid: str, ledger: LedgerPort) -> None:
        """The last ``compliance-state`` record of each tenant of the framework ``uid`` (once)."""
        with self.lock:
            if uid in self._loaded:
                return
        found: dict[str, Known] = {}
        for record in ledger.find(records.key_prefix(uid), limit=LOAD_LIMIT):
            body = json.loads(record.canonical)
            details = body.get("details") or {}
            found[str(body.get("tenant"))] = Known(seq=record.seq, controls=details.get("controls") or {})
        with self.lock:
            if uid not in self._loaded:
                self.known[uid] = {**found, **self.known.get(uid, {})}
                self._loaded.add(uid)

    def leave(self, uid: str, tenant: str) -> Known | None:
        """The tenant leaves the framework's results; what was known of it (None: nothing).

        Its last record stays known: if it comes back, its next record names that one as previous
        (its key cannot collide with an older record of the same states).
        """
        with self.lock:
            known = self.known.get(uid, {}).get(tenant)
            if known is None or (known.result is None and known.report_namespace is None):
                return None
            self.known[uid][tenant] = Known(known.seq, known.controls)
            return known

    def results(self, uid: str) -> dict[str, TenantResult]:
        with self.lock:
            return {t: k.result for t, k in self.known.get(uid, {}).items() if k.result is not None}

    def drop(self, uid: str) -> dict[str, Known]:
        """Forget a deleted framework; what was known of its tenants (their Reports to delete)."""
        with self.lock:
            self.frames.pop(uid, None)
            self.approved.pop(uid, None)
            self._loaded.discard(uid)
            return self.known.pop(uid, {})


# -- selection -----------------------------------------------------------------------------------


def selected(framework: ComplianceFramework, tenant: Mapping[str, Any]) -> bool:
    """Whether ``tenant`` is evaluated under ``framework`` (see the module docstring)."""
    meta = tenant.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return False
    refs = (tenant.get("spec") or {}).get("complianceFrameworkRefs") or []
    return framework.metadata["name"] in refs or framework.spec.tenant_selector.matches(meta.get("labels") or {})


# -- gates ---------------------------------------------------------------------------------------


def _decided_before(ledger: LedgerPort, uid: str, change: quorum_changes.Change) -> bool:
    prefix = f"{KIND}/{uid}/{quorum.DECISION}/{change.action}:{change.digest}:"
    return bool(ledger.find(prefix, limit=1))


GATE_IN_FORCE: Final = "complianceframework-gate-in-force"


def _record_gate(ports: CompliancePorts, actor: str, body: Mapping[str, Any], ref: str, why: str) -> None:
    details = {"quorumPolicyRef": ref, "why": why}
    quorum.record_in_force(ports.ledger, actor, body, kind="ComplianceFramework", action=GATE_IN_FORCE, details=details)


def approving_policy(
    cf: ComplianceFramework, body: Mapping[str, Any], *, ports: CompliancePorts, actor: str, now: datetime
) -> tuple[str | None, quorum.Gate | None]:
    """The QuorumPolicy that decides the framework's waivers, and the move to its own ref while held.

    The ref in force is the ledger's, by name (see the module docstring): the framework's own when
    first seen or unchanged, the former one while a move to another waits for its approval.
    """
    wanted = cf.spec.quorum_policy_ref
    if wanted is None:
        return None, None  # nothing to approve (CEL: no waivers without a ref)
    found = quorum.latest(ports.ledger, KIND, str(cf.metadata["name"]), GATE_IN_FORCE)
    if found is None:
        _record_gate(ports, actor, body, wanted, "first seen")
        return wanted, None
    before = str(found.get("quorumPolicyRef") or "")
    if before == wanted:
        return wanted, None
    state = ports.policies(before).in_force
    rules = (state.rules("ChangeQuorumGate") or list(state.spec.rules)) if state is not None else []
    if state is None or not rules:
        _record_gate(ports, actor, body, wanted, f"QuorumPolicy {before} in force gates nothing")
        return wanted, None
    gate = quorum.decide_object(quorum_changes.framework_gate(body), rules, state, ports=ports, actor=actor, now=now)
    if gate.approved:
        _record_gate(ports, actor, body, wanted, "approved")
        return wanted, None
    return before, gate


def gates(
    cf: ComplianceFramework,
    body: Mapping[str, Any],
    entries: Sequence[waivers.Entry],
    *,
    ports: CompliancePorts,
    approved: set[str],
    actor: str,
    now: datetime,
) -> tuple[dict[str, waivers.Verdict], list[quorum.Gate], SpecError | None]:
    """A verdict for every exception and attestation, the gates still held, and why none can be decided."""
    name, moved = approving_policy(cf, body, ports=ports, actor=actor, now=now)
    held: list[quorum.Gate] = [moved] if moved is not None else []
    if not entries or name is None:
        return {}, held, None
    state = ports.policies(name)
    if state.in_force is None:
        return (
            {},
            held,
            SpecError(
                f"QuorumPolicy {name} (spec.quorumPolicyRef) has never been in force: no exception or attestation"
                " can be approved; create it, or name another",
                reason="QuorumPolicyNotFound",
            ),
        )
    policy = state.in_force
    uid = str(cf.metadata["uid"])
    verdicts: dict[str, waivers.Verdict] = {}
    for entry in entries:
        if now >= entry.expires:
            continue  # expired: nothing left to decide
        change = entry.gated(quorum_changes.target(body))
        if entry.digest in approved or _decided_before(ports.ledger, uid, change):
            approved.add(entry.digest)
            verdicts[entry.digest] = waivers.Verdict("Approved")
            continue
        rules = policy.rules(entry.action)
        if not rules:
            verdicts[entry.digest] = waivers.Verdict(
                "Refused", message=f"QuorumPolicy {name} has no rule for {entry.action}: add one to approve it"
            )
            continue
        gate = quorum.decide(
            change, rules, policy, cluster=ports.cluster, ledger=ports.ledger, actor=actor, tenant="", now=now
        )
        verdict = verdicts[entry.digest] = waivers.verdict(gate.held)
        if verdict.state == "Approved":
            approved.add(entry.digest)
        elif verdict.state == "Pending":
            held.append(gate)
    return verdicts, held, None


# -- evaluation ----------------------------------------------------------------------------------


def _slim(result: TenantResult) -> TenantResult:
    """The result as memory keeps it: states, weights, waivers and score, without the findings.

    The findings (reasons, evidence) are what a record and a Report say of a new result; the next
    evaluation compares states only, and the summary reads states and scores. Kept whole, they
    were most of the controller's memory: about 16 KB for each (framework, tenant), 320 MB at
    20 frameworks x 1,000 tenants (``make bench``, bench_compliance).
    """
    return replace(result, controls=tuple(replace(c, findings=()) for c in result.controls))


def _rebuilt(tenant: str, controls: Mapping[str, Mapping[str, Any]]) -> TenantResult:
    """A result from a record's ``controls`` (no findings): what ``changes`` compares with after a restart."""
    results = tuple(
        ControlResult(cid, str(c["state"]), str(c["severity"]), int(c["weight"]), ()) for cid, c in controls.items()
    )
    return TenantResult(tenant, results, of_states((c.state, c.severity, c.weight) for c in results))


def _report(frame: Frame, namespace: str, result: TenantResult, now: datetime) -> dict[str, Any]:
    """The Report, with the digest of what it says (built at the epoch, so without times) annotated."""
    spec = frame.obj.spec
    out = openreports.report(
        framework=frame.name,
        namespace=namespace,
        result=result,
        now=_EPOCH,
        category=f"{spec.framework} {spec.version}",
        labels={"privatevault.io/tenant": result.tenant, FRAMEWORK_LABEL: frame.name},
    )
    # Sorted compact JSON is one spelling per report in this codebase (the annotation is compared
    # with itself only); RFC 8785 would cost more than the evaluation (measured).
    said = hashlib.sha256(json.dumps(out, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    for entry in out["results"]:
        entry["timestamp"] = {"seconds": int(now.timestamp()), "nanos": 0}
    out["metadata"]["annotations"] = {REPORT_DIGEST: f"sha256:{said}"}
    # A namespaced object may be owned by a cluster-scoped one: the garbage collector removes the
    # Reports of a framework deleted while the operator was away (no blockOwnerDeletion: that
    # would need the framework's finalizers subresource).
    out["metadata"]["ownerReferences"] = [
        {"apiVersion": API_VERSION, "kind": "ComplianceFramework", "name": frame.name, "uid": frame.uid}
    ]
    return out


def evaluate_tenant(
    frame: Frame,
    body: Mapping[str, Any],
    facts: TenantFacts,
    cluster: ClusterFacts,
    *,
    ports: CompliancePorts,
    memory: Memory,
    reports: bool,
    actor: str,
    now: datetime,
    memo: dict[str, Finding] | None = None,
) -> bool:
    """Evaluate one tenant under one framework; record and report it if it changed. True when it did.

    ``memo``: the findings of this tenant at ``now`` under other frameworks (a check they share runs once).
    """
    result = evaluate(frame.framework, facts, cluster, now, frame.waivers(now).active, memo=memo)
    tenant = facts.name
    with memory.lock:
        known = memory.known.setdefault(frame.uid, {}).get(tenant)
    controls = records.controls_of(result)
    changed = known is None or dict(known.controls) != controls
    seq = known.seq if known is not None else None
    if changed:
        before = None if known is None else (known.result or _rebuilt(tenant, known.controls))
        listed = [
            c
            for c in changes(before, result)
            if known is None or dict(known.controls.get(c.control) or {}) != controls.get(c.control, {})
        ]
        written = _record(frame, tenant, seq, result, listed, ports=ports, actor=actor)
        seq = written.seq
    namespace = _first_namespace(body)
    fingerprint = hash(result)
    same = known is not None and known.fingerprint == fingerprint and known.report_namespace == namespace
    if reports and namespace is not None and not same:
        ports.reports.write(_report(frame, namespace, result, now))  # the writer skips an unchanged one
    elif not reports or same:
        namespace = known.report_namespace if known is not None else None
    with memory.lock:
        memory.known.setdefault(frame.uid, {})[tenant] = Known(seq, controls, _slim(result), namespace, fingerprint)
    return changed or known is None or known.result is None or known.result.score != result.score


def _first_namespace(body: Mapping[str, Any]) -> str | None:
    found = (body.get("status") or {}).get("namespaces") or []
    return str(found[0]) if found else None


def _record(
    frame: Frame,
    tenant: str,
    previous: int | None,
    result: TenantResult,
    listed: Sequence[Any],
    *,
    ports: CompliancePorts,
    actor: str,
) -> Record:
    spec = frame.obj.spec
    details = records.details(
        framework=frame.name,
        framework_uid=frame.uid,
        standard=spec.framework,
        version=spec.version,
        generation=frame.generation,
        previous=previous,
        result=result,
        changed=listed,
    )
    key = records.change_key(frame.uid, tenant, previous, details["controls"])
    return ports.ledger.append(
        event(
            kind=KIND,
            uid=frame.uid,
            tenant=tenant,
            actor=actor,
            action=records.ACTION,
            resource=ResourceRef(kind="ComplianceFramework", name=frame.name, uid=frame.uid),
            change=key.rsplit("/", 1)[1],
            details=details,
        )
    )


def forget_tenant(frame_uid: str, tenant: str, *, ports: CompliancePorts, memory: Memory) -> bool:
    """A tenant no longer selected (or deleted): its result and its Report go. True when it had a result."""
    with memory.lock:
        known = memory.leave(frame_uid, tenant)
        frame = memory.frames.get(frame_uid)
    if known is None:
        return False
    if known.report_namespace is not None and frame is not None:
        ports.reports.delete(openreports.name(frame.name), known.report_namespace)
    return known.result is not None


# -- the reconcile -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    done: status.Done
    #: Whether every selected tenant was evaluated (else only the gates were decided).
    full: bool
    frame: Frame | None


def due(frame: Frame | None, cf: ComplianceFramework, active: frozenset[str], now: datetime) -> bool:
    """Whether the framework's reconcile evaluates every tenant (see the module docstring)."""
    if frame is None or frame.last_full is None or frame.generation != int(cf.metadata.get("generation") or 0):
        return True
    if active != frame.active:
        return True
    return now - frame.last_full >= timedelta(seconds=float(duration_seconds(cf.spec.interval)))


def reconcile(
    cf: ComplianceFramework,
    body: Mapping[str, Any],
    tenants: Iterable[Mapping[str, Any]],
    *,
    ports: CompliancePorts,
    memory: Memory,
    actor: str,
    now: datetime,
) -> Outcome:
    """Decide the gates, evaluate the selected tenants when due, record and report what changed."""
    uid, name = str(cf.metadata["uid"]), str(cf.metadata["name"])
    generation = int(cf.metadata.get("generation") or 0)
    try:
        compiled = compile_framework(cf.spec)
        entries = waivers.entries(cf.spec)
    except SpecError:
        with memory.lock:
            memory.frames.pop(uid, None)
        raise
    memory.load(uid, ports.ledger)
    with memory.lock:
        previous = memory.frames.get(uid)
        approved = memory.approved.setdefault(uid, set())
    verdicts, held, stalled = gates(cf, body, entries, ports=ports, approved=approved, actor=actor, now=now)
    frame = Frame(
        uid=uid,
        name=name,
        generation=generation,
        obj=cf,
        framework=compiled,
        entries=entries,
        verdicts=verdicts,
        gates=tuple(held),
        held=stalled,
        last_full=previous.last_full if previous is not None else None,
        active=previous.active if previous is not None else frozenset(),
    )
    active = _active(frame.waivers(now))
    full = due(previous, cf, active, now)
    if full:
        frame = replace(frame, last_full=now, active=active)
    with memory.lock:
        memory.frames[uid] = frame
    if full:
        evaluate_all(frame, tenants, ports=ports, memory=memory, actor=actor, now=now)
    return Outcome(done=done(frame, memory, now), full=full, frame=frame)


def evaluate_all(
    frame: Frame,
    tenants: Iterable[Mapping[str, Any]],
    *,
    ports: CompliancePorts,
    memory: Memory,
    actor: str,
    now: datetime,
) -> None:
    snapshot = ports.snapshot()
    reports = ports.reports.installed(recheck=True)
    seen: set[str] = set()
    for body in tenants:
        if not frame.selects(body):
            continue
        facts = snapshot.tenant(body)
        seen.add(facts.name)
        evaluate_tenant(
            frame, body, facts, snapshot.cluster, ports=ports, memory=memory, reports=reports, actor=actor, now=now
        )
    with memory.lock:
        gone = [t for t in memory.known.get(frame.uid, {}) if t not in seen]
    for tenant in gone:
        forget_tenant(frame.uid, tenant, ports=ports, memory=memory)


def tenant_changed(
    body: Mapping[str, Any], *, ports: CompliancePorts, memory: Memory, actor: str, now: datetime
) -> list[Frame]:
    """Re-evaluate one tenant under every framework known (incremental); the frames whose results moved.

    The caller holds no framework lock; each framework's evaluation is made under its own.
    """
    with memory.lock:
        frames = list(memory.frames.values())
    if not frames:
        return []
    snapshot = ports.snapshot()
    name = str(body["metadata"]["name"])
    facts = snapshot.tenant(body)
    reports = ports.reports.installed()
    # A resync of an unchanged tenant re-evaluates nothing: its results move with its facts, the
    # frameworks and what they waive; the passing of time (key age, expiries) is the framework's
    # own interval evaluation.
    inputs = (
        facts,
        snapshot.cluster,
        reports,
        tuple((f.uid, f.generation, f.last_full, f.active, f.selects(body)) for f in frames),
    )
    with memory.lock:
        if memory.inputs.get(name) == inputs:
            return []
    memo: dict[str, Finding] = {}
    moved = []
    for frame in frames:
        if frame.selects(body):
            if evaluate_tenant(
                frame,
                body,
                facts,
                snapshot.cluster,
                ports=ports,
                memory=memory,
                reports=bool(reports),
                actor=actor,
                now=now,
                memo=memo,
            ):
                moved.append(frame)
        elif forget_tenant(frame.uid, name, ports=ports, memory=memory):
            moved.append(frame)
    with memory.lock:
        memory.inputs[name] = inputs
    return moved


# -- status --------------------------------------------------------------------------------------


def done(frame: Frame, memory: Memory, now: datetime) -> status.Done:
    """The status facts from what is known of the frame's tenants (equal inputs, equal status)."""
    summary = summarize(sorted(memory.results(frame.uid).values(), key=lambda r: r.tenant))
    decided = frame.waivers(now)
    facts: dict[str, Any] = {
        "score": None,
        **status_fields(summary),
        "exceptions": [e.wire() for e in decided.exceptions],
        "attestations": [a.wire() for a in decided.attestations],
        "last_evaluated": frame.last_full.isoformat().replace("+00:00", "Z") if frame.last_full else None,
    }
    result = quorum.with_gates(status.Done(message=ready_message(summary), facts=facts), frame.gates)
    if frame.held is not None:
        result = replace(result, held=frame.held)
    return result


def scores(frame: Frame, memory: Memory) -> tuple[int | None, dict[str, tuple[int | None, int]]]:
    """The framework's pooled score and each tenant's (score, failing controls), for the metrics."""
    results = memory.results(frame.uid)
    pooled = summarize(list(results.values())).score.value
    return pooled, {t: (r.score.value, len(r.failing())) for t, r in results.items()}
