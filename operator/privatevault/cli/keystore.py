"""Where an approver's private keys live: the OS keyring when there is a usable one, else a file
encrypted under a passphrase.

An approver holds an Ed25519 and an ML-DSA-65 key pair (the ML-DSA private key is its 32-byte
seed). In the keyring they are one JSON secret under service ``privatevault-approver`` and the
approver's name. The file is JSON too, written 0600 and never over another::

    {"format": "privatevault-approver-key/v1", "name": ..., "public": {"ed25519": ..., "mlDsa65": ...},
     "kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": ...},
     "cipher": "AES-256-GCM", "nonce": ..., "ciphertext": ...}

The key is derived from the passphrase with scrypt; AES-256-GCM seals the private keys with
every other field of the file as associated data, so a file whose name or public keys were
edited does not open. A wrong passphrase and a changed file are the same error: nothing tells
them apart, on purpose.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import keyring
import keyring.backends.fail
import keyring.backends.null
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from keyring.backend import KeyringBackend
from keyring.errors import KeyringError

from privatevault.crypto import ED25519, ML_DSA_65
from privatevault.errors import PrivateVaultError
from privatevault.quorum.dsse import Algorithm

SERVICE: Final = "privatevault-approver"
FORMAT: Final = "privatevault-approver-key/v1"
#: scrypt's cost: 32 MiB and about 0.1 s per derivation on one core.
SCRYPT_N: Final = 2**15
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1

KeyPair = tuple[bytes, bytes]


class KeyStoreError(PrivateVaultError):
    """An approver's keys cannot be read or kept: missing, wrong passphrase, unusable store."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class ApproverKeyPairs:
    """One approver's key pairs, ``(private, public)`` each."""

    name: str
    ed25519: KeyPair
    ml_dsa65: KeyPair

    @classmethod
    def generate(cls, name: str) -> ApproverKeyPairs:
        return cls(name, ED25519.generate(), ML_DSA_65.generate())

    def signing(self) -> dict[Algorithm, KeyPair]:
        return {"Ed25519": self.ed25519, "ML-DSA-65": self.ml_dsa65}

    def public_keys(self) -> dict[str, str]:
        """``publicKeys`` of the QuorumPolicy approver, in wire form."""
        return {"ed25519": _b64(self.ed25519[1]), "mlDsa65": _b64(self.ml_dsa65[1])}

    def secret(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ed25519": {"private": _b64(self.ed25519[0]), "public": _b64(self.ed25519[1])},
            "mlDsa65": {"private": _b64(self.ml_dsa65[0]), "public": _b64(self.ml_dsa65[1])},
        }

    @classmethod
    def from_secret(cls, document: Mapping[str, Any]) -> ApproverKeyPairs:
        try:
            pairs = {
                field: (base64.b64decode(document[field]["private"]), base64.b64decode(document[field]["public"]))
                for field in ("ed25519", "mlDsa65")
            }
            return cls(str(document["name"]), pairs["ed25519"], pairs["mlDsa65"])
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyStoreError("the stored keys are not an approver's key pairs") from exc


# -- the OS keyring --------------------------------------------------------------------------------


def usable_keyring(backend: KeyringBackend | None = None) -> KeyringBackend | None:
    """The keyring to keep keys in, or None when there is none worth the name (fail, null backends)."""
    chosen = backend if backend is not None else keyring.get_keyring()
    if isinstance(chosen, keyring.backends.fail.Keyring | keyring.backends.null.Keyring) or chosen.priority <= 0:
        return None
    return chosen


def keyring_save(backend: KeyringBackend, pairs: ApproverKeyPairs) -> None:
    try:
        backend.set_password(SERVICE, pairs.name, json.dumps(pairs.secret()))
    except KeyringError as exc:
        raise KeyStoreError(f"the OS keyring refused to keep {pairs.name}'s keys: {exc}") from exc


def keyring_load(backend: KeyringBackend, name: str) -> ApproverKeyPairs | None:
    try:
        stored = backend.get_password(SERVICE, name)
    except KeyringError as exc:
        raise KeyStoreError(f"the OS keyring cannot be read: {exc}") from exc
    if stored is None:
        return None
    try:
        return ApproverKeyPairs.from_secret(json.loads(stored))
    except json.JSONDecodeError as exc:
        raise KeyStoreError(f"the OS keyring holds something else under {SERVICE}/{name}") from exc


# -- the encrypted file ----------------------------------------------------------------------------


def default_file(config_dir: Path, name: str) -> Path:
    return config_dir / "approvers" / f"{name}.key"


def _derive(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)


def _associated(header: Mapping[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def seal(pairs: ApproverKeyPairs, passphrase: bytes) -> dict[str, Any]:
    """The file's document: the private keys sealed under ``passphrase``."""
    if not passphrase:
        raise KeyStoreError("an empty passphrase protects nothing: choose one")
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    header = {
        "format": FORMAT,
        "name": pairs.name,
        "public": pairs.public_keys(),
        "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)},
        "cipher": "AES-256-GCM",
        "nonce": _b64(nonce),
    }
    key = _derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    sealed = AESGCM(key).encrypt(nonce, json.dumps(pairs.secret()).encode(), _associated(header))
    return header | {"ciphertext": _b64(sealed)}


def open_sealed(document: Mapping[str, Any], passphrase: bytes) -> ApproverKeyPairs:
    """The key pairs in a sealed document; ``KeyStoreError`` for a wrong passphrase or a changed file."""
    header = {k: v for k, v in document.items() if k != "ciphertext"}
    try:
        if header["format"] != FORMAT or header["cipher"] != "AES-256-GCM" or header["kdf"]["name"] != "scrypt":
            raise KeyStoreError(f"not a {FORMAT} key file")
        kdf = header["kdf"]
        key = _derive(passphrase, base64.b64decode(kdf["salt"]), int(kdf["n"]), int(kdf["r"]), int(kdf["p"]))
        plain = AESGCM(key).decrypt(
            base64.b64decode(header["nonce"]), base64.b64decode(document["ciphertext"]), _associated(header)
        )
    except InvalidTag as exc:
        raise KeyStoreError("wrong passphrase (or the key file was changed)") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise KeyStoreError(f"not a {FORMAT} key file") from exc
    return ApproverKeyPairs.from_secret(json.loads(plain))


def write_file(path: Path, pairs: ApproverKeyPairs, passphrase: bytes) -> None:
    """Write the sealed keys to ``path``, readable by its owner only; never over an existing file."""
    document = seal(pairs, passphrase)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyStoreError(f"{path} exists already: keys are never overwritten; move it away first") from exc
    with os.fdopen(descriptor, "w") as out:
        json.dump(document, out, indent=2)
        out.write("\n")


def read_file(path: Path, passphrase: bytes) -> ApproverKeyPairs:
    return open_sealed(read_document(path), passphrase)


def read_document(path: Path) -> dict[str, Any]:
    """The sealed document in ``path`` (to read its name and public keys before asking the passphrase)."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise KeyStoreError(f"key file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyStoreError(f"key file {path} cannot be read as a {FORMAT} key file: {exc}") from exc
    if not isinstance(document, dict):
        raise KeyStoreError(f"key file {path} is not a {FORMAT} key file")
    return document
