"""The checkpointer issues a checkpoint when the policy says so, never otherwise, and an idle tick
costs one query; a tree that is not consistent with the last checkpoint gets no new one."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privatevault.errors import IntegrityError
from privatevault.ledger import merkle
from privatevault.ledger.checkpoint import LocalSigner
from privatevault.ledger.checkpointer import Checkpointer, Policy
from privatevault.ledger.store import StoredCheckpoint


class Ledger:
    """Leaves in memory; every method call is counted."""

    def __init__(self) -> None:
        self.leaves: list[bytes] = []
        self.stored: list[StoredCheckpoint] = []
        self.calls: list[str] = []
        self.store = merkle.MemoryNodeStore()

    def add(self, count: int) -> None:
        new = [bytes([(len(self.leaves) + i) % 251]) * 32 for i in range(count)]
        self.store.put_many(merkle.append_leaves(len(self.leaves), [merkle.leaf_hash(n) for n in new], self.store))
        self.leaves += new

    def rewrite(self, index: int) -> None:
        """An insider changes one record and recomputes the whole tree."""
        self.leaves[index] = b"\xff" * 32
        self.store = merkle.MemoryNodeStore()
        self.store.put_many(merkle.append_leaves(0, [merkle.leaf_hash(n) for n in self.leaves], self.store))

    def size(self) -> int:
        self.calls.append("size")
        return len(self.leaves)

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        self.calls.append("latest")
        return self.stored[-1] if self.stored else None

    def root(self, size: int) -> bytes:
        return merkle.tree_root(size, self.store)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        return merkle.consistency_proof(old, new, self.store)

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        self.stored.append(checkpoint)
        return True


def make(ledger: Ledger, published: list[StoredCheckpoint]) -> Checkpointer:
    signer = LocalSigner("test", Ed25519PrivateKey.generate())
    return Checkpointer(
        ledger,
        [signer],
        origin="test",
        publish=published.append,  # type: ignore[arg-type]
        policy=Policy(every_records=10, every_seconds=3600),
    )


def test_issues_every_n_records_and_idles_on_one_query() -> None:
    ledger, published = Ledger(), []
    checkpointer = make(ledger, published)
    checkpointer.issue()
    ledger.add(9)
    ledger.calls.clear()
    assert checkpointer.tick() is None
    assert ledger.calls == ["size"]
    ledger.add(1)
    issued = checkpointer.tick()
    assert issued is not None and issued.size == 10
    assert [c.size for c in published] == [0, 10]


def test_no_checkpoint_over_an_inconsistent_tree() -> None:
    ledger, published = Ledger(), []
    checkpointer = make(ledger, published)
    ledger.add(16)
    checkpointer.issue()
    ledger.add(4)
    ledger.rewrite(3)
    with pytest.raises(IntegrityError, match="not consistent"):
        checkpointer.issue()
    assert [c.size for c in published] == [16]
