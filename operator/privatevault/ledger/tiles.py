"""The Merkle tree's stored hashes kept in memory in tiles, so that a proof is served without I/O.

A perfect-subtree hash never changes once its last leaf exists (:mod:`privatevault.ledger.merkle`),
so a copy of it is never stale. The read API keeps copies in *tiles*, as Go's
``golang.org/x/mod/sumdb/tlog`` does: tile ``(tier, index)`` holds the stored nodes of levels
``8·tier`` to ``8·tier + 7`` over the 256 level-``8·tier`` nodes ``[256·index, 256·index + 256)``,
510 hashes in all, read in one round trip. Tier 0 also holds each leaf's tenant (who may read its
proof). An inclusion proof touches one tile per tier, about three at a million records, so a
reader's proofs after the first come from memory.

A tile on the tree's right edge is *partial*: at each level it holds the nodes stored when it was
read (a prefix: perfect subtrees complete left to right). A proof that needs a node beyond that
prefix, because the tree grew since, reads the tile again. The tiles are kept in least-recently
used order within a budget of bytes; a tile costs about 19 KB, so the default 128 MiB keeps the
tiles of about 1.7 million records.

Pure: the tiles are read by a :class:`TileSource` (the ledger's reader), and every change to the
cache is made by its owner's thread (:meth:`ProofTiles.missing` and :meth:`ProofTiles.add` around
a read elsewhere).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from privatevault.ledger import merkle

#: Levels per tile, and the base nodes of a tile (2^HEIGHT).
HEIGHT = 8
WIDTH = 1 << HEIGHT
#: Hashes a complete tile holds: 256 + 128 + … + 2.
SLOTS = 2 * WIDTH - 2
_H = merkle.HASH_SIZE
#: Bytes a tile is charged beyond its hashes (objects, tuple, dict entry).
_OVERHEAD = 600
DEFAULT_BUDGET = 128 << 20

TileKey = tuple[int, int]


def offset(level: int) -> int:
    """The first slot of a tile's level ``level`` (0…7): levels are laid out bottom up."""
    return 2 * WIDTH - (2 * WIDTH >> level)


_OFFSETS = [offset(inner) for inner in range(HEIGHT)]
_MASKS = [(WIDTH >> inner) - 1 for inner in range(HEIGHT)]


def tile_of(key: merkle.NodeKey) -> tuple[TileKey, int, int]:
    """``((tier, index), level in the tile, slot)`` of a stored node."""
    level, idx = key
    tier, inner = divmod(level, HEIGHT)
    per = WIDTH >> inner
    index, position = divmod(idx, per)
    return (tier, index), inner, offset(inner) + position


def ranges(tier: int, index: int) -> list[tuple[int, int, int]]:
    """``(level, first idx, end idx)`` of each level of a tile: what to read for it."""
    return [
        (tier * HEIGHT + inner, index * (WIDTH >> inner), (index + 1) * (WIDTH >> inner)) for inner in range(HEIGHT)
    ]


@dataclass(frozen=True)
class Tile:
    """A tile as read: ``hashes`` at fixed slots (:func:`offset`), ``counts[l]`` of level ``l`` present
    (a prefix), and in tier 0 the tenant of each leaf read (a prefix too)."""

    hashes: bytes
    counts: tuple[int, ...]
    tenants: tuple[str, ...] = ()

    def has(self, inner: int, slot: int) -> bool:
        return slot - offset(inner) < self.counts[inner]

    def node(self, slot: int) -> bytes:
        return self.hashes[slot * _H : slot * _H + _H]

    @property
    def cost(self) -> int:
        return len(self.hashes) + 8 * len(self.tenants) + _OVERHEAD


def assemble(tier: int, index: int, nodes: Iterable[merkle.Node], tenants: Sequence[str] = ()) -> Tile:
    """A tile from the rows read for it (any order); a gap in a level's prefix ends it there."""
    found: dict[int, dict[int, bytes]] = {}
    for node in nodes:
        at, inner, slot = tile_of(node.key)
        if at != (tier, index) or len(node.hash) != _H:
            raise ValueError(f"node (level {node.level}, index {node.idx}) is not a hash of tile {tier}/{index}")
        found.setdefault(inner, {})[slot] = node.hash
    hashes = bytearray(SLOTS * _H)
    counts = []
    for inner in range(HEIGHT):
        level, first = found.get(inner, {}), offset(inner)
        count = 0
        while count < WIDTH >> inner and first + count in level:
            slot = first + count
            hashes[slot * _H : slot * _H + _H] = level[slot]
            count += 1
        counts.append(count)
    return Tile(bytes(hashes), tuple(counts), tuple(tenants))


class TileSource(Protocol):
    def tile(self, tier: int, index: int) -> Tile:
        """The tile as stored now (one round trip; tier 0 with its leaves' tenants)."""
        ...


