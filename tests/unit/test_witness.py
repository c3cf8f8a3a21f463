"""Witnesses: cosignature/v1 lines are made and checked as C2SP tlog-cosignature says (key ID, signed
message, timestamp) and Go's ``note`` package with a cosignature/v1 verifier accepts them; our witness
answers every case of C2SP tlog-witness with the spec's status (404, 403, 400, 409 with its size,
422, 200), keeps its state and key in files of its own; the client follows a 409, never raises for a
failing witness, and the checkpointer publishes the cosignatures beside the log's own signatures."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry, generate_latest

from privatevault.ledger import merkle
from privatevault.ledger.checkpoint import CheckpointError, LocalSigner, parse_and_verify, sign_checkpoint
from privatevault.ledger.checkpointer import Checkpointer
from privatevault.ledger.cosignature import (
    CosignatureSigner,
    cosigned_by,
    parse_cosignature_key,
    signed_message,
)
from privatevault.ledger.witness import (
    AddCheckpoint,
    Known,
    WitnessRefusal,
    WitnessStatus,
    add_checkpoint,
    parse_request,
)
from privatevault.metrics import OperatorMetrics
from privatevault.settings import Settings
from privatevault.witness.client import Witness, Witnesses, http_post
from privatevault.witness.server import WitnessService, serve
from privatevault.witness.state import State, WitnessStateError, load_or_create_key

from .fakes import MemoryLedger
from .test_checkpointer import Alarm, ConfigMap
from .test_merkle import build_noteverify

ORIGIN = "example.org/log"
LOG = LocalSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
OTHER = LocalSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))))
WITNESS = CosignatureSigner("witness.example/w1", Ed25519PrivateKey.from_private_bytes(bytes(32)), clock=lambda: 1e9)


def tree(n: int) -> merkle.MemoryNodeStore:
    store = merkle.MemoryNodeStore()
    for i in range(n):
        store.put_many(merkle.append_leaves(i, [merkle.leaf_hash(i.to_bytes(8, "big"))], store))
    return store


STORE = tree(40)


def note(size: int, *, root: bytes | None = None, signers: tuple[LocalSigner, ...] = (LOG,)) -> bytes:
    return sign_checkpoint(ORIGIN, size, merkle.tree_root(size, STORE) if root is None else root, list(signers))


def proof(old: int, new: int) -> tuple[bytes, ...]:
    return tuple(merkle.consistency_proof(old, new, STORE)) if 0 < old < new else ()


def body_of(signed: bytes) -> bytes:
    return signed[: signed.index(b"\n\n") + 1]


# -- cosignature/v1 ---------------------------------------------------------------------------


def test_the_key_id_and_signed_message_are_the_specs() -> None:
    public = WITNESS.verifier.public_key
    expected = hashlib.sha256(b"witness.example/w1\n\x04" + public).digest()[:4]
    assert WITNESS.key_id.to_bytes(4, "big") == expected
    encoded = base64.b64encode(b"\x04" + public).decode()
    assert WITNESS.verifier_key == f"witness.example/w1+{expected.hex()}+{encoded}"
    assert signed_message(1679315147, b"o\n1\nr\n") == b"cosignature/v1\ntime 1679315147\no\n1\nr\n"
    line = WITNESS.line(body_of(note(5)))
    blob = base64.b64decode(line.decode().split(" ")[2])
    assert blob[:4] == expected and int.from_bytes(blob[4:12], "big") == 1_000_000_000 and len(blob) == 76
    Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key().verify(
        blob[12:], signed_message(1_000_000_000, body_of(note(5)))
    )


def test_a_cosigned_checkpoint_verifies_with_the_log_and_the_witness_keys() -> None:
    signed = note(7)
    cosigned = signed + WITNESS.line(body_of(signed))
    assert parse_and_verify(cosigned, [LOG.verifier, WITNESS.verifier]).size == 7
    assert cosigned_by(cosigned, [WITNESS.verifier]) == (["witness.example/w1"], [])
    _, missing = cosigned_by(signed, [WITNESS.verifier])
    assert missing == [f"witness.example/w1 ({WITNESS.key_id:08x}): no cosignature"]
    forged = note(8) + WITNESS.line(body_of(signed))  # a line moved onto another checkpoint
    assert "does not verify" in cosigned_by(forged, [WITNESS.verifier])[1][0]


def test_witness_keys_parse_and_refuse_other_types() -> None:
    assert parse_cosignature_key(WITNESS.verifier_key) == WITNESS.verifier
    with pytest.raises(CheckpointError, match="signature type 0x01"):
        parse_cosignature_key(LOG.verifier_key)
    name, key_hash, key = WITNESS.verifier_key.split("+")
    with pytest.raises(CheckpointError, match="does not match"):
        parse_cosignature_key(f"{name}+{int(key_hash, 16) ^ 1:08x}+{key}")
    with pytest.raises(CheckpointError):
        parse_cosignature_key("not a key")
    again = CosignatureSigner.from_private_key_string(WITNESS.private_key_string())
    assert again.verifier_key == WITNESS.verifier_key


# -- the witness's decision -------------------------------------------------------------------

LOGS = {ORIGIN: [LOG.verifier]}
KNOWN_10 = Known(10, merkle.tree_root(10, STORE))


@pytest.mark.parametrize(
    ("request_", "known", "status"),
    [
        (AddCheckpoint(0, (), note(10)), None, 200),
        (AddCheckpoint(10, proof(10, 20), note(20)), KNOWN_10, 200),
        (AddCheckpoint(10, (), note(10)), KNOWN_10, 200),  # the same head again
        (AddCheckpoint(0, (), sign_checkpoint("other.example/log", 1, bytes(32), [LOG])), None, 404),
        (AddCheckpoint(0, (), note(10, signers=(OTHER,))), None, 403),  # signed by a key it does not trust
        (AddCheckpoint(0, (), note(10).replace(b"\n10\n", b"\n11\n")), None, 403),  # trusted key, bad signature
        (AddCheckpoint(21, (), note(20)), KNOWN_10, 400),  # old above the checkpoint
        (AddCheckpoint(0, (), note(20)), KNOWN_10, 409),
        (AddCheckpoint(5, proof(5, 20), note(20)), KNOWN_10, 409),
        (AddCheckpoint(10, proof(10, 20)[1:], note(20)), KNOWN_10, 422),  # a bad proof
        (AddCheckpoint(10, proof(10, 20), note(20, root=bytes(32))), KNOWN_10, 422),  # another history
        (AddCheckpoint(10, (), note(10, root=bytes(32))), KNOWN_10, 422),  # same size, another root
        (AddCheckpoint(0, proof(5, 20), note(20)), None, 422),  # a proof from 0
        (AddCheckpoint(0, (), note(0, root=bytes(32))), None, 422),  # size 0 needs the empty root
    ],
)
def test_the_witness_answers_each_case_with_the_specs_status(
    request_: AddCheckpoint, known: Known | None, status: int
) -> None:
    if status == 200:
        checkpoint = add_checkpoint(request_, logs=LOGS, known=known)
        assert checkpoint.size == int(request_.note.split(b"\n")[1])
        return
    with pytest.raises(WitnessRefusal) as refused:
        add_checkpoint(parse_request(request_.body()), logs=LOGS, known=known)
    assert refused.value.status == status, refused.value
    if status == 409:
        assert refused.value.known_size == 10


@pytest.mark.parametrize(
    "body",
    [
        b"old 1\n",  # no blank line
        b"old 01\n\n" + note(1),
        b"new 1\n\n" + note(1),
        b"old 1\nnot base64!\n\n" + note(1),
        b"old 1\n" + base64.b64encode(bytes(31)) + b"\n\n" + note(1),
        ("old 1\n" + "".join(base64.b64encode(bytes(32)).decode() + "\n" for _ in range(64))).encode()
        + b"\n"
        + note(1),
    ],
)
def test_malformed_requests_are_400(body: bytes) -> None:
    with pytest.raises(WitnessRefusal) as refused:
        parse_request(body)
    assert refused.value.status == 400


def test_the_request_body_is_the_specs() -> None:
    body = AddCheckpoint(2, proof(2, 3), note(3)).body()
    lines = body.split(b"\n\n", 1)[0].split(b"\n")
    assert lines[0] == b"old 2" and len(lines) == 1 + len(proof(2, 3))
    assert body.split(b"\n\n", 1)[1] == note(3)
    assert parse_request(body) == AddCheckpoint(2, proof(2, 3), note(3))


# -- our witness: state, key, service ---------------------------------------------------------


@pytest.fixture
def service(tmp_path: Path) -> Iterator[WitnessService]:
    state = State(tmp_path / "state.json")
    yield WitnessService(WITNESS, LOGS, state)
    state.close()


def test_the_witness_remembers_across_restarts_and_refuses_a_second_process(tmp_path: Path) -> None:
    state = State(tmp_path / "state.json")
    service = WitnessService(WITNESS, LOGS, state)
    assert service.add_checkpoint(AddCheckpoint(0, (), note(10)).body()).status == 200
    with pytest.raises(WitnessStateError, match="another witness"):
        State(tmp_path / "state.json")
    state.close()
    again = State(tmp_path / "state.json")
    assert again.get(ORIGIN) == KNOWN_10
    answer = WitnessService(WITNESS, LOGS, again).add_checkpoint(AddCheckpoint(0, (), note(20)).body())
    assert (answer.status, answer.body, answer.content_type) == (409, b"10\n", "text/x.tlog.size")
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600
    stored = json.loads((tmp_path / "state.json").read_text())["logs"][ORIGIN]
    assert stored["size"] == 10 and WITNESS.name in stored["note"]
    again.close()


def test_the_witness_state_refuses_a_damaged_file(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('{"logs": {"o": {"size": "x"}}}')
    with pytest.raises(WitnessStateError, match="damaged"):
        State(tmp_path / "state.json")


def test_the_key_file_is_made_once_private_and_keeps_its_name(tmp_path: Path) -> None:
    path = tmp_path / "w" / "key"
    with pytest.raises(WitnessStateError, match="--name"):
        load_or_create_key(path, None)
    made = load_or_create_key(path, "witness.example/new")
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_key(path, None).verifier_key == made.verifier_key
    with pytest.raises(WitnessStateError, match="keeps its name"):
        load_or_create_key(path, "witness.example/other")
    path.chmod(0o644)
    with pytest.raises(WitnessStateError, match="readable by others"):
        load_or_create_key(path, None)


def test_the_monitoring_endpoint_serves_the_cosigned_checkpoint(service: WitnessService) -> None:
    origin_hash = hashlib.sha256(ORIGIN.encode()).hexdigest()
    assert service.checkpoint(origin_hash).status == 404
    service.add_checkpoint(AddCheckpoint(0, (), note(3)).body())
    served = service.checkpoint(origin_hash)
    assert served.status == 200 and parse_and_verify(served.body, [LOG.verifier, WITNESS.verifier]).size == 3


# -- the client -------------------------------------------------------------------------------


def in_process(service: WitnessService) -> Witness:
    """A client whose transport calls the service directly (the HTTP seam)."""

    def transport(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        assert url == "http://witness.test/add-checkpoint"
        answer = service.add_checkpoint(body)
        return answer.status, answer.body

    return Witness("http://witness.test/", WITNESS.verifier, transport=transport)


def test_the_client_follows_a_409_and_keeps_the_witnesss_lines(service: WitnessService) -> None:
    service.add_checkpoint(AddCheckpoint(0, (), note(10)).body())  # another client instance fed it
    witness = in_process(service)
    lines = witness.cosign(note(20), 20, lambda old: proof(old, 20))
    assert cosigned_by(note(20) + lines, [WITNESS.verifier]) == ([WITNESS.name], [])
    assert witness.known_size == 20


def test_a_failing_witness_never_raises_and_is_named(service: WitnessService, caplog: pytest.LogCaptureFixture) -> None:
    def unreachable(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        raise OSError("connection refused")

    down = Witness("http://down.test", CosignatureSigner("witness.example/down", Ed25519PrivateKey.generate()).verifier)
    down.transport = unreachable
    witnesses = Witnesses([in_process(service), down])
    assert witnesses.cosign(note(10), 10, lambda old: proof(old, 10)).startswith("\u2014 witness.example/w1".encode())
    assert witnesses.status["witness.example/down"].reason == "Unreachable"
    assert witnesses.status["witness.example/w1"].cosigned_size == 10
    with caplog.at_level(logging.WARNING):
        assert witnesses.cosign(note(20, root=bytes(32)), 20, lambda old: proof(old, 20)) == b""
    status = witnesses.status["witness.example/w1"]
    assert (status.ok, status.reason, status.failures_total) == (False, "Inconsistent", 1)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "witness.example/w1" in errors[0].getMessage() and "422" in errors[0].getMessage()
    witnesses.close()


def test_a_witness_that_cosigned_more_than_the_log_is_a_rollback(service: WitnessService) -> None:
    service.add_checkpoint(AddCheckpoint(0, (), note(20)).body())
    witnesses = Witnesses([in_process(service)])
    assert witnesses.cosign(note(10), 10, lambda old: proof(old, 10)) == b""
    assert witnesses.status[WITNESS.name].reason == "AheadOfLog"
    witnesses.close()


def test_a_bad_cosignature_in_a_200_is_refused() -> None:
    impostor = CosignatureSigner(WITNESS.name, Ed25519PrivateKey.generate())
    witness = Witness(
        "http://w.test", WITNESS.verifier, transport=lambda url, body, timeout: (200, impostor.line(body_of(note(4))))
    )
    witnesses = Witnesses([witness])
    assert witnesses.cosign(note(4), 4, lambda old: proof(old, 4)) == b""
    assert witnesses.status[WITNESS.name].reason == "BadCosignature"
    witnesses.close()


def test_the_checkpointer_publishes_the_cosignatures_and_stores_its_own_note(service: WitnessService) -> None:
    ledger, configmap = MemoryLedger(), ConfigMap()
    witnesses = Witnesses([in_process(service)])
    checkpointer = Checkpointer(
        ledger, [LOG], origin=ORIGIN, publication=configmap, alarm=Alarm(ledger), witnesses=witnesses
    )
    for count in (3, 5):
        ledger.add(count)
        stored = checkpointer.issue()
        assert configmap.note == stored.note + configmap.note[len(stored.note) :]
        assert cosigned_by(configmap.note, [WITNESS.verifier])[0] == [WITNESS.name]
        assert cosigned_by(ledger.stored[-1].note, [WITNESS.verifier])[0] == []
        assert checkpointer.integrity.cosignatures == 1
    assert service.state.get(ORIGIN) == Known(8, ledger.root(8))
    # A restart with nothing new re-publishes nothing, and counts the lines of what is published.
    again = Checkpointer(ledger, [LOG], origin=ORIGIN, publication=configmap, alarm=Alarm(ledger), witnesses=witnesses)
    again.issue()
    assert again.integrity.cosignatures == 1
    witnesses.close()


def test_a_checkpoint_no_witness_cosigned_counts_none() -> None:
    def unreachable(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        raise OSError("connection refused")

    ledger, configmap = MemoryLedger(), ConfigMap()
    witnesses = Witnesses([Witness("http://down.test", WITNESS.verifier, transport=unreachable)])
    checkpointer = Checkpointer(
        ledger, [LOG], origin=ORIGIN, publication=configmap, alarm=Alarm(ledger), witnesses=witnesses
    )
    ledger.add(3)
    checkpointer.issue()
    assert checkpointer.integrity.cosignatures == 0
    text = generate_latest(registry_of(OperatorMetrics(checkpointer.integrity, witnesses.status))).decode()
    assert "privatevault_ledger_witness_cosignatures 0.0" in text
    witnesses.close()


def test_the_http_server_and_client_speak_the_protocol(service: WitnessService) -> None:
    server = serve(service, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert http_post(url + "/add-checkpoint", AddCheckpoint(0, (), note(2)).body(), 5)[0] == 200
        status, answer = http_post(url + "/add-checkpoint", AddCheckpoint(0, (), note(5)).body(), 5)
        assert (status, answer) == (409, b"2\n")
        witness = Witness(url, WITNESS.verifier)
        assert witness.cosign(note(5), 5, lambda old: proof(old, 5))
    finally:
        server.shutdown()
        server.server_close()


# -- Go's note package, with a cosignature/v1 verifier, agrees --------------------------------


@pytest.fixture(scope="module")
def noteverify() -> Path:
    return build_noteverify()


def go_cosig(binary: Path, signed: bytes, *vkeys: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(binary), "cosig", *vkeys], input=signed, capture_output=True, check=False, timeout=60)


def test_go_verifies_our_witnesss_cosignature(service: WitnessService, noteverify: Path) -> None:
    answer = service.add_checkpoint(AddCheckpoint(0, (), note(9)).body())
    done = go_cosig(noteverify, note(9) + answer.body, WITNESS.verifier_key)
    assert done.returncode == 0, done.stderr
    assert done.stdout == body_of(note(9))
    assert b"1 cosignature(s) verified, 1 other signature(s) ignored" in done.stderr


def test_go_refuses_a_cosignature_moved_to_another_checkpoint(noteverify: Path) -> None:
    done = go_cosig(noteverify, note(10) + WITNESS.line(body_of(note(9))), WITNESS.verifier_key)
    assert done.returncode != 0 and b"invalid signature" in done.stderr, done.stderr


def test_any_exception_of_a_witness_is_a_failure_not_a_crash() -> None:
    def broken(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        raise ValueError("unknown url type")

    witnesses = Witnesses([Witness("http://w.test", WITNESS.verifier, transport=broken)])
    assert witnesses.cosign(note(3), 3, lambda old: proof(old, 3)) == b""
    assert witnesses.status[WITNESS.name].reason == "Error"
    witnesses.close()


# -- configuration and metrics ----------------------------------------------------------------


def test_witnesses_are_configured_as_url_and_key_pairs() -> None:
    key = WITNESS.verifier_key
    env = {
        "PRIVATEVAULT_LEDGER_DSN": "postgresql://x",
        "PRIVATEVAULT_WITNESSES": f"http://a.test {key},\n https://b.test/prefix {key}\n",
        "PRIVATEVAULT_WITNESS_TIMEOUT": "2.5",
    }
    settings = Settings.from_env(env)
    assert settings.witnesses == (
        ("http://a.test", WITNESS.verifier_key),
        ("https://b.test/prefix", WITNESS.verifier_key),
    )
    assert settings.witness_timeout == 2.5
    for bad in ("a.test " + WITNESS.verifier_key, "http://a.test", "http://a.test k extra"):
        with pytest.raises(ValueError, match="PRIVATEVAULT_WITNESSES"):
            Settings.from_env({**env, "PRIVATEVAULT_WITNESSES": bad})


def test_the_metrics_name_each_witness_and_its_reason() -> None:
    status = {
        "w1": WitnessStatus("w1", "http://a", ok=False, reason="Inconsistent", failures_total=2, cosigned_size=20),
        "w2": WitnessStatus("w2", "http://b"),
    }
    text = generate_latest(registry_of(OperatorMetrics(witnesses=status))).decode()
    assert 'privatevault_ledger_witness_ok{reason="Inconsistent",witness="w1"} 0.0' in text
    assert 'privatevault_ledger_witness_ok{reason="",witness="w2"} 1.0' in text
    assert 'privatevault_ledger_witness_failures_total{witness="w1"} 2.0' in text
    assert 'privatevault_ledger_witness_cosigned_size{witness="w1"} 20.0' in text
    # Nothing published yet: the cosignatures' family is described, without a sample.
    assert "# TYPE privatevault_ledger_witness_cosignatures gauge" in text
    assert "\nprivatevault_ledger_witness_cosignatures " not in text


def registry_of(collector: OperatorMetrics) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry
