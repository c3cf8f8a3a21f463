"""Named crash points for fault tests, in the manner of etcd's gofail.

``PRIVATEVAULT_FAILPOINTS="after-audit=3"`` makes the process exit abruptly (as a SIGKILL would
leave it: no cleanup, no status write) the third time the ``after-audit`` point is passed, i.e.
right after an audit record was written and before the change it announces was made. Unset in
production, where every point is a no-op.
"""

from __future__ import annotations

import os
import threading
from collections import Counter

_hits: Counter[str] = Counter()
_lock = threading.Lock()


def _armed(env: str) -> dict[str, int]:
    out = {}
    for item in filter(None, (part.strip() for part in env.split(","))):
        name, _, count = item.partition("=")
        out[name] = int(count or "1")
    return out


def point(name: str) -> None:
    """Pass the crash point ``name``; exit at once when it is armed and its count is reached."""
    armed = _armed(os.environ.get("PRIVATEVAULT_FAILPOINTS", ""))
    if name not in armed:
        return
    with _lock:
        _hits[name] += 1
        if _hits[name] >= armed[name]:
            os._exit(137)
