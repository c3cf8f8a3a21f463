"""The files of a bundle, the sections of ledger records, and what is derived from the records.

Every section of records is two files read in step: ``records.jsonl`` holds each record's
canonical bytes verbatim (RFC 8785 JSON has no raw newline, so one record is one line) and
``proofs.jsonl`` the same records' chain hashes and RFC 9162 inclusion proof at the anchor
checkpoint, one JSON object per line::

    audit/<tenant>/records.jsonl, audit/<tenant>/proofs.jsonl   the tenant's records in the window
    audit/<tenant>/boundaries/records.jsonl, …/proofs.jsonl     its last record before, first after it
    quorum/records.jsonl, quorum/proofs.jsonl                   approvals and quorum decisions in it
    policies/records.jsonl, policies/proofs.jsonl               QuorumPolicy/ProtectionPolicy versions
                                                                in force at its start or during it
    checkpoint/anchor.note        the checkpoint every proof is against, with witness cosignatures
    checkpoint/latest.note        the latest checkpoint when the bundle was built
    checkpoint/consistency.json   the consistency proof from the anchor to the latest
    keys/metadata.json            the tenants' key records (provider, names, versions, rotations)
    compliance/results.json       compliance results in the window (the slot; empty until they exist)
    export.json                   what was asked and what was found: the manifest's predicate
    README.md                     for the auditor
    manifest.dsse.json            the signed in-toto Statement over all of the above

``keys/metadata.json`` and ``compliance/results.json`` are derived from the audit records
(:func:`key_metadata`, :func:`compliance_results`), so the verifier recomputes them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

QUORUM_ACTIONS: Final = ("quorum-decision", "record-approval")
POLICY_ACTIONS: Final = ("protectionpolicy-in-force", "quorumpolicy-in-force")

ANCHOR: Final = "checkpoint/anchor.note"
LATEST: Final = "checkpoint/latest.note"
CONSISTENCY: Final = "checkpoint/consistency.json"
KEYS: Final = "keys/metadata.json"
COMPLIANCE: Final = "compliance/results.json"
EXPORT: Final = "export.json"
README: Final = "README.md"
QUORUM: Final = "quorum"
POLICIES: Final = "policies"


def audit_section(tenant: str) -> str:
    return f"audit/{tenant}"


def boundary_section(tenant: str) -> str:
    """The tenant's last record before the window and first after it: its chain's two ends."""
    return f"audit/{tenant}/boundaries"


def records_file(section: str) -> str:
    return f"{section}/records.jsonl"


def proofs_file(section: str) -> str:
    return f"{section}/proofs.jsonl"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class ProofLine:
    seq: int
    prev_hash: bytes
    record_hash: bytes
    proof: tuple[bytes, ...]

    def to_bytes(self) -> bytes:
        """RFC 8785 bytes, written out by hand (the hot loop of an export): the keys in JCS order,
        values that need no escaping (integers, standard base64)."""
        proof = b'","'.join(binascii.b2a_base64(p, newline=False) for p in self.proof)
        return b"".join(
            (
                b'{"prevHash":"',
                binascii.b2a_base64(self.prev_hash, newline=False),
                b'","proof":[' + (b'"' + proof + b'"' if self.proof else b""),
                b'],"recordHash":"',
                binascii.b2a_base64(self.record_hash, newline=False),
                b'","seq":%d}\n' % self.seq,
            )
        )

    @classmethod
    def parse(cls, line: bytes) -> ProofLine:
        document = json.loads(line)
        return cls(
            seq=int(document["seq"]),
            prev_hash=base64.b64decode(document["prevHash"], validate=True),
            record_hash=base64.b64decode(document["recordHash"], validate=True),
            proof=tuple(base64.b64decode(p, validate=True) for p in document["proof"]),
        )


def _is_key_action(action: str) -> bool:
    return "kek" in action or "key" in action.split("-")


def key_metadata(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The key records among a tenant's records (actions naming a KEK or key): facts, never material.

    The ledger never holds key material (details carry providers, names, versions, digests), so
    the records' details are copied as they are.
    """
    return [
        {
            "seq": r["seq"],
            "time": r["time"],
            "tenant": r["tenant"],
            "action": r["action"],
            "resource": r["resource"],
            "details": r.get("details") or {},
        }
        for r in records
        if _is_key_action(str(r.get("action", "")))
    ]


def compliance_results(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Compliance records (actions ``compliance-*``) among a tenant's records, as they are."""
    return [
        {"seq": r["seq"], "time": r["time"], "tenant": r["tenant"], "action": r["action"], "details": r.get("details")}
        for r in records
        if str(r.get("action", "")).startswith("compliance-")
    ]


def json_file(document: Any) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"


def readme(export: Mapping[str, Any], sections: Sequence[str]) -> bytes:
    window = export["window"]
    anchor = export["checkpoint"]
    lines = [
        "# PrivateVault evidence bundle",
        "",
        f"Tenants: {', '.join(export['tenants'])}. Window: from {window['from']} (included) to"
        f" {window['to']} (excluded). Anchored to checkpoint {anchor['size']} of log {export['origin']}.",
        "",
        "## Verify it, offline",
        "",
        "    pvctl evidence verify BUNDLE.tar.gz --verifier-key '<ledger key>' --verifier-key '<evidence key>' \\",
        "        [--witness-key '<witness key>'] [--format json]",
        "",
        "The keys are the operator's published verifier keys (ConfigMap privatevault-ledger-checkpoint,",
        "keys `verifier-keys` and `evidence-keys`); obtain them from the operator's owners through a channel",
        "you trust, not from this bundle. The verifier needs no database, cluster or network. It checks:",
        "",
        "1. manifest.dsse.json: a DSSE envelope (in-toto Statement v1) signed by every evidence key given;",
        "   every file is a subject with its SHA-256, and no other file is present.",
        "2. checkpoint/anchor.note and latest.note: C2SP signed notes signed by every ledger key given and",
        "   cosigned by every witness given; consistency.json proves latest extends anchor (RFC 9162).",
        "3. every record: its hash from the previous hash and its canonical bytes, its RFC 9162 inclusion",
        "   proof at the anchor, its tenant, time window and action as its section says.",
        "4. every approval's signatures against the QuorumPolicy version in force (policies/), and every",
        "   quorum decision re-run with the same rules, approvals and requester.",
        "5. keys/metadata.json and compliance/results.json recomputed from the records.",
        "",
        "Standard tools agree: the manifest's Ed25519 signature verifies with any DSSE library",
        "(securesystemslib); the checkpoint with Go's golang.org/x/mod/sumdb/note; the proofs with",
        "golang.org/x/mod/sumdb/tlog (leaf = the record hash, as tlog.RecordHash hashes it).",
        "",
        "## Files",
        "",
        *[f"- {name}" for name in sections],
        "",
    ]
    return "\n".join(lines).encode()
