"""The small Go programs in tools/ that tests and benchmarks run, built once per source version.

Each is built with ``go build`` into ``$PV_CACHE/bin/<name>-<tag>/<name>`` (``~/.cache/privatevault``
by default), outside the work tree, as the control plane is, so fresh clones on the same machine
reuse it; the tag is a digest of its ``go.mod``, ``go.sum`` and Go sources. Go is a requirement of
the tiers that use them: without it those tests fail (``GoToolError``), they never skip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1] / "tools"


class GoToolError(RuntimeError):
    """Go is missing, or the program does not build."""


def build(name: str, *, prefix: str = "") -> Path:
    """``tools/<name>`` built (or found in the cache); ``prefix`` goes before the digest in the tag."""
    source = TOOLS / name
    go = shutil.which("go")
    if go is None:
        raise GoToolError(f"Go is not on PATH: it is needed to build tools/{name}")
    digest = hashlib.sha256()
    for path in sorted([source / "go.mod", source / "go.sum", *source.glob("*.go")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    cache = Path(os.environ.get("PV_CACHE", Path.home() / ".cache" / "privatevault"))
    binary = cache / "bin" / f"{name}-{prefix}{digest.hexdigest()[:16]}" / name
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
        timeout=900,
    )
    if done.returncode != 0:
        raise GoToolError(f"go build of tools/{name} failed:\n{done.stderr}")
    partial.replace(binary)
    return binary
