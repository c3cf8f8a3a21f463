"""Tessera, the transparency-dev log library, appending on its POSIX storage driver: the peer the
ledger's batched append is compared with, in the same run (``tools/tesserabench``).

The Go program is built once per version of its sources (``go.mod`` pins Tessera) and cached
outside the work tree, under ``$PV_CACHE/bin`` (``~/.cache/privatevault``), as the control plane
and ``tools/noteverify`` are.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path

from tests import gotools

SOURCE = gotools.TOOLS / "tesserabench"


def version() -> str:
    """The Tessera version ``tools/tesserabench/go.mod`` requires."""
    found = re.search(r"^\s*(?:require\s+)?github\.com/transparency-dev/tessera\s+(v\S+)", _go_mod(), re.MULTILINE)
    if found is None:
        raise RuntimeError("tools/tesserabench/go.mod requires no github.com/transparency-dev/tessera")
    return found.group(1)


def _go_mod() -> str:
    return (SOURCE / "go.mod").read_text()


def build() -> Path:
    """The tesserabench binary, built with ``go build`` on first use and cached by version."""
    return gotools.build("tesserabench", prefix=f"{version()}-")


def append(entries: int, *, size: int = 350, writers: int = 64, workdir: Path | None = None) -> dict[str, float]:
    """Append ``entries`` entries of ``size`` bytes with ``writers`` concurrent writers; its figures.

    The log lives in a fresh directory under ``workdir`` (the system's temporary directory by
    default: the same disk PostgreSQL's data is on in the bench).
    """
    binary = build()
    with tempfile.TemporaryDirectory(prefix="pv-tessera-", dir=workdir) as directory:
        done = subprocess.run(
            [binary, "-dir", directory, "-entries", str(entries), "-size", str(size), "-writers", str(writers)],
            capture_output=True,
            text=True,
            check=False,
            timeout=3600,
        )
    if done.returncode != 0:
        raise RuntimeError(f"tesserabench failed:\n{done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout)
    return result
