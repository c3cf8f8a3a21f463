"""The project's small Go tools (``tools/<name>``), built once per source version and cached outside
the work tree (``$PV_CACHE``, default ``~/.cache/privatevault``), like the control plane.

Go is a requirement of the tiers that use them: without it those tests fail, they never skip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def build(name: str) -> Path:
    """The binary of ``tools/<name>``, named by a digest of its go.mod, go.sum and sources."""
    go = shutil.which("go")
    if go is None:
        pytest.fail(f"Go is not on PATH: it is needed to build tools/{name} for these tests")
    source = TOOLS / name
    digest = hashlib.sha256()
    for path in sorted([source / "go.mod", source / "go.sum", *source.glob("*.go")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    cache = Path(os.environ.get("PV_CACHE", Path.home() / ".cache" / "privatevault"))
    binary = cache / "bin" / f"{name}-{digest.hexdigest()[:16]}" / name
    if binary.is_file():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(f"{name}.{os.getpid()}.tmp")
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    done = subprocess.run(
        [go, "build", "-trimpath", "-o", str(partial), "."],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        pytest.fail(f"go build of tools/{name} failed:\n{done.stderr}")
    partial.replace(binary)
    return binary
