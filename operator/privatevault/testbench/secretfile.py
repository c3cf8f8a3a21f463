"""Writing secrets (keys, passwords, tokens) so that only the owner can ever read them.

The file is created with mode 0600 from the start, instead of being chmod-ed after the secret is
already on disk with the umask's permissions.
"""

import os
from pathlib import Path


def write_secret(path: Path, data: bytes | str) -> Path:
    """Write `data` to `path` with mode 0600, replacing any previous file, and return the path."""
    payload = data.encode() if isinstance(data, str) else data
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(payload)
    return path
