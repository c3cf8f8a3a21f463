"""Witness processes for the tests: ``pvctl witness run`` and torchwood's litewitness, the independent one.

litewitness (filippo.io/torchwood v0.6.1, built and cached by ``tools/build-litewitness.sh``) keeps
its key in an ssh-agent and its logs in two SQLite tables, ``log`` (origin, tree_size, tree_hash)
and ``key`` (origin, key), which its ``witnessctl`` would fill; that tool does not build here (a
dependency is not served), so :class:`Litewitness` fills them the way ``witnessctl add-log`` and
``add-key`` do (torchwood's cmd/witnessctl/witnessctl.go). Both processes listen on a free
loopback port and are stopped by their process group.
"""

from __future__ import annotations

import base64
import re
import sqlite3
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from privatevault.ledger import merkle
from privatevault.ledger.cosignature import CosignatureVerifier
from privatevault.testbench.ports import free_port
from privatevault.testbench.process import ManagedProcess
from privatevault.witness.state import load_or_create_key

from .support import REPO

# litewitness's schema (torchwood internal/witness.OpenDB), created here before it starts.
LITEWITNESS_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (origin TEXT PRIMARY KEY, tree_size INTEGER NOT NULL, tree_hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS key (origin TEXT NOT NULL, key TEXT NOT NULL, FOREIGN KEY(origin) REFERENCES log(origin));
"""


def litewitness_binary() -> Path:
    """The cached litewitness, built on first use (Go is a requirement of these tiers: no skipping)."""
    script = REPO / "tools" / "build-litewitness.sh"
    done = subprocess.run([str(script)], capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        pytest.fail(f"building litewitness failed:\n{done.stdout}{done.stderr}")
    path = subprocess.run([str(script), "--print-path"], capture_output=True, text=True, check=True).stdout.strip()
    return Path(path)


def _listening(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - a loopback URL of the test
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


class Litewitness:
    """litewitness with its own ssh-agent, key and database, witnessing the given logs."""

    def __init__(self, workdir: Path, name: str, logs: Mapping[str, Sequence[str]] | None = None) -> None:
        # An ssh-agent socket path must stay under ~100 bytes: pytest's tmp paths can be longer.
        self.home = Path(tempfile.mkdtemp(prefix="lw-", dir="/tmp"))
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = workdir / f"litewitness-{self.port}.db"
        key = self.home / "key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(key)], check=True)
        public = load_ssh_public_key(key.with_suffix(".pub").read_bytes())
        assert isinstance(public, Ed25519PublicKey)
        self.verifier = CosignatureVerifier(name, public.public_bytes_raw())
        fingerprint = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", str(key.with_suffix(".pub"))],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[1]
        self.socket = self.home / "agent"
        self.agent = ManagedProcess("ssh-agent", ["ssh-agent", "-D", "-a", str(self.socket)], workdir / "ssh-agent.log")
        self.agent.start()
        self.agent.wait_ready(self.socket.exists, 10, "its socket")
        subprocess.run(
            ["ssh-add", "-q", str(key)], env={"SSH_AUTH_SOCK": str(self.socket)}, check=True, capture_output=True
        )
        key.unlink()  # the agent holds it now
        self.fill(logs or {})
        self.process = ManagedProcess(
            "litewitness",
            [
                str(litewitness_binary()),
                f"-name={name}",
                f"-key={fingerprint}",
                f"-ssh-agent={self.socket}",
                f"-db={self.db}",
                f"-listen=127.0.0.1:{self.port}",
            ],
            workdir / f"litewitness-{self.port}.log",
        )

    def fill(self, logs: Mapping[str, Sequence[str]]) -> None:
        """What `witnessctl add-log` and `add-key` write: a log at size 0 with the empty tree's hash, its keys."""
        with sqlite3.connect(self.db) as db:
            db.executescript(LITEWITNESS_SCHEMA)
            for origin, keys in logs.items():
                db.execute(
                    "INSERT INTO log (origin, tree_size, tree_hash) VALUES (?, 0, ?)",
                    (origin, base64.b64encode(merkle.EMPTY_ROOT).decode()),
                )
                db.executemany("INSERT INTO key (origin, key) VALUES (?, ?)", [(origin, key) for key in keys])
        db.close()

    def known(self, origin: str) -> tuple[int, bytes]:
        with sqlite3.connect(self.db) as db:
            size, root = db.execute("SELECT tree_size, tree_hash FROM log WHERE origin = ?", (origin,)).fetchone()
        db.close()
        return int(size), base64.b64decode(root)

    def start(self) -> Litewitness:
        self.process.start()
        self.process.wait_ready(lambda: _listening(self.url + "/"), 30, "its HTTP port")
        return self

    def logged_vkey(self) -> str:
        found = re.search(r"vkey=(\S+)", self.process.log.read_text(errors="replace"))
        assert found, self.process.log.read_text(errors="replace")
        return found.group(1)

    def stop(self) -> None:
        self.process.stop(grace=5)
        self.agent.stop(grace=5)


class OurWitness:
    """``pvctl witness run`` as a real process, with its key and state under ``workdir``; its key
    is made at once, so that a log can be configured with it before the witness runs."""

    def __init__(self, workdir: Path, name: str, log_keys: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key_file, self.state = workdir / f"witness-{self.port}.key", workdir / f"witness-{self.port}.json"
        self.vkey = load_or_create_key(self.key_file, name).verifier_key
        self.workdir, self.name = workdir, name
        self.configure(log_keys)

    def configure(self, log_keys: Sequence[str]) -> None:
        self.process = ManagedProcess(
            "pvctl-witness",
            [
                sys.executable,
                "-m",
                "privatevault",
                "witness",
                "run",
                f"--name={self.name}",
                f"--listen=127.0.0.1:{self.port}",
                f"--key-file={self.key_file}",
                f"--state={self.state}",
                *(f"--log-key={key}" for key in log_keys),
            ],
            self.workdir / f"witness-{self.port}.log",
        )

    def start(self) -> OurWitness:
        self.process.start()
        self.process.wait_ready(lambda: _listening(self.url + "/"), 30, "its HTTP port")
        return self

    def printed_vkey(self) -> str:
        """What `pvctl witness key` prints."""
        done = subprocess.run(
            [sys.executable, "-m", "privatevault", "witness", "key", f"--key-file={self.key_file}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return done.stdout.strip()

    def log(self) -> str:
        return self.process.log.read_text(errors="replace")

    def stop(self) -> None:
        self.process.stop(grace=5)
