"""An evidence bundle is deterministic (built twice: same bytes; a golden digest), verifies offline
against the published keys, is read by standard tools (securesystemslib's DSSE, Go's sumdb/note
and sumdb/tlog), and every kind of tampering is caught with its own message."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import Key

from privatevault.errors import LedgerUnavailable
from privatevault.evidence import archive, keys, layout, manifest, verifier, writer
from privatevault.ledger import Event, ResourceRef, merkle
from privatevault.ledger.checkpoint import parse_verifier_key
from privatevault.quorum import dsse
from tests import evidence_scenario
from tests.evidence_scenario import Scenario, scenario

from .test_merkle import build_noteverify

#: The bundle of ``scenario()`` signed with Ed25519 only. A change here means the bytes of every
#: bundle changed: the layout, the archive's format or zlib's output. Last changed deliberately
#: when the gzip stream became independently compressed pieces (the sections compressed while
#: written: ``archive.Segment``); the tar stream inside stayed byte for byte the same.
GOLDEN = "sha256:f0633c11ec4abbe63c7025791eb22b458f2a7ae48df1f473d9da70a33109a3fa"


@pytest.fixture(scope="module")
def world() -> Scenario:
    return scenario()


def build(world: Scenario, tmp: Path, name: str = "bundle") -> Path:
    work, out = tmp / f"{name}-files", tmp / f"{name}.tar.gz"
    work.mkdir()
    world.build(work, out)
    return out


def check(world: Scenario, bundle: Path) -> verifier.Report:
    return verifier.verify(bundle, [parse_verifier_key(k) for k in world.verifier_keys], [world.witness.verifier])


def test_built_twice_the_same_bytes_and_the_golden_digest(world: Scenario, tmp_path: Path) -> None:
    first, second = build(world, tmp_path, "a"), build(world, tmp_path, "b")
    assert first.read_bytes() == second.read_bytes()
    assert "sha256:" + archive.sha256_file(first) == GOLDEN


def test_the_archive_is_normalised(world: Scenario, tmp_path: Path) -> None:
    bundle = build(world, tmp_path)
    data = bundle.read_bytes()
    assert data[3] == 0  # gzip FLG: no FNAME, no comment, no extra
    assert data[4:8] == b"\0\0\0\0"  # MTIME zero
    with tarfile.open(bundle) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode, m.type) for m in members} == {
        (0, 0, 0, "", "", 0o644, tarfile.REGTYPE)
    }


def test_a_genuine_bundle_verifies(world: Scenario, tmp_path: Path) -> None:
    report = check(world, build(world, tmp_path))
    assert report.ok, report.problem
    assert (report.approvals, report.decisions, report.checkpoint, report.latest) == (1, 1, 23, 24)
    # 9 of acme (one compliance-state), 2 policy versions, 2 approval records; 2 compliance-state before it.
    assert (report.records, report.boundaries, report.compliance_before) == (13, 2, 2)
    assert report.complete and report.unlinked == 0


def test_both_signatures_verify_and_each_key_is_required(tmp_path: Path) -> None:
    both = scenario(mldsa=True)
    bundle = build(both, tmp_path)
    report = check(both, bundle)
    assert report.ok, report.problem
    assert {k.split(":")[0] for k in report.manifest_keys} == {"ed25519", "ml-dsa-65"}


def test_securesystemslib_verifies_the_manifest(world: Scenario, tmp_path: Path) -> None:
    bundle = build(world, tmp_path)
    with tarfile.open(bundle) as tar:
        member = tar.extractfile(manifest.ENVELOPE)
        assert member is not None
        document = json.loads(member.read())
    _, public = world.evidence.pairs["Ed25519"]
    keyid = dsse.keyid("Ed25519", public)
    key = Key.from_dict(keyid, {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": public.hex()}})
    envelope = SslibEnvelope.from_dict(document)
    assert list(envelope.verify([key], 1)) == [keyid]
    statement = json.loads(envelope.payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert {s["name"] for s in statement["subject"]} == {n for n in _names(bundle) if n != manifest.ENVELOPE}


def _names(bundle: Path) -> list[str]:
    with tarfile.open(bundle) as tar:
        return tar.getnames()


def test_go_checks_the_checkpoint_the_cosignature_and_every_proof(world: Scenario, tmp_path: Path) -> None:
    go = build_noteverify()
    bundle = build(world, tmp_path)
    files = tmp_path / "x"
    files.mkdir()
    archive.unpack(bundle, files)
    anchor = (files / layout.ANCHOR).read_bytes()
    done = subprocess.run([str(go), "note", world.signer.verifier_key], input=anchor, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [str(go), "cosig", world.witness.verifier_key], input=anchor, capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr
    export = json.loads((files / layout.EXPORT).read_text())
    inclusion = []
    for section in ("audit/acme", layout.QUORUM, layout.POLICIES):
        for line in (files / layout.proofs_file(section)).read_bytes().splitlines():
            proof = layout.ProofLine.parse(line)
            inclusion.append(
                {
                    "index": proof.seq - 1,
                    "leaf": layout.b64(proof.record_hash),
                    "proof": [layout.b64(p) for p in proof.proof],
                }
            )
    consistency = json.loads((files / layout.CONSISTENCY).read_text())
    request = {
        "size": export["latest"]["size"],
        "root": export["latest"]["root"],
        "inclusion": [],
        "consistency": [
            {
                "old_size": consistency["oldSize"],
                "old_root": export["checkpoint"]["root"],
                "proof": consistency["proof"],
            }
        ],
    }
    anchored = {
        "size": export["checkpoint"]["size"],
        "root": export["checkpoint"]["root"],
        "inclusion": inclusion,
        "consistency": [],
    }
    for payload in (request, anchored):
        done = subprocess.run([str(go), "merkle"], input=json.dumps(payload).encode(), capture_output=True, check=False)
        assert done.returncode == 0, done.stderr


# -- tampering ---------------------------------------------------------------------------------


def _retamper(world: Scenario, bundle: Path, tmp: Path, change: Callable[[Path], None], *, resign: bool) -> Path:
    """Unpack, change, repack; ``resign``: the manifest signed again with the genuine evidence key
    (a dishonest exporter holding the key), so the checks below the manifest are what catch it."""
    files = tmp / "t"
    files.mkdir()
    archive.unpack(bundle, files)
    change(files)
    if resign:
        export = json.loads((files / layout.EXPORT).read_text())
        digests = {
            str(p.relative_to(files)): archive.sha256_file(p)
            for p in sorted(files.rglob("*"))
            if p.is_file() and p.name != manifest.ENVELOPE
        }
        (files / manifest.ENVELOPE).write_bytes(world.sign(manifest.statement(digests, export)))
    out = tmp / "tampered.tar.gz"
    with out.open("wb") as sink:
        archive.write(sink, [(str(p.relative_to(files)), p) for p in files.rglob("*") if p.is_file()])
    return out


FILES = [
    "README.md",
    "audit/acme/proofs.jsonl",
    "audit/acme/records.jsonl",
    "audit/acme/boundaries/proofs.jsonl",
    "audit/acme/boundaries/records.jsonl",
    "compliance/before/proofs.jsonl",
    "compliance/before/records.jsonl",
    layout.ANCHOR,
    layout.CONSISTENCY,
    layout.LATEST,
    layout.COMPLIANCE,
    layout.EXPORT,
    layout.KEYS,
    "policies/proofs.jsonl",
    "policies/records.jsonl",
    "quorum/proofs.jsonl",
    "quorum/records.jsonl",
]


@pytest.mark.parametrize("name", FILES)
def test_any_file_changed_is_named(world: Scenario, tmp_path: Path, name: str) -> None:
    def change(files: Path) -> None:
        path = files / name
        path.write_bytes(path.read_bytes() + b" ")

    report = check(world, _retamper(world, build(world, tmp_path), tmp_path, change, resign=False))
    assert report.problem is not None
    assert (report.problem.check, report.problem.where) == ("digest", name)
    assert "differs from the one in the signed manifest" in str(report.problem)


def test_a_file_added_or_removed_is_named(world: Scenario, tmp_path: Path) -> None:
    bundle = build(world, tmp_path)
    added = check(world, _retamper(world, bundle, tmp_path, lambda f: (f / "extra.txt").write_text("x"), resign=False))
    assert added.problem is not None and "not in the signed manifest" in str(added.problem)
    shutil.rmtree(tmp_path / "t")
    removed = check(world, _retamper(world, bundle, tmp_path, lambda f: (f / layout.KEYS).unlink(), resign=False))
    assert removed.problem is not None and "missing from the bundle" in str(removed.problem)


def _edit_lines(path: Path, edit: Callable[[list[bytes]], list[bytes]]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in edit(path.read_bytes().splitlines())))


def test_a_record_changed_is_caught_by_its_hash(world: Scenario, tmp_path: Path) -> None:
    def change(files: Path) -> None:
        _edit_lines(
            files / "audit/acme/records.jsonl", lambda lines: [lines[0].replace(b"acme-10", b"acme-XX"), *lines[1:]]
        )

    report = check(world, _retamper(world, build(world, tmp_path), tmp_path, change, resign=True))
    assert report.problem is not None and report.problem.check == "record-hash"
    assert "do not hash to its record hash" in str(report.problem)


def test_a_record_of_another_tenant_slipped_in(world: Scenario, tmp_path: Path) -> None:
    other = next(r for r in world.ledger.rows if b'"tenant":"globex"' in r.canonical)
    proof = layout.ProofLine(
        other.seq, other.prev_hash, other.record_hash, tuple(merkle.inclusion_proof(other.seq - 1, 23, world.ledger))
    )

    def change(files: Path) -> None:
        def insert(lines: list[bytes]) -> list[bytes]:
            return sorted([*lines, other.canonical], key=lambda line: json.loads(line)["seq"])

        def insert_proof(lines: list[bytes]) -> list[bytes]:
            return sorted([*lines, proof.to_bytes().rstrip(b"\n")], key=lambda line: json.loads(line)["seq"])

        _edit_lines(files / "audit/acme/records.jsonl", insert)
        _edit_lines(files / "audit/acme/proofs.jsonl", insert_proof)

    report = check(world, _retamper(world, build(world, tmp_path), tmp_path, change, resign=True))
    assert report.problem is not None and report.problem.check == "section"
    assert f"record {other.seq} is of tenant 'globex', not 'acme'" in str(report.problem)


def test_a_proof_swapped_is_caught(world: Scenario, tmp_path: Path) -> None:
    def change(files: Path) -> None:
        def swap(lines: list[bytes]) -> list[bytes]:
            a, b = json.loads(lines[0]), json.loads(lines[1])
            a["proof"], b["proof"] = b["proof"], a["proof"]
            return [json.dumps(a).encode(), json.dumps(b).encode(), *lines[2:]]

        _edit_lines(files / "audit/acme/proofs.jsonl", swap)

    report = check(world, _retamper(world, build(world, tmp_path), tmp_path, change, resign=True))
    assert report.problem is not None and report.problem.check == "inclusion"
    assert "inclusion proof does not lead to the root of anchor checkpoint 23" in str(report.problem)


def test_a_manifest_signed_by_an_unknown_key_is_refused(world: Scenario, tmp_path: Path) -> None:
    stranger = keys.generate(world.evidence.name).only("Ed25519")

    def change(files: Path) -> None:
        payload = dsse.parse(json.loads((files / manifest.ENVELOPE).read_bytes())).payload
        (files / manifest.ENVELOPE).write_bytes(manifest.envelope_bytes(dsse.sign(payload, stranger.pairs)))

    report = check(world, _retamper(world, build(world, tmp_path), tmp_path, change, resign=False))
    assert report.problem is not None and report.problem.check == "manifest-signature"
    assert "signed only by unknown keys" in str(report.problem)


def test_a_manifest_signature_that_fails_is_named(world: Scenario, tmp_path: Path) -> None:
    def change(files: Path) -> None:
        document = json.loads((files / manifest.ENVELOPE).read_bytes())
        sig = bytearray(base64.b64decode(document["signatures"][0]["sig"]))
        sig[0] ^= 1
        document["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
        (files / manifest.ENVELOPE).write_text(json.dumps(document))

    report = check(world, _retamper(world, build(world, tmp_path), tmp_path, change, resign=False))
    assert report.problem is not None and "the Ed25519 signature by" in str(report.problem)


def test_a_checkpoint_not_signed_by_the_ledger_key(world: Scenario, tmp_path: Path) -> None:
    def change(files: Path) -> None:
        note = (files / layout.ANCHOR).read_bytes()
        (files / layout.ANCHOR).write_bytes(note.replace(b"\n23\n", b"\n24\n", 1))

    report = check(world, _retamper(world, build(world, tmp_path), tmp_path, change, resign=True))
    assert report.problem is not None and (report.problem.check, report.problem.where) == ("checkpoint", layout.ANCHOR)
    assert "does not verify" in str(report.problem)


def test_a_missing_witness_cosignature(world: Scenario, tmp_path: Path) -> None:
    def change(files: Path) -> None:
        note = (files / layout.LATEST).read_bytes()
        (files / layout.LATEST).write_bytes(
            b"\n".join(line for line in note.split(b"\n") if b"witness.test" not in line)
        )

    report = check(world, _retamper(world, build(world, tmp_path), tmp_path, change, resign=True))
    assert report.problem is not None and report.problem.where == layout.LATEST
    assert "not signed by witness.test/w1" in str(report.problem)


def test_a_consistency_proof_changed(world: Scenario, tmp_path: Path) -> None:
    def change(files: Path) -> None:
        document = json.loads((files / layout.CONSISTENCY).read_text())
        document["proof"] = [layout.b64(bytes(32)), *document["proof"][1:]]
        (files / layout.CONSISTENCY).write_text(json.dumps(document))

    report = check(world, _retamper(world, build(world, tmp_path), tmp_path, change, resign=True))
    assert report.problem is not None and report.problem.check == "consistency"
    assert "does not prove that checkpoint 24 extends the anchor checkpoint 23" in str(report.problem)


def test_the_compliance_states_at_the_window_start_and_end(world: Scenario, tmp_path: Path) -> None:
    report = check(world, build(world, tmp_path))
    assert report.ok, report.problem
    assert [(c["framework"], c["start"], c["end"], c["changes"]) for c in report.compliance] == [
        ("baseline", {"seq": 4, "score": 33}, {"seq": 18, "score": 100, "failing": []}, 1),
        ("nist", {"seq": 5, "score": 100}, {"seq": 5, "score": 100, "failing": []}, 0),
    ]


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (
            lambda d: d.update(score=90),
            "compliance-state record 18: score 90 (12/12) does not recompute from its controls: they give 100 (12/12)",
        ),
        (
            lambda d: d.update(previous=2),
            "compliance-state record 18: names 2 as its previous record, but the previous record of framework"
            " baseline and tenant acme is 4",
        ),
        (
            lambda d: d.update(changed=[]),
            "compliance-state record 18: control ac-2 went from fail to pass, but changed does not list it",
        ),
    ],
)
def test_a_compliance_record_that_does_not_follow_is_named(
    tmp_path: Path, tamper: Callable[[dict[str, object]], None], message: str
) -> None:
    # The writer put the bad record in the ledger itself: its hash and proof are genuine.
    world = scenario(compliance=tamper)
    report = check(world, build(world, tmp_path))
    assert report.problem is not None
    assert (report.problem.check, report.problem.where, report.problem.seq) == (
        "compliance",
        "audit/acme/records.jsonl",
        18,
    )
    assert message in str(report.problem)


def test_a_bundle_of_the_previous_layout_verifies(tmp_path: Path) -> None:
    # Built before the slot was filled: no compliance/before section, results.json {"results": []}.
    world = scenario(compliance=None, compliance_records=False)

    def change(files: Path) -> None:
        shutil.rmtree(files / layout.COMPLIANCE_BEFORE)
        (files / layout.COMPLIANCE).write_text(json.dumps({"results": []}))
        export = json.loads((files / layout.EXPORT).read_text())
        del export["counts"]["complianceBefore"]
        (files / layout.EXPORT).write_text(json.dumps(export))

    report = check(world, _retamper(world, build(world, tmp_path), tmp_path, change, resign=True))
    assert report.ok, report.problem
    assert report.compliance == [] and report.compliance_before == 0


def test_the_compliance_record_before_the_window_dropped(world: Scenario, tmp_path: Path) -> None:
    def change(files: Path) -> None:
        for name in ("compliance/before/records.jsonl", "compliance/before/proofs.jsonl"):
            _edit_lines(files / name, lambda lines: lines[1:])
        export = json.loads((files / layout.EXPORT).read_text())
        export["counts"]["complianceBefore"] = 1
        (files / layout.EXPORT).write_text(json.dumps(export))

    report = check(world, _retamper(world, build(world, tmp_path), tmp_path, change, resign=True))
    assert report.problem is not None and report.problem.check == "compliance"
    assert "record 18: follows record 4, which is not among the records given" in str(report.problem)


def _no_keys(document: dict[str, Any]) -> None:
    document["keys"] = []


def _better_score(document: dict[str, Any]) -> None:
    document["summary"][0]["start"]["score"] = 100


@pytest.mark.parametrize(("name", "edit"), [(layout.KEYS, _no_keys), (layout.COMPLIANCE, _better_score)])
def test_a_derived_file_changed_and_resigned(
    world: Scenario, tmp_path: Path, name: str, edit: Callable[[dict[str, Any]], None]
) -> None:
    def change(files: Path) -> None:
        document = json.loads((files / name).read_text())
        edit(document)
        (files / name).write_text(json.dumps(document))

    report = check(world, _retamper(world, build(world, tmp_path), tmp_path, change, resign=True))
    assert report.problem is not None and (report.problem.check, report.problem.where) == ("derived", name)


def test_an_approval_signed_by_a_key_the_policy_does_not_hold(tmp_path: Path) -> None:
    world = scenario()
    rows = world.ledger.rows
    index = next(i for i, r in enumerate(rows) if b'"record-approval"' in r.canonical)
    forged = json.loads(rows[index].canonical)
    stranger = evidence_scenario.ed25519_pair("mallory")
    payload = dsse.parse(forged["details"]["envelope"]).payload
    forged["details"]["envelope"] = dsse.sign(payload, {"Ed25519": stranger}).to_json()
    _rewrite(world, index, forged)
    report = check(world, build(world, tmp_path))
    assert report.problem is not None and report.problem.check == "approval-signature"
    assert "no signature of alice's approval verifies" in str(report.problem)


def test_a_decision_the_approvals_do_not_support(tmp_path: Path) -> None:
    world = scenario()
    rows = world.ledger.rows
    index = next(i for i, r in enumerate(rows) if b'"quorum-decision"' in r.canonical)
    forged = json.loads(rows[index].canonical)
    forged["details"]["approvals"] = []
    _rewrite(world, index, forged)
    report = check(world, build(world, tmp_path))
    assert report.problem is not None and report.problem.check == "decision"
    assert "re-running the decision gives Pending" in str(report.problem)


def _rewrite(world: Scenario, index: int, body: dict[str, object]) -> None:
    """The ledger as an insider would rewrite it: the record replaced, every hash and checkpoint redone."""
    old = world.ledger
    fresh = type(old)()
    for i, record in enumerate(old.rows):
        document = body if i == index else json.loads(record.canonical)
        seq = len(fresh.rows) + 1
        assert document["seq"] == seq
        time = datetime.fromisoformat(str(document["time"]).replace("Z", "+00:00"))
        event = Event(
            tenant=str(document["tenant"]),
            actor=str(document["actor"]),
            action=str(document["action"]),
            resource=ResourceRef(**document["resource"]),  # type: ignore[arg-type]
            outcome=str(document["outcome"]),
            idempotency_key=str(document["idempotencyKey"]),
            details=dict(document["details"]),  # type: ignore[call-overload]
        )
        fresh.append(event, time)
        if any(head.size == seq for head in old.heads):
            fresh.sign([world.signer], evidence_scenario.ORIGIN, [world.witness])
    world.ledger = fresh


def test_data_hidden_after_the_last_entry_is_refused(world: Scenario, tmp_path: Path) -> None:
    bundle = build(world, tmp_path)
    hidden = tmp_path / "hidden.tar.gz"
    hidden.write_bytes(gzip.compress(gzip.decompress(bundle.read_bytes()) + b"smuggled" + bytes(504), mtime=0))
    report = check(world, hidden)
    assert report.problem is not None and report.problem.check == "archive"
    assert "holds data after its last entry" in str(report.problem)


def _drop(files: Path, section: str, pick: Callable[[list[bytes]], int]) -> int:
    """Drop one record (and its proof) from a section, and its count from export.json; its seq."""
    records = (files / layout.records_file(section)).read_bytes().splitlines()
    index = pick(records)
    seq = int(json.loads(records[index])["seq"])
    for name in (layout.records_file(section), layout.proofs_file(section)):
        _edit_lines(files / name, lambda lines: lines[:index] + lines[index + 1 :])
    export = json.loads((files / layout.EXPORT).read_text())
    export["counts"]["audit"]["acme"] -= 1
    (files / layout.EXPORT).write_bytes(layout.json_file(export))
    return seq


@pytest.mark.parametrize(
    ("pick", "message"),
    [
        (lambda lines: len(lines) // 2, "record(s) of acme missing between records"),
        (lambda lines: len(lines) - 1, "record(s) of acme missing at the end of the window"),
        (lambda lines: 0, "record(s) of acme missing at the start of the window"),
    ],
    ids=["middle", "end", "start"],
)
def test_a_record_dropped_from_the_window_is_caught(
    world: Scenario, tmp_path: Path, pick: Callable[[list[bytes]], int], message: str
) -> None:
    dropped: list[int] = []
    bundle = _retamper(
        world, build(world, tmp_path), tmp_path, lambda f: dropped.append(_drop(f, "audit/acme", pick)), resign=True
    )
    report = check(world, bundle)
    assert report.problem is not None and report.problem.check == "completeness", report.problem
    assert message in str(report.problem)


def test_a_boundary_dropped_is_caught(world: Scenario, tmp_path: Path) -> None:
    def change(files: Path) -> None:
        for name in (layout.records_file("audit/acme/boundaries"), layout.proofs_file("audit/acme/boundaries")):
            _edit_lines(files / name, lambda lines: lines[:1])

    report = check(world, _retamper(world, build(world, tmp_path), tmp_path, change, resign=True))
    assert report.problem is not None and report.problem.check == "completeness"
    assert "no record of acme after the window" in str(report.problem)


def test_the_witnesses_cosign_the_published_checkpoint_the_bundle_reaches(tmp_path: Path) -> None:
    """The database keeps the log's own notes; the published one carries the cosignatures."""
    world = scenario()
    bare = [type(h)(h.size, h.root, h.note[: h.note.index("\u2014 witness".encode())]) for h in world.ledger.heads]
    published = world.ledger.heads[-1].note
    world.ledger.heads = bare
    work = tmp_path / "w"
    work.mkdir()
    built = writer.build(
        world.ledger, world.request(), work, sign=world.sign, verifiers=[world.signer.verifier], latest_note=published
    )
    with (tmp_path / "b.tar.gz").open("wb") as out:
        writer.pack(built, out)
    report = check(world, tmp_path / "b.tar.gz")
    assert report.ok, report.problem
    assert (
        b"witness.test" in (work / layout.LATEST).read_bytes()
        and b"witness.test" not in (work / layout.ANCHOR).read_bytes()
    )


def test_a_read_failing_mid_section_is_raised_and_its_threads_end(world: Scenario, tmp_path: Path) -> None:
    """The reading threads hand the failure to the writer, which raises it and leaves no thread behind."""

    def failing() -> Iterator[writer.Row]:
        rows = world.ledger.tenant_records("acme", evidence_scenario.START, evidence_scenario.END)
        yield next(rows)
        raise LedgerUnavailable("the audit ledger cannot be read: connection lost")

    before = threading.active_count()
    size = world.ledger.heads[-1].size
    with pytest.raises(LedgerUnavailable, match="connection lost"):
        writer.write_section(world.ledger, failing(), size, tmp_path / "r.jsonl", tmp_path / "p.jsonl")
    assert threading.active_count() == before
