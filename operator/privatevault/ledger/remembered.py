"""What a verifier remembers between runs: the last checkpoint it accepted, one small file per log.

A published checkpoint is only as good as the place it is published: someone who can write the
ConfigMap can put back an older checkpoint (a rollback, hiding every record after it) or one of
a forked history. A verifier that remembers the last checkpoint it accepted refuses both
(``ledger.verify``), the way Go's checksum database client keeps its latest signed tree in its
cache (``$GOPATH/pkg/sumdb``) and refuses a server that goes back on it.

The file holds the signed note verbatim, so every read verifies it again with the keys given:
a state file someone edited is refused, not believed. A log is named by its verifier key name
(the origin) and key ID, like a note verifier, so two installations that share the default
origin keep two files. The default place follows the XDG base directories:
``$XDG_STATE_HOME/privatevault/checkpoints/`` (``~/.local/state/…`` when unset).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

from privatevault.ledger.checkpoint import Checkpoint, CheckpointError, NoteVerifier, parse_and_verify


def default_path(verifiers: Sequence[NoteVerifier], env: Mapping[str, str] | None = None) -> Path:
    """``<state dir>/privatevault/checkpoints/<origin>+<key ID>`` for the log these keys verify."""
    if not verifiers:
        raise CheckpointError("no verifier keys: a remembered checkpoint belongs to a log, named by its key")
    env = os.environ if env is None else env
    base = Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    name, key_id = min((verifier.name, verifier.key_id) for verifier in verifiers)
    return base / "privatevault" / "checkpoints" / f"{quote(name, safe='')}+{key_id:08x}"


class RememberedCheckpoint:
    """The state file of one log: :meth:`load` the checkpoint accepted last, :meth:`save` a newer one."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, verifiers: Sequence[NoteVerifier]) -> Checkpoint | None:
        """The remembered checkpoint, verified again; None when nothing is remembered yet.

        Raises :class:`CheckpointError` when the file holds a note these keys did not sign.
        """
        try:
            note = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return parse_and_verify(note, verifiers)
        except CheckpointError as exc:
            raise CheckpointError(f"the checkpoint remembered in {self.path} does not verify: {exc}") from exc

    def save(self, note: bytes) -> None:
        """Replace the remembered checkpoint atomically (readable by its owner only)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(note)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)
