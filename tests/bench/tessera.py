"""Tessera, the transparency-dev log library, appending on its POSIX storage driver: the peer the
ledger's batched append is compared with, in the same run (``tools/tesserabench``).

The Go program is built once per version of its sources (``go.mod`` pins Tessera) and cached
outside the work tree, under ``$PV_CACHE/bin`` (``~/.cache/privatevault``), as the control plane
and ``tools/noteverify`` are.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "tools" / "tesserabench"


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
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("Go is not on PATH: it is needed to build tools/tesserabench")
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((SOURCE / name).read_bytes())
    cache = Path(os.environ.get("PV_CACHE", Path.home() / ".cache" / "privatevault"))
    binary = cache / "bin" / f"tesserabench-{version()}-{digest.hexdigest()[:12]}" / "tesserabench"
    if binary.is_file():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(f"tesserabench.{os.getpid()}.tmp")
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    done = subprocess.run(
        [go, "build", "-trimpath", "-o", str(partial), "."],
        cwd=SOURCE,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"go build of tools/tesserabench failed:\n{done.stderr}")
    partial.replace(binary)
    return binary


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
