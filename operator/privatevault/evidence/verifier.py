"""Offline verification of a bundle: no database, no cluster, no network; the first problem named.

Trust comes only from the keys the auditor hands in: the ledger's checkpoint keys, the
operator's evidence keys (told apart by name: ``…/evidence``, or by signing the manifest) and the
witnesses' cosignature keys. The checks, in order (:func:`verify`):

1. the archive holds plain files only; the manifest is signed by every evidence key; every file
   is a subject with its SHA-256 and nothing else is in the bundle;
2. the anchor and latest checkpoints are signed by every ledger key and cosigned by every
   witness, of one origin, and the consistency proof leads from the anchor to the latest;
3. every record of every section: the canonical bytes hash, with the previous hash, to the record
   hash; the inclusion proof leads from it to the anchor's root; seq increases; and the record is
   what its section says (the tenant, the window, the actions);
4. every approval recorded valid verifies under the approver's keys in the QuorumPolicy version
   in force at its seq (from ``policies/``), and every quorum decision is re-run
   (``quorum.decide``) over the envelopes it counted, under that version's rule for its action;
5. every compliance-state record (in the window, and the last one before it per tenant and
   framework, from ``compliance/before/``) follows the previous one of its framework and tenant
   and its score recomputes from its controls (``compliance.history``); the report gives each
   framework and tenant's score at the window's start and end;
6. key metadata and compliance results equal what the records give; counts equal the export's.
"""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from privatevault.api.v1alpha1.quorumpolicy import QuorumPolicySpec
from privatevault.compliance import history
from privatevault.errors import PrivateVaultError
from privatevault.evidence import archive, layout, manifest
from privatevault.ledger import merkle, tenantchain
from privatevault.ledger.chain import GENESIS, record_hash
from privatevault.ledger.checkpoint import Checkpoint, CheckpointError, KeyVerifier, NoteVerifier, parse_and_verify
from privatevault.ledger.cosignature import CosignatureVerifier
from privatevault.quorum import dsse
from privatevault.quorum.decision import Ballot, Requester, decide
from privatevault.quorum.rules import public_keys
from privatevault.quorum.statement import StatementError, parse, parse_time


class Problem(PrivateVaultError):
    """The first thing wrong with a bundle: ``where`` names the file (and seq), ``check`` the step."""

    def __init__(self, check: str, where: str, message: str, *, seq: int | None = None) -> None:
        super().__init__(f"{where}: {message}")
        self.check, self.where, self.seq = check, where, seq


@dataclass
class Report:
    ok: bool = False
    problem: Problem | None = None
    records: int = 0
    #: The tenants' last records before and first after the window (not counted in ``records``).
    boundaries: int = 0
    files: int = 0
    approvals: int = 0
    decisions: int = 0
    rerun: int = 0
    #: Every tenant's chain checked from its last record before the window to its first after it.
    complete: bool = False
    #: Records written before tenant chains existed: their predecessors cannot be checked.
    unlinked: int = 0
    tenants: list[str] = field(default_factory=list)
    window: dict[str, str] = field(default_factory=dict)
    checkpoint: int = 0
    latest: int = 0
    manifest_keys: list[str] = field(default_factory=list)
    witnesses: list[str] = field(default_factory=list)
    #: The last compliance-state records before the window (not counted in ``records``).
    compliance_before: int = 0
    #: Per framework and tenant: the state at the window's start and end (``compliance/results.json``'s summary).
    compliance: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": self.ok,
            "records": self.records,
            "boundaryRecords": self.boundaries,
            "files": self.files,
            "approvals": self.approvals,
            "decisions": self.decisions,
            "decisionsRerun": self.rerun,
            "complete": self.complete,
            "unlinkedRecords": self.unlinked,
            "tenants": self.tenants,
            "window": self.window,
            "checkpoint": self.checkpoint,
            "latest": self.latest,
            "manifestKeys": self.manifest_keys,
            "witnesses": self.witnesses,
            "complianceBeforeRecords": self.compliance_before,
            "compliance": self.compliance,
        }
        if self.problem is not None:
            out["problem"] = {
                "check": self.problem.check,
                "where": self.problem.where,
                "seq": self.problem.seq,
                "message": str(self.problem),
            }
        return out


def split_keys(keys: Sequence[KeyVerifier]) -> tuple[list[KeyVerifier], list[KeyVerifier]]:
    """``(evidence keys, ledger keys)``: evidence keys are named ``…/evidence``."""
    evidence = [key for key in keys if key.name.endswith("/evidence")]
    return evidence, [key for key in keys if not key.name.endswith("/evidence")]


