"""MCS levels in a real PostgreSQL: 100 tenants allocating at once from several threads get 100
distinct levels, a level asked for by hand that another tenant holds (or once held) is refused,
and a released level is never handed out again."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from privatevault.database import open_pool
from privatevault.errors import SpecError
from privatevault.ledger.schema import Database
from privatevault.mcs import parse
from privatevault.mcs.store import LevelStore

pytestmark = pytest.mark.integration


def allocate(store: LevelStore, uid: str, requested: str | None = None) -> str:
    return str(
        store.allocate(
            tenant=f"t-{uid}",
            tenant_uid=uid,
            confidentiality="Confidential",
            integrity="High",
            compartments=["payments"],
            requested=requested,
        ).level
    )


@pytest.fixture
def store(database: Database) -> Iterator[LevelStore]:
    """The store on a pool of its own, as the composition root gives it one (shared with the ledger)."""
    pool = open_pool(database.operator_dsn, max_size=4)
    yield LevelStore(pool)
    pool.close()


def test_concurrent_allocations_are_distinct(store: LevelStore) -> None:
    levels: dict[str, str] = {}

    def worker(first: int) -> None:
        for n in range(first, 100, 4):
            levels[f"uid-{n}"] = allocate(store, f"uid-{n}")

    threads = [threading.Thread(target=worker, args=(first,)) for first in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(levels) == 100 and len(set(levels.values())) == 100
    assert allocate(store, "uid-7") == levels["uid-7"]  # idempotent per tenant uid


def test_hand_set_level_collisions_and_tombstones(store: LevelStore) -> None:
    assert allocate(store, "a", requested="s0:c9,c3") == "s0:c3,c9"
    with pytest.raises(SpecError, match="taken by another tenant") as caught:
        allocate(store, "b", requested="s0:c3,c9")
    assert caught.value.reason == "MCSConflict"
    store.release("a")
    with pytest.raises(SpecError, match="never reused"):
        allocate(store, "c", requested="s0:c3,c9")
    found = store.find("a")
    assert found is not None and found.released and found.level == parse("s0:c3,c9")
