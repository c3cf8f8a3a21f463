"""Proofs from tiles in memory equal the store's proofs at every size, read each tile once, follow the
tree as it grows, and stay within their byte budget."""

from __future__ import annotations

import pytest

from privatevault.ledger import merkle
from privatevault.ledger.tiles import SLOTS, WIDTH, ProofTiles, Tile, TileKey, assemble, ranges, read, tile_of
from tests.unit.test_merkle import _rng, grow, records

# 66,000 leaves: complete and partial tiles in tiers 0 and 1, a partial tile in tier 2 (level 16).
LEAVES = records(66_000, seed=7)
STORE = grow(LEAVES, seed=3)
ROOTS: dict[int, bytes] = {}


def tenant(index: int) -> str:
    return ("acme", "globex", "")[index % 3]


class Source:
    """The store's nodes as the ledger's reader gives them, up to ``size`` leaves stored."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.reads: list[TileKey] = []

    def tile(self, tier: int, index: int) -> Tile:
        self.reads.append((tier, index))
        nodes = []
        for level, first, end in ranges(tier, index):
            for idx in range(first, end):
                if (idx + 1) << level <= self.size:  # stored once its last leaf is
                    nodes.append(merkle.Node(level, idx, STORE.get_many([(level, idx)])[(level, idx)]))
        _rng(index).shuffle(nodes)
        named = [tenant(i) for i in range(index * WIDTH, min((index + 1) * WIDTH, self.size))] if tier == 0 else []
        return assemble(tier, index, nodes, named)


def root(size: int) -> bytes:
    if size not in ROOTS:
        ROOTS[size] = merkle.tree_root(size, STORE)
    return ROOTS[size]


def prove(tiles: ProofTiles, index: int, size: int, source: Source) -> None:
    """Serve a proof as the read API does (memory, else read what is missing), and check it."""
    found = tiles.proof(index, size)
    if found is None:
        loaded = read(source, tiles.missing(index, size))
        found = tiles.proof(index, size, loaded)
        tiles.add(loaded)
    assert found is not None
    assert found.hashes == merkle.inclusion_proof(index, size, STORE)
    assert found.leaf_hash == merkle.leaf_hash(LEAVES[index]) and found.tenant == tenant(index)
    assert merkle.verify_inclusion(found.leaf_hash, index, size, found.hashes, root(size))


@pytest.mark.parametrize("size", [1, 2, 3, 255, 256, 257, 511, 4097, 65_536, 65_537, 66_000])
def test_proofs_equal_the_stores_at_every_size(size: int) -> None:
    tiles, source = ProofTiles(), Source(size)
    rng = _rng(size)
    for index in {0, size - 1, size // 2, *(rng.randrange(size) for _ in range(40))}:
        prove(tiles, index, size, source)


def test_a_tile_is_read_once_and_shared_by_its_leaves() -> None:
    tiles, source = ProofTiles(), Source(66_000)
    prove(tiles, 300, 66_000, source)
    first = list(source.reads)
    assert (0, 1) in first and len(first) == len(set(first))
    for index in range(256, 512):
        prove(tiles, index, 66_000, source)
    assert source.reads == first  # every other leaf of tile 0/1 from memory
    assert tiles.missing(400, 66_000) == []


def test_a_partial_tile_is_read_again_once_the_tree_has_grown() -> None:
    tiles = ProofTiles()
    prove(tiles, 65_600, 65_700, Source(65_700))
    grown = Source(66_000)
    assert tiles.proof(65_900, 66_000) is None  # beyond what the right edge's tiles held
    assert (0, 65_900 // WIDTH) in tiles.missing(65_900, 66_000)
    prove(tiles, 65_900, 66_000, grown)
    assert grown.reads  # read again, now with the new nodes
    reads = len(grown.reads)
    prove(tiles, 65_950, 66_000, grown)
    assert len(grown.reads) == reads  # the tiles read again answer for the other leaves as well


def test_the_budget_bounds_the_tiles_kept() -> None:
    budget = 3 * (SLOTS * merkle.HASH_SIZE + 8 * WIDTH + 600)
    tiles, source = ProofTiles(budget), Source(66_000)
    rng = _rng(5)
    for _ in range(60):
        prove(tiles, rng.randrange(66_000), 66_000, source)
        assert tiles.kept_bytes <= budget + 3 * (SLOTS * merkle.HASH_SIZE + 8 * WIDTH + 600)
        assert len(tiles) <= 6
    assert len(source.reads) > 60  # evicted tiles were read again


def test_a_tile_assembles_only_its_own_prefix() -> None:
    level, idx = 3, 40  # tier 0, tile 1 (level 3 holds 32 nodes per tile)
    assert tile_of((level, idx)) == ((0, 1), 3, 2 * WIDTH - (2 * WIDTH >> 3) + 8)
    nodes = [merkle.Node(0, i, bytes([i % 256]) * 32) for i in (256, 257, 259)]  # 258 missing
    tile = assemble(0, 1, nodes, ["acme", "acme", "acme"])
    assert tile.counts[0] == 2 and tile.has(0, 1) and not tile.has(0, 3)
    with pytest.raises(ValueError, match="not a hash of tile"):
        assemble(0, 0, nodes)


def test_an_index_outside_the_tree_is_refused() -> None:
    with pytest.raises(ValueError, match="not in a tree of size"):
        ProofTiles().missing(10, 10)