def verify(bundle: Path, keys: Sequence[KeyVerifier], witnesses: Sequence[CosignatureVerifier] = ()) -> Report:
    """Check ``bundle`` against the given keys; the report says what was checked, or the first problem."""
    report = Report()
    with tempfile.TemporaryDirectory(prefix="pv-evidence-") as scratch:
        try:
            _verify(bundle, Path(scratch), keys, witnesses, report)
        except Problem as problem:
            report.problem = problem
            return report
    report.ok = True
    return report


def _verify(
    bundle: Path, root: Path, keys: Sequence[KeyVerifier], witnesses: Sequence[CosignatureVerifier], report: Report
) -> None:
    try:
        names = archive.unpack(bundle, root)
    except archive.BundleError as exc:
        raise Problem("archive", str(bundle), str(exc)) from exc
    report.files = len(names)
    evidence_keys, ledger_keys = split_keys(keys)
    if not ledger_keys:
        raise Problem("keys", "--verifier-key", "no ledger checkpoint key given (a key not named …/evidence)")
    if manifest.ENVELOPE not in names:
        raise Problem("manifest", manifest.ENVELOPE, "the bundle has no signed manifest")
    try:
        parsed = manifest.open_manifest((root / manifest.ENVELOPE).read_bytes(), evidence_keys)
    except manifest.ManifestError as exc:
        raise Problem("manifest-signature", manifest.ENVELOPE, str(exc)) from exc
    report.manifest_keys = list(parsed.signed_by)
    _check_digests(root, names, parsed.subjects)
    export = parsed.predicate
    if json.loads((root / layout.EXPORT).read_bytes()) != export:
        raise Problem("export", layout.EXPORT, "differs from the signed manifest's predicate")
    report.tenants, report.window = list(export["tenants"]), dict(export["window"])
    anchor, latest = _check_checkpoints(root, export, ledger_keys, witnesses, report)
    start, end = parse_time(export["window"]["from"]), parse_time(export["window"]["to"])
    derived = _check_audit(root, names, export, anchor, report)
    policies = _policy_records(root, names, end, anchor, report)
    if layout.records_file(layout.QUORUM) in names:
        _check_quorum(root, policies, (start, end), anchor, report)
    if layout.COMPLIANCE in names:
        _check_compliance(root, names, export, anchor, report=report, derived=derived)
    _check_derived(root, names, derived)
    del latest


def _check_audit(
    root: Path, names: Sequence[str], export: dict[str, Any], anchor: Checkpoint, report: Report
) -> dict[str, list[dict[str, Any]]]:
    """Each tenant's records: genuine, its own, in the window, complete; what they derive."""
    start, end = parse_time(export["window"]["from"]), parse_time(export["window"]["to"])
    derived: dict[str, list[dict[str, Any]]] = {layout.KEYS: [], layout.COMPLIANCE: []}
    for tenant in export["tenants"]:
        section = layout.audit_section(tenant)
        where = layout.records_file(section)
        if where not in names:
            continue
        bounds = layout.boundary_section(tenant)
        in_bundle = layout.records_file(bounds) in names
        ends = list(_section(root, bounds, anchor, report, counter="boundaries")) if in_bundle else None
        chain = _TenantChain(tenant, ends, (start, end), report)
        count = 0
        for record, digest in _section(root, section, anchor, report):
            _of_tenant(record, tenant, where)
            _in_window(record, start, end, where)
            chain.step(record, digest)
            count += 1
            derived[layout.KEYS] += layout.key_metadata([record])
            derived[layout.COMPLIANCE] += layout.compliance_results([record])
        chain.finish()
        if count != export["counts"]["audit"].get(tenant):
            raise Problem("counts", where, "the number of records differs from export.json")
    return derived


def _policy_records(
    root: Path, names: Sequence[str], end: datetime, anchor: Checkpoint, report: Report
) -> list[dict[str, Any]]:
    """The policy versions in force during the window (few: kept in memory for the quorum checks)."""
    where = layout.records_file(layout.POLICIES)
    policies: list[dict[str, Any]] = []
    if where not in names:
        return policies
    for record, _ in _section(root, layout.POLICIES, anchor, report):
        if record["action"] not in layout.POLICY_ACTIONS:
            raise Problem(
                "section",
                where,
                f"record {record['seq']} is a {record['action']} record, not a policy version",
                seq=record["seq"],
            )
        if parse_time(record["time"]) >= end:
            raise Problem("section", where, f"record {record['seq']} is after the window", seq=record["seq"])
        policies.append(record)
    return policies


