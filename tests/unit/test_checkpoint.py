"""Checkpoints are C2SP signed notes that Go's sumdb/note accepts, and any tampering is refused."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey
from pqcrypto.sign import ml_dsa_65

from privatevault.ledger.checkpoint import (
    MLDSA65_TYPE,
    Checkpoint,
    CheckpointError,
    KeyVerifier,
    LocalSigner,
    ed25519_verifier_key,
    mldsa65_verifier_key,
    parse_and_verify,
    parse_verifier_key,
    sign_checkpoint,
)

from .test_merkle import build_noteverify

ORIGIN = "privatevault.example/ledger"
ROOT = hashlib.sha256(b"some tree").digest()
ROOT64 = base64.b64encode(ROOT)
ED = LocalSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
PQ = LocalSigner(ORIGIN, MLDSA65PrivateKey.from_seed_bytes(bytes(range(32, 64))))
OTHER = LocalSigner("witness.example/w1", Ed25519PrivateKey.from_private_bytes(bytes(32)))
BOTH = [ED.verifier, PQ.verifier]


def note(size: int = 20852163, *, signers: tuple[LocalSigner, ...] = (ED, PQ)) -> bytes:
    return sign_checkpoint(ORIGIN, size, ROOT, signers)


def body_and_lines(signed: bytes) -> tuple[bytes, list[bytes]]:
    body, _, sigs = signed.rpartition(b"\n\n")
    return body + b"\n", sigs.splitlines(keepends=True)


def resign_body(signed: bytes, old: bytes, new: bytes) -> bytes:
    """The same signature lines over a changed text."""
    body, lines = body_and_lines(signed)
    return body.replace(old, new, 1) + b"\n" + b"".join(lines)


# -- format -----------------------------------------------------------------------------------


def test_note_is_checkpoint_body_blank_line_and_em_dash_signature_lines() -> None:
    signed = note()
    assert signed.startswith(f"{ORIGIN}\n20852163\n".encode() + ROOT64 + b"\n\n\xe2\x80\x94 " + ORIGIN.encode() + b" ")
    _, lines = body_and_lines(signed)
    assert len(lines) == 2
    for line, signer in zip(lines, (ED, PQ), strict=True):
        assert line.startswith("\u2014 ".encode() + ORIGIN.encode() + b" ") and line.endswith(b"\n")
        blob = base64.b64decode(line.split(b" ")[2])
        assert int.from_bytes(blob[:4], "big") == signer.key_id
    assert len(base64.b64decode(lines[0].split(b" ")[2])) == 4 + 64
    assert len(base64.b64decode(lines[1].split(b" ")[2])) == 4 + 3309


def test_key_ids_and_verifier_keys_follow_the_signed_note_spec() -> None:
    ed_public = ED.verifier.public_key
    ed_id = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + ed_public).digest()[:4]
    assert ED.key_id == int.from_bytes(ed_id, "big")
    encoded = base64.b64encode(b"\x01" + ed_public).decode()
    assert ED.verifier_key == f"{ORIGIN}+{ed_id.hex()}+{encoded}"
    assert ed25519_verifier_key(ORIGIN, ed_public) == ED.verifier_key

    pq_public = PQ.verifier.public_key
    assert MLDSA65_TYPE == b"\xffprivatevault.io/ml-dsa-65\n"
    pq_id = hashlib.sha256(ORIGIN.encode() + b"\n" + MLDSA65_TYPE + pq_public).digest()[:4]
    assert PQ.key_id == int.from_bytes(pq_id, "big")
    assert mldsa65_verifier_key(ORIGIN, pq_public) == PQ.verifier_key
    assert PQ.verifier_key.startswith(f"{ORIGIN}+{pq_id.hex()}+/3By")  # base64 of 0xff "pr"…


def test_verifier_keys_round_trip() -> None:
    for signer in (ED, PQ):
        assert parse_verifier_key(signer.verifier_key) == signer.verifier


ZERO_ED25519 = base64.b64encode(b"\x01" + bytes(32)).decode()
UNKNOWN_TYPE = base64.b64encode(b"\x09" + bytes(32)).decode()


@pytest.mark.parametrize(
    "vkey",
    [
        "no-plus-signs",
        f"{ORIGIN}+0x123456+AQ==",  # Python's int() would take this; Go's ParseUint does not
        f"{ORIGIN}+1234567+{ZERO_ED25519}",
        ED.verifier_key.replace(f"+{ED.key_id:08x}+", f"+{ED.key_id ^ 1:08x}+"),
        f"{ORIGIN}+00000000+{UNKNOWN_TYPE}",
        f"bad name+{ED.key_id:08x}+{ED.verifier_key.rsplit('+', 1)[1]}",
        ED.verifier_key[:-4],
    ],
)
def test_bad_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(CheckpointError):
        parse_verifier_key(vkey)


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("signers", [(ED,), (PQ,), (ED, PQ), (PQ, ED, OTHER)])
def test_round_trip(signers: tuple[LocalSigner, ...]) -> None:
    signed = note(signers=signers)
    verifiers = [signer.verifier for signer in signers]
    assert parse_and_verify(signed, verifiers, origin=ORIGIN) == Checkpoint(ORIGIN, 20852163, ROOT)


@pytest.mark.parametrize("size", [0, 1, 2**63 - 1])
def test_sizes_at_the_edges_round_trip(size: int) -> None:
    assert parse_and_verify(note(size), BOTH).size == size


def test_extension_lines_round_trip() -> None:
    signed = sign_checkpoint(ORIGIN, 7, ROOT, [ED], extensions=["one extension", "another"])
    assert parse_and_verify(signed, [ED.verifier]).extensions == ("one extension", "another")


def test_signatures_by_unknown_keys_are_ignored() -> None:
    assert parse_and_verify(note(signers=(OTHER, ED, PQ)), BOTH).size == 20852163
    assert parse_and_verify(note(), [ED.verifier]).size == 20852163  # the ML-DSA line is unknown here


def test_ml_dsa_signature_verifies_with_an_independent_implementation() -> None:
    body, lines = body_and_lines(note())
    blob = base64.b64decode(lines[1].split(b" ")[2])
    assert ml_dsa_65.verify(PQ.verifier.public_key, body, blob[4:]) is None  # raises when invalid


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"20852163", b"20852164"),
        (b"20852163", b"2085216"),
        (ORIGIN.encode(), b"privatevault.example/other"),
        (base64.b64encode(ROOT), base64.b64encode(hashlib.sha256(b"other tree").digest())),
        (b"\n", b"\nextension\n"),
    ],
)
def test_changed_text_is_refused(old: bytes, new: bytes) -> None:
    for verifiers in ([ED.verifier], [PQ.verifier], BOTH):
        with pytest.raises(CheckpointError, match="does not verify"):
            parse_and_verify(resign_body(note(), old, new), verifiers)


@pytest.mark.parametrize("line", [0, 1])
def test_corrupt_signature_is_refused(line: int) -> None:
    body, lines = body_and_lines(note())
    blob = bytearray(base64.b64decode(lines[line].split(b" ")[2]))
    blob[10] ^= 1
    lines[line] = b" ".join(lines[line].split(b" ")[:2]) + b" " + base64.b64encode(bytes(blob)) + b"\n"
    with pytest.raises(CheckpointError, match="does not verify"):
        parse_and_verify(body + b"\n" + b"".join(lines), BOTH)


def test_a_missing_required_signature_is_refused() -> None:
    with pytest.raises(CheckpointError, match=r"not signed by .*" + f"{PQ.key_id:08x}"):
        parse_and_verify(note(signers=(ED,)), BOTH)


def test_only_unknown_signatures_is_refused() -> None:
    with pytest.raises(CheckpointError, match="not signed by"):
        parse_and_verify(note(signers=(OTHER,)), BOTH)


def test_a_changed_key_id_makes_the_signature_unknown() -> None:
    body, lines = body_and_lines(note(signers=(ED,)))
    blob = bytearray(base64.b64decode(lines[0].split(b" ")[2]))
    blob[0] ^= 1
    forged = body + b"\n" + lines[0].rsplit(b" ", 1)[0] + b" " + base64.b64encode(bytes(blob)) + b"\n"
    with pytest.raises(CheckpointError, match="not signed by"):
        parse_and_verify(forged, [ED.verifier])


def test_no_verifiers_trust_nothing() -> None:
    with pytest.raises(CheckpointError, match="no verifier keys"):
        parse_and_verify(note(), [])


def test_wrong_origin_is_refused() -> None:
    with pytest.raises(CheckpointError, match="not 'elsewhere'"):
        parse_and_verify(note(), BOTH, origin="elsewhere")


def _ed_note(body: bytes) -> bytes:
    """A genuinely signed note over any text, to reach the body checks."""
    blob = ED.key_id.to_bytes(4, "big") + ED.sign(body)
    return body + b"\n\xe2\x80\x94 " + ORIGIN.encode() + b" " + base64.b64encode(blob) + b"\n"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"origin\n007\n" + ROOT64 + b"\n", "leading zeros"),
        (b"origin\n00\n" + ROOT64 + b"\n", "leading zeros"),
        (b"origin\n+7\n" + ROOT64 + b"\n", "leading zeros"),
        (b"origin\n-1\n" + ROOT64 + b"\n", "leading zeros"),
        (b"origin\n 7\n" + ROOT64 + b"\n", "leading zeros"),
        (b"origin\n1_000\n" + ROOT64 + b"\n", "leading zeros"),
        ("origin\n\u0663\n".encode() + ROOT64 + b"\n", "leading zeros"),  # an Arabic-Indic digit
        (b"origin\n9223372036854775808\n" + ROOT64 + b"\n", "leading zeros"),  # 2^63
        (b"origin\n7\n" + base64.b64encode(ROOT[:31]) + b"\n", "31 bytes"),
        (b"origin\n7\n" + ROOT64[:-1] + b"\n", "not valid standard base64"),
        (b"origin\n7\n" + ROOT64.replace(b"=", b"") + b"\n", "not valid standard base64"),
        (b"origin\n7\n" + base64.urlsafe_b64encode(b"\xff" * 32) + b"\n", "not valid standard base64"),
        (b"origin\n7\n", "three non-empty lines"),
        (b"\n7\n" + ROOT64 + b"\n", "three non-empty lines"),
    ],
)
def test_malformed_bodies_are_refused(body: bytes, problem: str) -> None:
    with pytest.raises(CheckpointError, match=problem):
        parse_and_verify(_ed_note(body), [ED.verifier])


def test_non_canonical_base64_is_refused() -> None:
    # 32 bytes are 43 base64 digits and "=": the last digit's two low bits are padding, which
    # decoders drop, so flipping one spells the same root another way.
    body = b"origin\n7\n" + ROOT64 + b"\n"
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(ROOT64[-2])
    respelt = ROOT64[:-2] + alphabet[last ^ 1 : (last ^ 1) + 1] + b"="
    assert base64.b64decode(respelt) == ROOT
    with pytest.raises(CheckpointError, match="not canonical"):
        parse_and_verify(_ed_note(body.replace(ROOT64, respelt)), [ED.verifier])


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda n: n.replace(b"\n\n", b"\n"), "blank line"),
        (lambda n: n[:-1], "does not end with a newline"),
        (lambda n: n + b"\n", "signature block is empty"),
        (lambda n: n.replace("\u2014 ".encode(), b"- "), "does not start with an em dash"),
        (lambda n: n.replace("\u2014 ".encode(), "\u2014".encode()), "does not start with an em dash"),
        (lambda n: n.replace(b"\x94 privatevault.example", b"\x94 privatevault+example"), "invalid key"),
        (lambda n: n.replace(b"\n\n", b"\n\t\n"), "control character"),
        (lambda n: n.replace(b"20852163", b"2085\xff163"), "UTF-8"),
        (lambda n: n.rstrip(b"\n") + b"!\n", "not valid standard base64"),
        (lambda n: n.replace(b"\n\n", b"\n\n\xe2\x80\x94 x AAAA\n"), "too short"),
        (lambda n: n.replace(b"\n\n", b"\n\n\xe2\x80\x94 x \n"), "empty"),
        (lambda n: n.replace(b"\n\n", b"\n\n" + b"\xe2\x80\x94 x AAAAAAA=\n" * 100), "more than 100"),
    ],
)
def test_malformed_notes_are_refused(mutate: object, problem: str) -> None:
    assert callable(mutate)
    with pytest.raises(CheckpointError, match=problem):
        parse_and_verify(mutate(note()), BOTH)


@pytest.mark.parametrize(
    ("origin", "size", "root", "signers"),
    [
        ("", 1, ROOT, [ED]),
        ("two\nlines", 1, ROOT, [ED]),
        (ORIGIN, -1, ROOT, [ED]),
        (ORIGIN, 2**63, ROOT, [ED]),
        (ORIGIN, 1, ROOT[:31], [ED]),
        (ORIGIN, 1, ROOT, []),
    ],
)
def test_signing_refuses_what_cannot_be_a_checkpoint(
    origin: str, size: int, root: bytes, signers: list[LocalSigner]
) -> None:
    with pytest.raises(CheckpointError):
        sign_checkpoint(origin, size, root, signers)


def test_key_names_with_spaces_or_plus_are_refused() -> None:
    for name in ("has space", "has+plus", "", "nbsp\u00a0inside"):
        with pytest.raises(CheckpointError, match="key name"):
            KeyVerifier(name, ED.verifier.algorithm, ED.verifier.public_key)


# -- Go's golang.org/x/mod/sumdb/note agrees --------------------------------------------------


@pytest.fixture(scope="session")
def noteverify() -> Path:
    return build_noteverify()


def go_open(binary: Path, signed: bytes, *vkeys: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(binary), "note", *vkeys], input=signed, capture_output=True, check=False, timeout=60)


def test_go_opens_a_genuine_checkpoint_and_ignores_the_ml_dsa_line(noteverify: Path) -> None:
    signed = note()
    done = go_open(noteverify, signed, ED.verifier_key)
    assert done.returncode == 0, done.stderr
    assert done.stdout == body_and_lines(signed)[0]
    assert b"1 signature(s) verified, 1 from unknown keys ignored" in done.stderr


def test_go_opens_a_checkpoint_with_extensions(noteverify: Path) -> None:
    signed = sign_checkpoint(ORIGIN, 0, ROOT, [PQ, ED], extensions=["x"])
    done = go_open(noteverify, signed, ED.verifier_key)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("old", "new"),
    [(b"20852163", b"20852164"), (ORIGIN.encode() + b"\n", b"evil.example/log\n")],
)
def test_go_refuses_a_tampered_checkpoint(noteverify: Path, old: bytes, new: bytes) -> None:
    done = go_open(noteverify, resign_body(note(), old, new), ED.verifier_key)
    assert done.returncode != 0
    assert b"invalid signature" in done.stderr, done.stderr


def test_go_refuses_a_checkpoint_signed_only_by_ml_dsa(noteverify: Path) -> None:
    done = go_open(noteverify, note(signers=(PQ,)), ED.verifier_key)
    assert done.returncode != 0
    assert b"no verifiable signatures" in done.stderr, done.stderr


def test_go_does_not_know_the_ml_dsa_key_type(noteverify: Path) -> None:
    done = go_open(noteverify, note(), PQ.verifier_key)
    assert done.returncode != 0
    assert b"unknown verifier algorithm" in done.stderr, done.stderr
