"""What Flux and kpt read from an object's status: kstatus computed by ``tools/kstatus``, which runs
``sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute`` (Go), on objects as the API server returns them."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests import gotools


def results(objects: dict[str, Any] | str) -> dict[str, tuple[str, str]]:
    """``{"Kind/name": (status, message)}`` for one object or a List (``kubectl get -o json``)."""
    text = objects if isinstance(objects, str) else json.dumps(objects)
    done = subprocess.run(
        [str(gotools.build("kstatus"))], input=text, capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        raise AssertionError(f"kstatus failed: {done.stderr}")
    found = {}
    for line in done.stdout.splitlines():
        name, status, *message = line.split(" ", 2)
        found[name] = (status, message[0] if message else "")
    return found


def kstatus(obj: dict[str, Any] | str) -> tuple[str, str]:
    """``(status, message)`` of one object: InProgress, Failed, Current, Terminating or Unknown."""
    (result,) = results(obj).values()
    return result
