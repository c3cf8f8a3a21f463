"""Issuing checkpoints: every N records or T seconds, never two inconsistent ones.

Before a new tree head is signed, the consistency proof from the previous checkpoint is
computed from the stored nodes and verified, so the checkpoint history is append-only by
construction: a rewritten table would have to produce a head consistent with the last signed
one, which needs the original records. Every checkpoint is stored in the database and handed to
``publish`` (a ConfigMap in the operator's namespace), where the verifier later finds it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from privatevault.errors import IntegrityError, PrivateVaultError
from privatevault.ledger import merkle
from privatevault.ledger.checkpoint import NoteSigner, sign_checkpoint
from privatevault.ledger.store import Ledger, StoredCheckpoint

Publish = Callable[[StoredCheckpoint], None]


@dataclass(frozen=True)
class Policy:
    every_records: int = 1000
    every_seconds: float = 60.0

    def due(self, *, size: int, last_size: int, seconds_since_last: float) -> bool:
        """A checkpoint is due when records were added and enough of them, or enough time, passed."""
        if size <= last_size:
            return False
        return size - last_size >= self.every_records or seconds_since_last >= self.every_seconds


class Checkpointer:
    def __init__(
        self,
        ledger: Ledger,
        signers: Sequence[NoteSigner],
        *,
        origin: str,
        publish: Publish,
        policy: Policy | None = None,
    ) -> None:
        self._ledger, self.signers, self._origin, self._publish = ledger, signers, origin, publish
        self.policy = policy or Policy()
        self._last_issued = time.monotonic()
        self._last_size = 0  # of the last checkpoint this process saw; issue() reads the stored one

    def issue(self) -> StoredCheckpoint:
        """Sign, store and publish the head at the current size (or re-publish the latest)."""
        size = self._ledger.size()
        last = self._ledger.latest_checkpoint()
        if last is not None and last.size >= size:
            self._publish(last)
            self._last_size = last.size
            return last
        root = self._ledger.root(size)
        if last is not None:
            proof = self._ledger.consistency_proof(last.size, size)
            if not merkle.verify_consistency(last.size, size, last.root, root, proof):
                raise IntegrityError(
                    f"the tree at size {size} is not consistent with the checkpoint at size {last.size};"
                    " no checkpoint issued: run `pvctl audit verify`",
                    seq=last.size,
                )
        checkpoint = StoredCheckpoint(size, root, sign_checkpoint(self._origin, size, root, self.signers))
        if not self._ledger.add_checkpoint(checkpoint):
            # Another replica signed this size first; publish what is stored, not ours.
            stored = self._ledger.latest_checkpoint()
            checkpoint = stored if stored is not None and stored.size >= size else checkpoint
        self._publish(checkpoint)
        self._last_issued, self._last_size = time.monotonic(), checkpoint.size
        return checkpoint

    def tick(self) -> StoredCheckpoint | None:
        """Issue a checkpoint if the policy says one is due (one query when it is not)."""
        size = self._ledger.size()
        if self.policy.due(
            size=size, last_size=self._last_size, seconds_since_last=time.monotonic() - self._last_issued
        ):
            return self.issue()
        return None

    def run(self, stop: threading.Event, *, poll: float = 1.0, on_error: Callable[[Exception], None]) -> None:
        """Tick until ``stop`` is set; errors are reported and retried on the next tick."""
        while not stop.wait(poll):
            try:
                self.tick()
            except PrivateVaultError as exc:
                on_error(exc)