@dataclass(frozen=True)
class Proof:
    """What the read API answers for a leaf: its tenant, leaf hash and audit path at ``size``."""

    index: int
    size: int
    tenant: str
    leaf_hash: bytes
    hashes: list[bytes]


class ProofTiles:
    """Tiles in least-recently used order within ``budget`` bytes, and the part of the audit paths
    every leaf of a perfect block shares, hashed once per tree size."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self._tiles: OrderedDict[TileKey, Tile] = OrderedDict()
        self._bytes = 0
        self._size = -1
        self._blocks: list[tuple[int, int]] = []
        self._starts: list[int] = []
        self._uppers: dict[int, list[bytes]] = {}

    def __len__(self) -> int:
        return len(self._tiles)

    @property
    def kept_bytes(self) -> int:
        return self._bytes

    def _block(self, index: int, size: int) -> tuple[int, int]:
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} is not in a tree of size {size}")
        if size != self._size:
            self._blocks = merkle.perfect_blocks(size)
            self._starts = [start for start, _ in self._blocks]
            self._uppers, self._size = {}, size
        return self._blocks[bisect.bisect_right(self._starts, index) - 1]

    def _node(self, key: merkle.NodeKey, read: Mapping[TileKey, Tile]) -> bytes | None:
        at, inner, slot = tile_of(key)
        tile = read.get(at) or self._tiles.get(at)
        return tile.node(slot) if tile is not None and tile.has(inner, slot) else None

    def missing(self, index: int, size: int) -> list[TileKey]:
        """The tiles to read before :meth:`proof` can answer for leaf ``index`` at ``size``."""
        start, level = self._block(index, size)
        keys = [(0, index)] + [(lvl, (index >> lvl) ^ 1) for lvl in range(level)]
        if start not in self._uppers:
            keys += [key for folded in merkle.upper_plan(start, level, size) for key in folded]
        wanted: dict[TileKey, None] = {}
        for key in keys:
            at, inner, slot = tile_of(key)
            tile = self._tiles.get(at)
            if tile is None or not tile.has(inner, slot):
                wanted[at] = None
        leaf = self._tiles.get((0, index >> HEIGHT))
        if leaf is None or index & (WIDTH - 1) >= len(leaf.tenants):
            wanted[(0, index >> HEIGHT)] = None
        return list(wanted)

    def proof(self, index: int, size: int, read: Mapping[TileKey, Tile] | None = None) -> Proof | None:
        """Leaf ``index``'s proof at ``size`` from memory and the tiles just ``read``; None when a
        tile or a node in it is missing (:meth:`missing` names what to read)."""
        read = read or {}
        start, level = self._block(index, size)
        upper = self._uppers.get(start)
        if upper is None:
            upper = []
            for folded in merkle.upper_plan(start, level, size):
                found = [self._node(key, read) for key in folded]
                if None in found:
                    return None
                upper.append(merkle.fold(cast(list[bytes], found)))
            self._uppers[start] = upper
        tiles, path = self._tiles, []
        hashes, counts = b"", (0,) * HEIGHT
        for lvl in range(level):
            inner = lvl & (HEIGHT - 1)
            if inner == 0:  # the tile of this tier: one per 8 levels
                at = (lvl >> 3, index >> (lvl + HEIGHT))
                tile = read.get(at) or tiles.get(at)
                if tile is None:
                    return None
                if at in tiles:
                    tiles.move_to_end(at)
                hashes, counts = tile.hashes, tile.counts
            position = ((index >> lvl) ^ 1) & _MASKS[inner]
            if position >= counts[inner]:
                return None
            slot = (_OFFSETS[inner] + position) * _H
            path.append(hashes[slot : slot + _H])
        at, position = (0, index >> HEIGHT), index & (WIDTH - 1)
        leaf = read.get(at) or tiles.get(at)
        if leaf is None or position >= min(len(leaf.tenants), leaf.counts[0]):
            return None
        return Proof(index, size, leaf.tenants[position], leaf.node(position), path + upper)

    def add(self, tiles: Mapping[TileKey, Tile]) -> None:
        """Keep tiles just read (replacing older reads of them), then drop the least recently used
        beyond the budget (never those just added)."""
        for key, tile in tiles.items():
            old = self._tiles.pop(key, None)
            if old is not None:
                self._bytes -= old.cost
            self._tiles[key] = tile
            self._bytes += tile.cost
        while self._bytes > self.budget and len(self._tiles) > len(tiles):
            _, dropped = self._tiles.popitem(last=False)
            self._bytes -= dropped.cost


def read(source: TileSource, keys: Iterable[TileKey]) -> dict[TileKey, Tile]:
    """The tiles ``keys`` as stored now (in a worker thread: the cache is not touched)."""
    return {(tier, index): source.tile(tier, index) for tier, index in keys}
