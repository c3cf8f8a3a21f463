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
    compliance/before/records.jsonl, …/proofs.jsonl   per tenant and framework, the last
                                  compliance-state record before the window (its state at the start)
    compliance/results.json       the compliance records in the window, those before it, and each
                                  framework and tenant's state at the window's start and end
    export.json                   what was asked and what was found: the manifest's predicate
    README.md                     for the auditor
    manifest.dsse.json            the signed in-toto Statement over all of the above

``keys/metadata.json`` and ``compliance/results.json`` are derived from the records
(:func:`key_metadata`, :func:`compliance_document`), so the verifier recomputes them; it also folds
the compliance-state records (``compliance.history``): each one follows the previous of its
framework and tenant, and its score recomputes from its controls.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from privatevault.compliance import history

QUORUM_ACTIONS: Final = ("quorum-decision", "record-approval")
POLICY_ACTIONS: Final = ("protectionpolicy-in-force", "quorumpolicy-in-force")

ANCHOR: Final = "checkpoint/anchor.note"
LATEST: Final = "checkpoint/latest.note"
CONSISTENCY: Final = "checkpoint/consistency.json"
KEYS: Final = "keys/metadata.json"
COMPLIANCE: Final = "compliance/results.json"
#: The section of the last compliance-state record before the window, per tenant and framework.
COMPLIANCE_BEFORE: Final = "compliance/before"
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


def compliance_document(
    results: Sequence[Mapping[str, Any]], before: Iterable[Mapping[str, Any]]
) -> tuple[dict[str, Any], list[history.Problem]]:
    """``compliance/results.json`` and what did not verify.

    The document holds the window's compliance records (``results``, as :func:`compliance_results`
    gives them), the last compliance-state record before the window per tenant and framework
    (``before``), and per framework and tenant what the fold of the two gives: the state at the
    window's start (the record before it, if any) and at its end (scores, and the failing controls
    at the end). The problems are the compliance-state records that do not follow the previous one
    of their framework and tenant or whose score does not recompute (left out of the summary).
    """
    earlier = compliance_results(before)
    starts = {int(r["seq"]) for r in earlier}
    states = [r for r in sorted([*earlier, *results], key=lambda r: int(r["seq"])) if r["action"] == history.ACTION]
    folded = history.fold(states, starts=starts)
    summary = []
    for key, end in sorted(folded.latest().items(), key=lambda item: (item[1].framework, item[1].tenant)):
        timeline = folded.timelines[key]
        first = timeline[0] if timeline[0].seq in starts else None
        summary.append(
            {
                "framework": end.framework,
                "frameworkUid": end.framework_uid,
                "tenant": end.tenant,
                "start": None if first is None else {"seq": first.seq, "score": first.score},
                "end": {"seq": end.seq, "score": end.score, "failing": end.failing()},
                "changes": sum(1 for state in timeline if state.seq not in starts),
            }
        )
    return {"before": earlier, "results": list(results), "summary": summary}, folded.problems


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
        "5. every compliance-state record (the window's, and per tenant and framework the last one before",
        "   it, in compliance/before/) follows the previous record of its framework and tenant, and its",
        '   score recomputes from its controls (see "Compliance" below).',
        "6. keys/metadata.json and compliance/results.json recomputed from the records.",
        "",
        "## Compliance",
        "",
        "The operator records a compliance-state record whenever a ComplianceFramework's evaluation of a",
        "tenant changes a control's state or the score. Each holds every control's state, severity and",
        "weight, the score, the seq of the previous record of the same framework and tenant (`previous`)",
        "and the controls that changed (`changed`: from, to, the checks' findings). Recompute by hand:",
        "",
        "- w(c) = weight x S(severity), S = Low 1, Medium 2, High 4, Critical 8; over the controls in",
        "  state pass, fail or unknown: possible = sum of w(c), earned = sum of w(c) of those passing,",
        "  score = floor(100 x earned / possible), none when possible is 0 (not-applicable and excepted",
        "  controls do not count);",
        "- a record's controls are the previous record's with `changed` applied, each `from` being the",
        "  previous state (null: a control added; a `to` of null: removed, both only with a new",
        "  `generation`, a spec change of the framework).",
        "",
        "compliance/results.json lists those records (`before`, `results`) and, per framework and tenant,",
        "the state at the window's start (the record before it) and at its end (`summary`). A framework",
        "with no record in the window kept, as far as the bundle shows, the state its record before the",
        "window gives; that this record is the last one before the window is what the exporter read",
        "(a later one would be named as `previous` by the window's first record).",
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
