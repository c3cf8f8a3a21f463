"""Our witness's memory and key: small files of its own, never the ledger's database.

The state is one JSON file: per log origin, the size and root hash it cosigned last, and the
cosigned checkpoint (served to monitors). Every change replaces the whole file atomically
(write a temporary file, fsync, rename, fsync the folder), so a crash leaves the old state or
the new one, never a torn one; the server changes it under one lock, between checking a request
against it and answering (the spec's rollback race). A lock file held for the process's life
keeps a second witness off the same state: two processes would each cosign from their own view.

The key is an Ed25519 seed in the signed-note private key format
(``PRIVATE+KEY+<name>+<key ID>+base64(0x04 ‖ seed)``), created on first run, readable by its owner
only.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from privatevault.errors import PrivateVaultError
from privatevault.ledger.cosignature import CosignatureSigner, new_signer
from privatevault.ledger.witness import Known


class WitnessStateError(PrivateVaultError):
    """The witness's key or state file cannot be used as it is: it names the file and what to do."""


def _write_atomically(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class State:
    """The last cosigned head per origin; :meth:`put` persists before the caller answers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock_file = (path.parent / f"{path.name}.lock").open("a")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock_file.close()
            raise WitnessStateError(f"another witness is using {path}: one state, one witness process") from exc
        try:
            self._logs: dict[str, dict[str, Any]] = self._load()
        except BaseException:
            self._lock_file.close()
            raise

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise WitnessStateError(f"{self.path} is not the witness's JSON state: restore it from a backup") from exc
        logs = data.get("logs") if isinstance(data, dict) else None
        if not isinstance(logs, dict):
            raise WitnessStateError(f"{self.path} holds no `logs` object: restore it from a backup")
        for origin in list(logs):
            self._known(logs, origin)  # refuse a damaged entry at start, not mid-request
        return logs

    def _known(self, logs: dict[str, dict[str, Any]], origin: str) -> Known:
        entry = logs[origin]
        try:
            size, root = int(entry["size"]), base64.b64decode(entry["root"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise WitnessStateError(f"{self.path}: the entry of {origin!r} is damaged") from exc
        if size < 0 or len(root) != 32:
            raise WitnessStateError(f"{self.path}: the entry of {origin!r} is damaged")
        return Known(size, root)

    def get(self, origin: str) -> Known | None:
        return self._known(self._logs, origin) if origin in self._logs else None

    def note(self, origin: str) -> bytes | None:
        """The cosigned checkpoint last returned for ``origin`` (log signatures and ours)."""
        entry = self._logs.get(origin)
        return None if entry is None else str(entry.get("note", "")).encode() or None

    def put(self, origin: str, known: Known, note: bytes) -> None:
        logs = dict(self._logs)
        logs[origin] = {"size": known.size, "root": base64.b64encode(known.root).decode(), "note": note.decode()}
        _write_atomically(self.path, json.dumps({"version": 1, "logs": logs}, indent=1, sort_keys=True).encode())
        self._logs = logs

    def origins(self) -> dict[str, Known]:
        return {origin: self._known(self._logs, origin) for origin in self._logs}

    def close(self) -> None:
        self._lock_file.close()


def load_or_create_key(path: Path, name: str | None) -> CosignatureSigner:
    """The witness key in ``path``; created (0600) when missing, which needs ``name``."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        if not name:
            raise WitnessStateError(f"no witness key in {path}: pass --name to create one") from None
        signer = new_signer(name)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(signer.private_key_string() + "\n")
            out.flush()
            os.fsync(out.fileno())
        return signer
    if path.stat().st_mode & 0o077:
        raise WitnessStateError(f"{path} is readable by others: `chmod 600 {path}` (and consider the key exposed)")
    try:
        signer = CosignatureSigner.from_private_key_string(text)
    except PrivateVaultError as exc:
        raise WitnessStateError(f"{path}: {exc}") from exc
    if name and name != signer.name:
        raise WitnessStateError(f"the key in {path} is named {signer.name!r}, not {name!r}: a witness keeps its name")
    return signer
