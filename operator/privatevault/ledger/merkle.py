"""The RFC 6962 / RFC 9162 Merkle tree over the ledger's record hashes, stored so proofs are cheap.

The leaves are the 32-byte record hashes of the hash chain, in sequence order; leaf ``i`` is the
record with ``seq = i + 1``. Hashing follows RFC 9162 §2.1: SHA-256, leaf hash
``H(0x00 ‖ record hash)``, interior node ``H(0x01 ‖ left ‖ right)``, the empty tree ``H("")``.

Why a store of perfect subtrees: a tree head, an inclusion proof or a consistency proof at any
size is made of RFC 9162 subtree hashes ``MTH(D[a:b])``, and every such subtree is a run of at
most ~log2(n) *perfect* subtrees (a power-of-two number of leaves, aligned to its size). So the
only hashes ever stored are those of perfect subtrees, addressed by ``(level, index)``: node
``(L, i)`` is the hash of leaves ``[i·2^L, (i+1)·2^L)`` and level 0 holds the leaf hashes. A
perfect node never changes once its last leaf exists, so the store is append-only like the
records themselves; it holds about 2n hashes for n leaves (the same layout as Go's
``golang.org/x/mod/sumdb/tlog`` "stored hashes").

Every operation against a store runs in three steps: list the keys it needs (``*_keys``), read
them in one batched :meth:`NodeStore.get_many`, compute. A root needs at most ~log2(n) keys, an
inclusion or consistency proof at most ~2·log2(n); appending k leaves needs only the perfect
nodes on the tree's right edge that the new leaves complete (:func:`append_leaves`), and returns
the O(k + log n) new nodes for the caller to write in the same transaction as the records.

The verifiers are literal transcriptions of RFC 9162 §2.1.3.2 and §2.1.4.2 and take no store:
they are what an auditor runs offline.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol

from privatevault.errors import PrivateVaultError

HASH_SIZE = 32
#: MTH({}) — the root of the empty tree (RFC 9162 §2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()

#: ``(level, index)``: the perfect subtree over leaves ``[index·2^level, (index+1)·2^level)``.
NodeKey = tuple[int, int]
#: A half-open leaf range ``[start, end)`` whose RFC 9162 subtree hash a proof needs.
_Range = tuple[int, int]


class Node(NamedTuple):
    """One perfect-subtree hash, as written to a :class:`NodeStore`: a row ``(level, idx, hash)``.

    ``idx`` is the node's index within its level (``index`` would shadow ``tuple.index``).
    """

    level: int
    idx: int
    hash: bytes

    @property
    def key(self) -> NodeKey:
        return self.level, self.idx


class NodeStore(Protocol):
    """Where perfect-subtree hashes are kept (memory here; a Postgres table in the ledger)."""

    def get_many(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        """The hashes of those of ``keys`` that are stored, in one round trip."""
        ...


class MissingNodes(PrivateVaultError):
    """The store lacks hashes a computation needs: the node table is behind the records."""

    def __init__(self, keys: Iterable[NodeKey]) -> None:
        self.keys = sorted(keys)
        shown = ", ".join(f"(level {level}, index {index})" for level, index in self.keys[:5])
        more = f" and {len(self.keys) - 5} more" if len(self.keys) > 5 else ""
        super().__init__(
            f"the Merkle node store lacks {shown}{more}; append the missing leaves before asking for this size"
        )


class MemoryNodeStore:
    """A :class:`NodeStore` in a dict, for tests, benchmarks and offline verification.

    It counts batched reads so tests can hold the O(log n) promise, and refuses to overwrite a
    node with a different hash, as the append-only table does.
    """

    def __init__(self) -> None:
        self._nodes: dict[NodeKey, bytes] = {}
        self.reads = 0
        self.keys_read = 0

    def __len__(self) -> int:
        return len(self._nodes)

    def get_many(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        self.reads += 1
        self.keys_read += len(keys)
        return {key: self._nodes[key] for key in keys if key in self._nodes}

    def put_many(self, nodes: Iterable[Node]) -> None:
        for node in nodes:
            if self._nodes.setdefault(node.key, node.hash) != node.hash:
                raise ValueError(f"node (level {node.level}, index {node.idx}) is already stored with another hash")


# -- hashing ----------------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """``H(0x00 ‖ data)``: the hash of one leaf (for the ledger, ``data`` is a record hash)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``H(0x01 ‖ left ‖ right)``: the hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def fold(hashes: Sequence[bytes]) -> bytes:
    """The MTH of an aligned range from its perfect parts, left to right, largest first."""
    digest = hashes[-1]
    for left in reversed(hashes[:-1]):
        digest = node_hash(left, digest)
    return digest


