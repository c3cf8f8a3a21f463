"""An approver's private keys at rest: the encrypted file round-trips under its passphrase only,
refuses a wrong passphrase or an edited header, is 0600 and never overwritten; the OS keyring is
used only when it is a real one (not keyring's fail or null backend)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import keyring.backends.fail
import keyring.backends.null
import pytest

from privatevault.cli import keystore
from privatevault.cli.keystore import ApproverKeyPairs, KeyStoreError
from tests.unit.fakes import MemoryKeyring

PAIRS = ApproverKeyPairs.generate("alice")


def test_the_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "alice.key"
    keystore.write_file(path, PAIRS, b"correct horse")
    assert keystore.read_file(path, b"correct horse") == PAIRS
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["public"] == PAIRS.public_keys()
    assert document["kdf"]["name"] == "scrypt" and document["cipher"] == "AES-256-GCM"
    # No private key in clear.
    for pair in (PAIRS.ed25519, PAIRS.ml_dsa65):
        assert keystore._b64(pair[0]) not in path.read_text()


def test_a_wrong_passphrase_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "alice.key"
    keystore.write_file(path, PAIRS, b"correct horse")
    with pytest.raises(KeyStoreError, match="wrong passphrase"):
        keystore.read_file(path, b"battery staple")


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "mallory"), ("public", {"ed25519": "x", "mlDsa65": "y"})],
)
def test_an_edited_header_does_not_open(field: str, value: object) -> None:
    document = keystore.seal(PAIRS, b"pw") | {field: value}
    with pytest.raises(KeyStoreError, match="wrong passphrase \\(or the key file was changed\\)"):
        keystore.open_sealed(document, b"pw")


def test_keys_are_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "alice.key"
    keystore.write_file(path, PAIRS, b"pw")
    with pytest.raises(KeyStoreError, match="exists already"):
        keystore.write_file(path, ApproverKeyPairs.generate("alice"), b"pw")
    assert keystore.read_file(path, b"pw") == PAIRS


def test_an_empty_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="empty passphrase"):
        keystore.write_file(tmp_path / "alice.key", PAIRS, b"")


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("not json", "cannot be read"), ("[]", "is not a"), ("{}", "not a privatevault")],
)
def test_unreadable_files_are_named(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "alice.key"
    if content is not None:
        path.write_text(content)
    with pytest.raises(KeyStoreError, match=message):
        keystore.read_file(path, b"pw")


def test_the_keyring_round_trips() -> None:
    backend = MemoryKeyring()
    assert keystore.keyring_load(backend, "alice") is None
    keystore.keyring_save(backend, PAIRS)
    assert keystore.keyring_load(backend, "alice") == PAIRS
    assert ("privatevault-approver", "alice") in backend.secrets


def test_only_a_real_keyring_is_used() -> None:
    assert keystore.usable_keyring(keyring.backends.fail.Keyring()) is None
    assert keystore.usable_keyring(keyring.backends.null.Keyring()) is None
    backend = MemoryKeyring()
    assert keystore.usable_keyring(backend) is backend


def test_something_else_in_the_keyring_is_named() -> None:
    backend = MemoryKeyring()
    backend.set_password("privatevault-approver", "alice", "hunter2")
    with pytest.raises(KeyStoreError, match="holds something else"):
        keystore.keyring_load(backend, "alice")
