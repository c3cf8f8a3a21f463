"""A small ledger with everything a bundle holds, built from fixed seeds and times (every tier).

Two tenants' records around a window, compliance-state records of one of them before it and in
it, a QuorumPolicy version in force before it and one during
it, an approval of an export and the decision that counted it, a witness that cosigns; keys from
fixed seeds so a bundle built from it has known bytes (``tests/unit/test_evidence_bundle.py``'s
golden digest). ML-DSA signing is hedged, so golden tests sign manifests with Ed25519 only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privatevault.evidence import keys as evidence_keys
from privatevault.evidence import manifest, writer
from privatevault.ledger import Event, ResourceRef
from privatevault.ledger.checkpoint import LocalSigner
from privatevault.ledger.cosignature import CosignatureSigner
from privatevault.quorum import dsse
from privatevault.quorum.statement import Statement, Target
from tests import builders, compliance_history
from tests.quorum_keys import ApproverKeys, approver
from tests.unit.fakes import MemoryEvidence

ORIGIN = "privatevault.io/test-ledger"
START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 2, tzinfo=UTC)


def seed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def ed25519_pair(label: str) -> tuple[bytes, bytes]:
    private = seed(label)
    return private, Ed25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


@dataclass
class Scenario:
    ledger: MemoryEvidence
    signer: LocalSigner
    witness: CosignatureSigner
    evidence: evidence_keys.EvidenceKeys
    alice: ApproverKeys

    @property
    def verifier_keys(self) -> list[str]:
        return [self.signer.verifier_key, *self.evidence.verifier_keys()]

    def sign(self, statement: bytes) -> bytes:
        return manifest.envelope_bytes(dsse.sign(statement, self.evidence.pairs))

    def request(self, tenants: tuple[str, ...] = ("acme",), include: frozenset[str] | None = None) -> writer.Request:
        every = frozenset({"Audit", "Approvals", "Policies", "ComplianceResults", "KeyMetadata"})
        return writer.Request(tenants, START, END, include or every, ORIGIN)

    def build(self, into: Path, out: Path, *, sign: Callable[[bytes], bytes] | None = None) -> writer.Packed:
        built = writer.build(self.ledger, self.request(), into, sign=sign or self.sign)
        with out.open("wb") as sink:
            return writer.pack(built, sink)


def event(tenant: str, action: str, n: int, details: dict[str, object] | None = None, **resource: str) -> Event:
    return Event(
        tenant=tenant,
        actor="system:serviceaccount:privatevault-system:privatevault-operator",
        action=action,
        resource=ResourceRef(kind=resource.get("kind", "Namespace"), name=resource.get("name", f"{tenant}-{n}")),
        outcome="intended",
        idempotency_key=f"tenant/{tenant}/{action}/{n}",
        details=dict(details or {}),
    )


def policy_event(spec: dict[str, object], generation: int) -> Event:
    return Event(
        tenant="",
        actor="operator",
        action="quorumpolicy-in-force",
        resource=ResourceRef(kind="QuorumPolicy", name="exports", uid="qp-uid"),
        outcome="intended",
        idempotency_key=f"quorumpolicy/exports/quorumpolicy-in-force/qp-uid:{generation}",
        details={"generation": generation, "spec": spec, "reasons": ["first version"]},
    )


def scenario(
    *,
    mldsa: bool = False,
    records: int = 6,
    compliance: Callable[[dict[str, Any]], None] | None = None,
    compliance_records: bool = True,
) -> Scenario:
    """The ledger above; ``compliance`` changes the details of the compliance-state record in the
    window before it is appended (a record a faulty or dishonest writer put in the ledger);
    without ``compliance_records``, the ledger of a version before compliance."""
    ledger = MemoryEvidence()
    signer = LocalSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(seed("ledger")))
    witness = CosignatureSigner(
        "witness.test/w1", Ed25519PrivateKey.from_private_bytes(seed("witness")), clock=lambda: 1_772_000_000
    )
    if mldsa:
        keys = evidence_keys.from_seeds(
            evidence_keys.key_name(ORIGIN), {"Ed25519": seed("ev-ed"), "ML-DSA-65": seed("ev-ml")}
        )
    else:
        keys = evidence_keys.from_seeds(evidence_keys.key_name(ORIGIN), {"Ed25519": seed("ev-ed")})
    alice = ApproverKeys(ed25519=ed25519_pair("alice"), ml_dsa65=None)
    spec = builders.quorum_policy(
        "exports",
        approvers=[approver("alice", alice, roles=["security"])],
        rules=[builders.rule("CreateEvidenceExport", allow_self_approval=True)],
    )["spec"]
    before = START - timedelta(hours=2)
    ledger.append(policy_event(spec, 1), before)
    ledger.append(event("acme", "create-namespace", 0), before)
    ledger.append(
        event("acme", "provision-kek", 1, {"provider": "local", "version": 1}, kind="TransitKey", name="acme"), before
    )
    # Compliance: acme's state under two frameworks before the window, one of them changing in it.
    failing = {"ac-1": compliance_history.control("pass"), "ac-2": compliance_history.control("fail", "Critical")}
    passing = {"ac-1": compliance_history.control("pass"), "ac-2": compliance_history.control("pass", "Critical")}
    if compliance_records:
        baseline = ledger.append(
            compliance_history.event("acme", failing, None, framework="baseline", uid="cf-baseline", generation=1),
            before,
        )
        ledger.append(
            compliance_history.event("acme", passing, None, framework="nist", uid="cf-nist", generation=1), before
        )
    ledger.sign([signer], ORIGIN, [witness])
    for n in range(records):
        moment = START + timedelta(minutes=10 * (n + 1))
        ledger.append(event("acme", "create-namespace", 10 + n), moment)
        ledger.append(event("globex", "create-namespace", 10 + n), moment)
    if compliance_records:
        changed = compliance_history.event(
            "acme", passing, (baseline.seq, failing), framework="baseline", uid="cf-baseline", generation=1
        )
        if compliance is not None:
            compliance(changed.details)
        ledger.append(changed, START + timedelta(hours=2))
    ledger.append(
        event("acme", "rotate-kek-on-request", 99, {"provider": "local", "version": 2}, kind="TransitKey", name="acme"),
        START + timedelta(hours=3),
    )
    ledger.append(policy_event(spec, 2), START + timedelta(hours=4))
    target = Target(kind="EvidenceExport", name="q1", uid="ee-uid", generation=1)
    change_digest = "sha256:" + "ab" * 32
    statement = Statement(
        action="CreateEvidenceExport",
        target=target,
        change_digest=change_digest,
        approver="alice",
        policy="exports",
        policy_generation=2,
        not_after=START + timedelta(days=1),
    )
    envelope = dsse.sign(statement.payload(), alice.signing()).to_json()
    approval_time = START + timedelta(hours=5)
    ledger.append(
        Event(
            tenant="",
            actor="operator",
            action="record-approval",
            resource=ResourceRef(kind="Approval", name="q1-alice", uid="ap-uid"),
            outcome="intended",
            idempotency_key="approval/ap-uid/record-approval/x",
            details={
                "approver": "alice",
                "policy": "exports",
                "action": {"verb": "CreateEvidenceExport", "kind": "EvidenceExport", "name": "q1"},
                "verdictWhenSeen": "Valid",
                "reason": "signed by alice (Ed25519)",
                "envelope": envelope,
            },
        ),
        approval_time,
    )
    ledger.append(
        Event(
            tenant="acme",
            actor="operator",
            action="quorum-decision",
            resource=ResourceRef(kind="EvidenceExport", name="q1", uid="ee-uid"),
            outcome="intended",
            idempotency_key="evidenceexport/ee-uid/quorum-decision/x",
            details={
                "action": "CreateEvidenceExport",
                "target": {"kind": "EvidenceExport", "name": "q1", "uid": "ee-uid", "generation": 1},
                "changeDigest": change_digest,
                "policy": {"name": "exports", "generation": 2},
                "decision": "Approved",
                "message": "1/1 approvals (alice)",
                "requester": None,
                "rules": ["CreateEvidenceExport"],
                "approvals": [{"name": "q1-alice", "approver": "alice", "envelope": envelope}],
            },
        ),
        approval_time + timedelta(seconds=5),
    )
    ledger.append(event("acme", "create-namespace", 500), END + timedelta(hours=1))
    ledger.sign([signer], ORIGIN, [witness])
    ledger.append(event("acme", "create-namespace", 501), END + timedelta(hours=2))
    ledger.sign([signer], ORIGIN, [witness])
    return Scenario(ledger, signer, witness, keys, alice)