# -- which perfect subtrees a computation needs -----------------------------------------------


def _split(size: int) -> int:
    """RFC 9162's k: the largest power of two smaller than ``size`` (``size`` ≥ 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def _range_keys(start: int, end: int) -> list[NodeKey]:
    """The perfect subtrees that tile ``[start, end)``, left to right.

    Every range the RFC 9162 recursion visits starts at a multiple of the smallest power of two
    ≥ its size, so greedy tiling by the size's binary digits, largest first, gives aligned
    perfect subtrees whose right fold is exactly ``MTH(D[start:end])``.
    """
    size = end - start
    assert size > 0 and start % (1 << (size - 1).bit_length()) == 0, (start, end)
    keys: list[NodeKey] = []
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            keys.append((level, start >> level))
            start += 1 << level
    return keys


def _inclusion_ranges(index: int, size: int) -> list[_Range]:
    """The subtrees of RFC 9162 §2.1.3.1 ``PATH(index, D[size])``, leaf side first."""
    ranges: list[_Range] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()
    return ranges


def _consistency_ranges(old_size: int, new_size: int) -> list[_Range]:
    """The subtrees of RFC 9162 §2.1.4.1 ``PROOF(old_size, D[new_size])``, deepest first."""
    ranges: list[_Range] = []
    lo, hi, whole = 0, new_size, True
    while old_size != hi:
        k = _split(hi - lo)
        if old_size <= lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, whole = lo + k, False
    if not whole:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def _check_inclusion_args(index: int, size: int) -> None:
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")


def _check_consistency_args(old_size: int, new_size: int) -> None:
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}: sizes must not shrink")


def _unique(ranges: Iterable[_Range]) -> list[NodeKey]:
    return list(dict.fromkeys(key for start, end in ranges for key in _range_keys(start, end)))


def root_keys(size: int) -> list[NodeKey]:
    """The perfect subtrees whose hashes make the root at ``size``: the tree's right frontier."""
    if size < 0:
        raise ValueError(f"tree size {size} is negative")
    return _range_keys(0, size) if size else []


def inclusion_proof_keys(index: int, size: int) -> list[NodeKey]:
    """The perfect subtrees an inclusion proof for leaf ``index`` at ``size`` is made of."""
    _check_inclusion_args(index, size)
    return _unique(_inclusion_ranges(index, size))


def consistency_proof_keys(old_size: int, new_size: int) -> list[NodeKey]:
    """The perfect subtrees a consistency proof from ``old_size`` to ``new_size`` is made of."""
    _check_consistency_args(old_size, new_size)
    if old_size in (0, new_size):
        return []
    return _unique(_consistency_ranges(old_size, new_size))


# -- computing from a store -------------------------------------------------------------------