def _check_digests(root: Path, names: Sequence[str], subjects: dict[str, str]) -> None:
    for name in names:
        if name == manifest.ENVELOPE:
            continue
        if name not in subjects:
            raise Problem("digest", name, "is in the bundle but not in the signed manifest")
        if archive.sha256_file(root / name) != subjects[name]:
            raise Problem("digest", name, "its SHA-256 differs from the one in the signed manifest")
    for name in subjects:
        if name not in names:
            raise Problem("digest", name, "is named in the signed manifest but missing from the bundle")


def _check_checkpoints(
    root: Path,
    export: dict[str, Any],
    ledger_keys: Sequence[KeyVerifier],
    witnesses: Sequence[CosignatureVerifier],
    report: Report,
) -> tuple[Checkpoint, Checkpoint]:
    # The witnesses cosign the latest checkpoint; the anchor is proved a prefix of it below.
    needed: dict[str, list[NoteVerifier]] = {layout.ANCHOR: [*ledger_keys], layout.LATEST: [*ledger_keys, *witnesses]}
    opened = []
    for name in (layout.ANCHOR, layout.LATEST):
        try:
            opened.append(parse_and_verify((root / name).read_bytes(), needed[name], origin=export["origin"]))
        except (CheckpointError, FileNotFoundError) as exc:
            raise Problem("checkpoint", name, str(exc)) from exc
    anchor, latest = opened
    for name, head, claimed in (
        (layout.ANCHOR, anchor, export["checkpoint"]),
        (layout.LATEST, latest, export["latest"]),
    ):
        if head.size != claimed["size"] or base64.b64encode(head.root).decode() != claimed["root"]:
            raise Problem("checkpoint", name, "differs from the checkpoint export.json names")
    try:
        consistency = json.loads((root / layout.CONSISTENCY).read_bytes())
        proof = [base64.b64decode(p, validate=True) for p in consistency["proof"]]
        sizes = (int(consistency["oldSize"]), int(consistency["newSize"]))
    except (ValueError, KeyError, TypeError, binascii.Error, FileNotFoundError) as exc:
        raise Problem("consistency", layout.CONSISTENCY, f"is not a consistency proof: {exc}") from exc
    if sizes != (anchor.size, latest.size) or not merkle.verify_consistency(
        anchor.size, latest.size, anchor.root, latest.root, proof
    ):
        raise Problem(
            "consistency",
            layout.CONSISTENCY,
            f"does not prove that checkpoint {latest.size} extends the anchor checkpoint {anchor.size}",
        )
    report.checkpoint, report.latest = anchor.size, latest.size
    report.witnesses = [w.name for w in witnesses]
    return anchor, latest


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as data:
        for line in data:
            yield line.rstrip(b"\n")


def _section(
    root: Path, section: str, anchor: Checkpoint, report: Report, *, counter: str = "records"
) -> Iterator[tuple[dict[str, Any], bytes]]:
    """Each record of a section and its record hash, once both and the inclusion proof verify, in seq order."""
    records_name, proofs_name = layout.records_file(section), layout.proofs_file(section)
    records, proofs = _lines(root / records_name), _lines(root / proofs_name)
    last = 0
    for n, (body, proof_bytes) in enumerate(zip(records, proofs, strict=False), start=1):
        try:
            proof = layout.ProofLine.parse(proof_bytes)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise Problem("proof", proofs_name, f"line {n} is not a proof line: {exc}") from exc
        try:
            record = json.loads(body)
        except ValueError as exc:
            raise Problem("record", records_name, f"line {n} is not JSON", seq=proof.seq) from exc
        if record.get("seq") != proof.seq:
            raise Problem(
                "proof",
                proofs_name,
                f"line {n} is the proof of record {proof.seq}, but the record is {record.get('seq')}",
                seq=proof.seq,
            )
        if proof.seq <= last:
            raise Problem(
                "order", records_name, f"record {proof.seq} follows record {last}: not in seq order", seq=proof.seq
            )
        last = proof.seq
        if record_hash(proof.prev_hash, body) != proof.record_hash:
            raise Problem(
                "record-hash",
                records_name,
                f"record {proof.seq}: its bytes do not hash to its record hash",
                seq=proof.seq,
            )
        if proof.seq > anchor.size or not merkle.verify_inclusion(
            merkle.leaf_hash(proof.record_hash), proof.seq - 1, anchor.size, proof.proof, anchor.root
        ):
            raise Problem(
                "inclusion",
                proofs_name,
                f"record {proof.seq}: the inclusion proof does not lead to the root of anchor checkpoint {anchor.size}",
                seq=proof.seq,
            )
        setattr(report, counter, getattr(report, counter) + 1)
        yield record, proof.record_hash
    if next(records, None) is not None or next(proofs, None) is not None:
        raise Problem("proof", section, f"{records_name} and {proofs_name} have different numbers of lines")


def _of_tenant(record: dict[str, Any], tenant: str, where: str) -> None:
    if record["tenant"] != tenant:
        raise Problem(
            "section",
            where,
            f"record {record['seq']} is of tenant {record['tenant']!r}, not {tenant!r}",
            seq=record["seq"],
        )


class _TenantChain:
    """The tenant's chain, checked as the records stream by: unbroken from its last record before
    the window, through every record in it, to its first record after it."""

    def __init__(
        self,
        tenant: str,
        ends: Sequence[tuple[dict[str, Any], bytes]] | None,
        span: tuple[datetime, datetime],
        report: Report,
    ) -> None:
        self.tenant, self.report = tenant, report
        self.where = layout.records_file(layout.boundary_section(tenant))
        if ends is None:
            raise Problem("completeness", self.where, f"the bundle holds no boundary records of {tenant}")
        for record, _ in ends:
            _of_tenant(record, tenant, self.where)
        before = [(r, h) for r, h in ends if parse_time(r["time"]) < span[0]]
        self.after = [(r, h) for r, h in ends if parse_time(r["time"]) >= span[1]]
        if len(before) > 1 or len(self.after) > 1 or len(before) + len(self.after) != len(ends):
            raise Problem(
                "completeness", self.where, "holds other records than the one before and the one after the window"
            )
        self.previous: tuple[dict[str, Any], bytes] | None = before[0] if before else None
        self.had_before = bool(before)
        self.first = True

    def step(self, record: dict[str, Any], digest: bytes, *, last: bool = False) -> None:
        if self.previous is None:
            if record.get(tenantchain.SEQ) != 1 or record.get(tenantchain.PREV) != base64.b64encode(GENESIS).decode():
                raise Problem(
                    "completeness",
                    self.where,
                    f"the bundle lacks {self.tenant}'s last record before the window: record {record['seq']} is its"
                    f" record #{record.get(tenantchain.SEQ)}, not its first",
                    seq=record["seq"],
                )
        elif tenantchain.SEQ not in record:
            self.report.unlinked += 1  # written before tenant chains: its predecessor cannot be checked
        else:
            self._link(self.previous, record, last=last)
        self.previous, self.first = (record, digest), False

    def _link(self, previous: tuple[dict[str, Any], bytes], record: dict[str, Any], *, last: bool) -> None:
        a, a_hash = previous
        expected = int(a.get(tenantchain.SEQ) or 0) + 1
        if record[tenantchain.SEQ] == expected and record[tenantchain.PREV] == base64.b64encode(a_hash).decode():
            return
        found = int(record[tenantchain.SEQ])
        gap = (
            f"tenant records #{expected} to #{found - 1}"
            if found > expected
            else "a record that is not the one before it"
        )
        if last:
            message = (
                f"record(s) of {self.tenant} missing at the end of the window: the first record after it"
                f" ({record['seq']}) follows {gap}, not the bundle's last record ({a['seq']})"
            )
        elif self.first and self.had_before:
            message = (
                f"record(s) of {self.tenant} missing at the start of the window: record {record['seq']} follows {gap}"
            )
        else:
            message = f"record(s) of {self.tenant} missing between records {a['seq']} and {record['seq']}: {gap}"
        raise Problem(
            "completeness", layout.records_file(layout.audit_section(self.tenant)), message, seq=record["seq"]
        )

    def finish(self) -> None:
        if not self.after:
            raise Problem(
                "completeness",
                self.where,
                f"no record of {self.tenant} after the window: nothing proves that its last records in the window"
                " are all here",
            )
        self.step(*self.after[0], last=True)
        self.report.complete = self.report.unlinked == 0


def _in_window(record: dict[str, Any], start: datetime, end: datetime, where: str) -> None:
    moment = parse_time(record["time"])
    if not start <= moment < end:
        raise Problem(
            "window", where, f"record {record['seq']} at {record['time']} is outside the window", seq=record["seq"]
        )


@dataclass(frozen=True)
class _PolicyVersion:
    seq: int
    generation: int
    spec: QuorumPolicySpec | None


def _policy_at(policies: Sequence[dict[str, Any]], name: str, seq: int) -> _PolicyVersion | None:
    """The QuorumPolicy ``name`` in force just before record ``seq``, from the bundle's policy records."""
    found = None
    for record in policies:
        if record["seq"] >= seq:
            break
        if record["action"] == "quorumpolicy-in-force" and record["resource"]["name"] == name:
            details = record.get("details") or {}
            spec = details.get("spec")
            found = _PolicyVersion(
                record["seq"],
                int(details.get("generation") or 0),
                None if spec is None else QuorumPolicySpec.model_validate(spec),
            )
    return found


def _required_policy(
    policies: Sequence[dict[str, Any]], name: str, seq: int, check: str, where: str
) -> tuple[int, QuorumPolicySpec]:
    """The QuorumPolicy version in force at ``seq``; a Problem when the bundle lacks it (or it was deleted)."""
    version = _policy_at(policies, name, seq)
    if version is None or version.spec is None:
        raise Problem(
            check, where, f"record {seq}: the QuorumPolicy {name} version in force is not in the bundle", seq=seq
        )
    return version.generation, version.spec


def _check_quorum(
    root: Path,
    policies: Sequence[dict[str, Any]],
    window: tuple[datetime, datetime],
    anchor: Checkpoint,
    report: Report,
) -> None:
    start, end = window
    where = layout.records_file(layout.QUORUM)
    seen_approvals: dict[str, datetime] = {}
    for record, _ in _section(root, layout.QUORUM, anchor, report):
        seq, details = record["seq"], record.get("details") or {}
        if record["action"] not in layout.QUORUM_ACTIONS:
            raise Problem(
                "section", where, f"record {seq} is a {record['action']} record, not an approval or decision", seq=seq
            )
        _in_window(record, start, end, where)
        if record["action"] == "record-approval":
            report.approvals += 1
            envelope = details.get("envelope") or {}
            seen_approvals.setdefault(_envelope_digest(envelope), parse_time(record["time"]))
            if details.get("verdictWhenSeen") != "Valid":
                continue
            _, spec = _required_policy(policies, str(details.get("policy")), seq, "approval", where)
            _verify_envelope(envelope, str(details.get("approver")), spec, where, seq)
        else:
            report.decisions += 1
            _rerun(record, policies, seen_approvals, where, report)


def _envelope_digest(envelope: dict[str, Any]) -> str:
    try:
        return dsse.parse(envelope).digest()
    except dsse.EnvelopeError:
        return ""


def _verify_envelope(
    envelope: dict[str, Any], approver_name: str, spec: QuorumPolicySpec, where: str, seq: int
) -> tuple[str, frozenset[dsse.Algorithm], datetime]:
    try:
        parsed = dsse.parse(envelope)
        statement = parse(parsed.payload)
    except (dsse.EnvelopeError, StatementError) as exc:
        raise Problem("approval", where, f"record {seq}: the approval envelope is malformed: {exc}", seq=seq) from exc
    approver = next((a for a in spec.approvers if a.name == statement.approver), None)
    if approver is None or statement.approver != approver_name:
        raise Problem(
            "approval",
            where,
            f"record {seq}: {statement.approver} is not an approver of the policy version in force",
            seq=seq,
        )
    algorithms = dsse.verify(parsed, public_keys(approver))
    if not algorithms:
        raise Problem(
            "approval-signature",
            where,
            f"record {seq}: no signature of {approver.name}'s approval verifies under their keys in the policy",
            seq=seq,
        )
    return statement.approver, algorithms, statement.not_after