def _read(store: NodeStore, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
    """One batched read; every key must be there."""
    if not keys:
        return {}
    found = store.get_many(keys)
    missing = [key for key in keys if key not in found]
    if missing:
        raise MissingNodes(missing)
    return found


def _subtree_hashes(store: NodeStore, ranges: Sequence[_Range]) -> list[bytes]:
    found = _read(store, _unique(ranges))
    return [fold([found[key] for key in _range_keys(start, end)]) for start, end in ranges]


def tree_root(size: int, store: NodeStore) -> bytes:
    """``MTH(D[size])`` from the stored perfect subtrees (one read of ≤ log2(size)+1 keys)."""
    keys = root_keys(size)
    if not keys:
        return EMPTY_ROOT
    found = _read(store, keys)
    return fold([found[key] for key in keys])


def inclusion_proof(index: int, size: int, store: NodeStore) -> list[bytes]:
    """RFC 9162 §2.1.3.1 audit path for leaf ``index`` in the tree of ``size`` leaves."""
    _check_inclusion_args(index, size)
    return _subtree_hashes(store, _inclusion_ranges(index, size))


def upper_plan(start: int, level: int, size: int) -> list[list[NodeKey]]:
    """The part of an audit path at ``size`` above the perfect block ``(start, level)`` of
    :func:`perfect_blocks` (the same for every leaf of the block): for each of its hashes, the
    perfect subtrees it is folded from (:func:`fold`). Below it, leaf ``i``'s path is the single
    nodes ``(l, (i >> l) ^ 1)`` for ``l < level``."""
    end = start + (1 << level)
    return [_range_keys(lo, hi) for lo, hi in _inclusion_ranges(start, size) if not (start <= lo and hi <= end)]


def perfect_blocks(size: int) -> list[tuple[int, int]]:
    """``(start, level)`` of the perfect subtrees tiling ``[0, size)``, largest first."""
    blocks, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            blocks.append((start, level))
            start += 1 << level
    return blocks


def inclusion_proofs(indexes: Sequence[int], size: int, store: NodeStore) -> list[list[bytes]]:
    """The inclusion proofs of many leaves at one size, from one read of the nodes they need.

    A leaf's path is the siblings inside the perfect subtree of ``size``'s tiling that holds it
    (single stored nodes), then the subtrees above that block, which every leaf of the block
    shares: those are hashed once per batch. Equal to :func:`inclusion_proof` leaf by leaf; what
    an evidence bundle uses to prove every record of a window.
    """
    blocks = perfect_blocks(size)
    starts = [start for start, _ in blocks]
    uppers: dict[int, list[_Range]] = {}
    placed = []
    for index in indexes:
        _check_inclusion_args(index, size)
        start, level = blocks[bisect.bisect_right(starts, index) - 1]
        if start not in uppers:
            end = start + (1 << level)
            uppers[start] = [r for r in _inclusion_ranges(start, size) if not (start <= r[0] and r[1] <= end)]
        placed.append((index, start, level))
    tiles = {r: _range_keys(*r) for upper in uppers.values() for r in upper}
    wanted = {key for keys in tiles.values() for key in keys}
    wanted.update((lvl, (index >> lvl) ^ 1) for index, _, level in placed for lvl in range(level))
    found = _read(store, list(wanted))
    hashes = {r: fold([found[key] for key in keys]) for r, keys in tiles.items()}
    return [
        [found[(lvl, (index >> lvl) ^ 1)] for lvl in range(level)] + [hashes[r] for r in uppers[start]]
        for index, start, level in placed
    ]


def block_paths(size: int, store: NodeStore) -> dict[int, list[bytes]]:
    """The part above its block of every inclusion proof at ``size``, by the block's level.

    The leaves ``[0, size)`` are tiled by perfect blocks, one per set bit of ``size``; a leaf's
    path is its siblings inside its block (single stored nodes), then these subtrees, the same
    for every leaf of the block. One read of the nodes they are folded from.
    """
    uppers = {
        level: [r for r in _inclusion_ranges(start, size) if not (start <= r[0] and r[1] <= start + (1 << level))]
        for start, level in perfect_blocks(size)
    }
    hashes = iter(_subtree_hashes(store, [r for ranges in uppers.values() for r in ranges]))
    return {level: [next(hashes) for _ in ranges] for level, ranges in uppers.items()}


def consistency_proof(old_size: int, new_size: int, store: NodeStore) -> list[bytes]:
    """RFC 9162 §2.1.4.1 consistency proof; empty when ``old_size`` is 0 or equals ``new_size``."""
    _check_consistency_args(old_size, new_size)
    if old_size in (0, new_size):
        return []
    return _subtree_hashes(store, _consistency_ranges(old_size, new_size))


# -- growing the tree -------------------------------------------------------------------------


def _grow(size: int, frontier: dict[NodeKey, bytes], leaf_hashes: Sequence[bytes], out: list[Node] | None) -> None:
    """Add leaves at ``size``, ``size+1``…, merging each new right child with its left sibling.

    ``frontier`` holds the perfect roots waiting for a right sibling; on return it holds exactly
    the right frontier of the grown tree. Each completed node is appended to ``out`` when given.
    """
    for offset, leaf in enumerate(leaf_hashes):
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"leaf hash at position {size + offset} has {len(leaf)} bytes, not {HASH_SIZE}")
        level, index, digest = 0, size + offset, leaf
        if out is not None:
            out.append(Node(level, index, digest))
        while index & 1:
            digest = node_hash(frontier.pop((level, index - 1)), digest)
            level, index = level + 1, index >> 1
            if out is not None:
                out.append(Node(level, index, digest))
        frontier[(level, index)] = digest