def _rerun(
    record: dict[str, Any], policies: Sequence[dict[str, Any]], seen: dict[str, datetime], where: str, report: Report
) -> None:
    seq, details = record["seq"], record.get("details") or {}
    policy = details.get("policy") or {}
    generation, spec = _required_policy(policies, str(policy.get("name")), seq, "decision", where)
    if generation != policy.get("generation"):
        raise Problem(
            "decision",
            where,
            f"record {seq}: decided under generation {policy.get('generation')} of {policy.get('name')}, but generation"
            f" {generation} was in force",
            seq=seq,
        )
    # Decisions name the rules they were taken under; older ones, only their action's rule.
    names = details.get("rules") or [details.get("action")]
    rules = [r for name in names for r in spec.rules if r.action == name]
    if len(rules) != len(names) and "rules" in details:
        raise Problem(
            "decision", where, f"record {seq}: the policy version in force lacks a rule the decision names", seq=seq
        )
    now = parse_time(record["time"])
    ballots = []
    for entry in details.get("approvals") or []:
        envelope = entry.get("envelope") or {}
        approver, algorithms, not_after = _verify_envelope(envelope, str(entry.get("approver")), spec, where, seq)
        try:
            statement = parse(dsse.parse(envelope).payload)
        except (dsse.EnvelopeError, StatementError) as exc:  # checked above; kept for the type checker
            raise Problem("decision", where, str(exc), seq=seq) from exc
        if statement.change_digest != details.get("changeDigest") or statement.action != details.get("action"):
            raise Problem("decision", where, f"record {seq}: {approver}'s approval is for another change", seq=seq)
        # The approval's creation is not in the decision; the record-approval record is an upper bound.
        created = seen.get(_envelope_digest(envelope), now)
        ballots.append(
            Ballot(
                approver=approver,
                algorithms=algorithms,
                not_after=not_after,
                created=min(created, now),
                name=str(entry.get("name")),
            )
        )
    requester = details.get("requester")
    who = Requester.of(*[u.strip() for u in str(requester).split(",")]) if requester else Requester.unknown()
    if not rules:
        return  # an older decision under rules it does not name: its approvals' signatures were checked
    report.rerun += 1
    decision = decide(rules, spec.approvers, ballots, who, now)
    if decision.state != details.get("decision"):
        raise Problem(
            "decision",
            where,
            f"record {seq}: re-running the decision gives {decision.state} ({decision.message}),"
            f" not {details.get('decision')}",
            seq=seq,
        )


def _check_compliance(
    root: Path,
    names: Sequence[str],
    export: dict[str, Any],
    anchor: Checkpoint,
    *,
    report: Report,
    derived: dict[str, Any],
) -> None:
    """The compliance-state records before the window and in it, folded: each one follows the
    previous of its framework and tenant and its score recomputes; the states at start and end."""
    where = layout.records_file(layout.COMPLIANCE_BEFORE)
    start = parse_time(export["window"]["from"])
    before: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    if where in names:
        for record, _ in _section(root, layout.COMPLIANCE_BEFORE, anchor, report, counter="compliance_before"):
            seq = record["seq"]
            if record["action"] != history.ACTION or record["tenant"] not in export["tenants"]:
                raise Problem(
                    "section", where, f"record {seq} is not a compliance-state record of the bundle's tenants", seq=seq
                )
            if parse_time(record["time"]) >= start:
                raise Problem("section", where, f"record {seq} is not before the window", seq=seq)
            key = (str((record.get("details") or {}).get("frameworkUid")), record["tenant"])
            if key in seen:
                raise Problem(
                    "section", where, f"record {seq} is a second record of framework and tenant {key}", seq=seq
                )
            seen.add(key)
            before.append(record)
    if report.compliance_before != export["counts"].get("complianceBefore", 0):
        raise Problem("counts", where, "the number of records differs from export.json")
    document, problems = layout.compliance_document(derived[layout.COMPLIANCE], before)
    if problems:
        first = problems[0]
        bad = (
            where
            if first.seq in {r["seq"] for r in before}
            else layout.records_file(layout.audit_section(first.tenant))
        )
        raise Problem("compliance", bad, str(first), seq=first.seq)
    # A bundle built before the compliance slot was filled has no before section and lists its
    # (then absent) compliance records alone; its records are folded all the same.
    derived[layout.COMPLIANCE] = document if where in names else {"results": document["results"]}
    report.compliance = document["summary"]


def _check_derived(root: Path, names: Sequence[str], derived: dict[str, Any]) -> None:
    for name, expected in (
        (layout.KEYS, {"keys": derived[layout.KEYS]}),
        (layout.COMPLIANCE, derived[layout.COMPLIANCE]),
    ):
        if name not in names:
            continue
        if json.loads((root / name).read_bytes()) != expected:
            raise Problem("derived", name, "differs from what the bundle's audit records give")