def append_keys(size: int, count: int) -> list[NodeKey]:
    """The frontier nodes that appending ``count`` leaves to a tree of ``size`` leaves completes."""
    # Frontier node (L, i) is merged once its right sibling (L, i+1) is complete, that is once
    # the new size reaches the sibling's end, (i+2)·2^L; the others stay on the frontier unread.
    return [(level, index) for level, index in root_keys(size) if size + count >= (index + 2) << level]


def append_leaves(size: int, leaf_hashes: Sequence[bytes], store: NodeStore) -> list[Node]:
    """Every perfect node completed by appending ``leaf_hashes`` at positions ``size``, ``size+1``….

    ``leaf_hashes`` are leaf hashes (:func:`leaf_hash` of each record hash), not record hashes.
    The store is only read (one batched read of at most log2(size)+1 frontier nodes); the caller
    writes the returned nodes, in the same transaction as the records they cover.
    """
    if not leaf_hashes:
        return []
    frontier = _read(store, append_keys(size, len(leaf_hashes)))
    nodes: list[Node] = []
    _grow(size, frontier, leaf_hashes, nodes)
    return nodes


def frontier(size: int, store: NodeStore) -> dict[NodeKey, bytes]:
    """The right frontier of the tree of ``size`` leaves (:func:`root_keys`), in one batched read."""
    return _read(store, root_keys(size))


def grow(size: int, frontier: dict[NodeKey, bytes], leaf_hashes: Sequence[bytes]) -> list[Node]:
    """Every perfect node completed by appending ``leaf_hashes`` at ``size``, ``size+1``…, from
    the tree's whole right frontier (:func:`frontier`), which becomes the grown tree's."""
    nodes: list[Node] = []
    _grow(size, frontier, leaf_hashes, nodes)
    return nodes


def root(leaves: Sequence[bytes]) -> bytes:
    """``MTH(D[n])`` of RFC 9162 §2.1.1 over the leaf data (record hashes), in memory."""
    if not leaves:
        return EMPTY_ROOT
    frontier: dict[NodeKey, bytes] = {}
    _grow(0, frontier, [leaf_hash(leaf) for leaf in leaves], None)
    return fold([frontier[key] for key in root_keys(len(leaves))])


# -- verifying (RFC 9162 §2.1.3.2 and §2.1.4.2, no store) -------------------------------------


def _sizes_ok(*hashes: bytes) -> bool:
    return all(len(digest) == HASH_SIZE for digest in hashes)


def _shift_while_even(fn: int, sn: int) -> tuple[int, int]:
    """Right-shift both until LSB(fn) is set or fn is 0 (the "equally" steps of the RFC)."""
    while fn and not fn & 1:
        fn, sn = fn >> 1, sn >> 1
    return fn, sn


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` put ``leaf_hash`` at ``index`` under ``root`` at ``size``?"""
    if not 0 <= index < size or not _sizes_ok(leaf_hash, root, *proof):
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                fn, sn = _shift_while_even(fn, sn)
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: is the tree ``old_root`` at ``old_size`` a prefix of ``new_root``?

    Outside the RFC's 0 < old < new: equal sizes need equal roots and an empty proof; the empty
    tree is a prefix of every tree (with an empty proof and the empty root).
    """
    if not 0 <= old_size <= new_size or not _sizes_ok(old_root, new_root, *proof):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                fn, sn = _shift_while_even(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old_root and sr == new_root and sn == 0
