"""The Merkle tree equals RFC 9162 and Go's sumdb/tlog, and proves from one O(log n) read."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from privatevault.ledger.merkle import (
    EMPTY_ROOT,
    MemoryNodeStore,
    MissingNodes,
    Node,
    append_leaves,
    consistency_proof,
    consistency_proof_keys,
    inclusion_proof,
    inclusion_proof_keys,
    inclusion_proofs,
    leaf_hash,
    root,
    root_keys,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from tests import gotools

# -- RFC 9162 §2.1.1 to §2.1.4, transcribed literally: the reference the fast code must equal


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return _sha(b"\x00" + d[0])
    k = _k(n)
    return _sha(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


# -- fixtures ---------------------------------------------------------------------------------


def _rng(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible test data, not keys


def records(n: int, *, seed: int = 0) -> list[bytes]:
    """Stand-ins for n record hashes (the tree's leaf data)."""
    return [_sha(f"record {seed}/{i}".encode()) for i in range(n)]


def grow(leaves: Sequence[bytes], *, seed: int = 1) -> MemoryNodeStore:
    """A store filled through the appender, in batches of random size."""
    store, size, rng = MemoryNodeStore(), 0, _rng(seed)
    while size < len(leaves):
        batch = [leaf_hash(leaf) for leaf in leaves[size : size + rng.randint(1, 17)]]
        store.put_many(append_leaves(size, batch, store))
        size += len(batch)
    return store


SMALL = range(1, 71)
LEAVES_70 = records(70)
STORE_70 = grow(LEAVES_70)


# -- equality with the reference --------------------------------------------------------------


def test_root_of_empty_tree_is_hash_of_nothing() -> None:
    assert root([]) == EMPTY_ROOT == _sha(b"") == tree_root(0, MemoryNodeStore())


@pytest.mark.parametrize("n", SMALL)
def test_root_equals_reference(n: int) -> None:
    expected = ref_mth(LEAVES_70[:n])
    assert root(LEAVES_70[:n]) == expected
    assert tree_root(n, STORE_70) == expected


@pytest.mark.parametrize("n", SMALL)
def test_inclusion_proofs_equal_reference_and_verify(n: int) -> None:
    leaves, head = LEAVES_70[:n], ref_mth(LEAVES_70[:n])
    for index in range(n):
        proof = inclusion_proof(index, n, STORE_70)
        assert proof == ref_path(index, leaves), (index, n)
        assert verify_inclusion(leaf_hash(leaves[index]), index, n, proof, head)


@pytest.mark.parametrize("n", SMALL)
def test_consistency_proofs_equal_reference_and_verify(n: int) -> None:
    leaves, head = LEAVES_70[:n], ref_mth(LEAVES_70[:n])
    for old in range(1, n):
        proof = consistency_proof(old, n, STORE_70)
        assert proof == ref_proof(old, leaves), (old, n)
        assert verify_consistency(old, n, ref_mth(leaves[:old]), head, proof)


@pytest.mark.parametrize("n", [1000, 4097])
def test_large_trees_equal_reference(n: int) -> None:
    leaves, rng = records(n, seed=n), _rng(n)
    store, head = grow(leaves, seed=n), ref_mth(leaves)
    assert tree_root(n, store) == root(leaves) == head
    for index in [0, n - 1, n // 2, *rng.sample(range(n), 25)]:
        proof = inclusion_proof(index, n, store)
        assert proof == ref_path(index, leaves)
        assert verify_inclusion(leaf_hash(leaves[index]), index, n, proof, head)
    for old in [1, n - 1, 512, *rng.sample(range(1, n), 25)]:
        proof = consistency_proof(old, n, store)
        assert proof == ref_proof(old, leaves)
        assert verify_consistency(old, n, ref_mth(leaves[:old]), head, proof)


def test_trivial_consistency_is_empty_and_checked() -> None:
    head = tree_root(5, STORE_70)
    assert consistency_proof(5, 5, STORE_70) == consistency_proof(0, 5, STORE_70) == []
    assert verify_consistency(5, 5, head, head, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, head, [])
    assert not verify_consistency(5, 5, head, tree_root(6, STORE_70), [])
    assert not verify_consistency(0, 5, head, head, [])
    assert not verify_consistency(6, 5, head, head, [])


# -- storage: what is stored, and how much is read --------------------------------------------


def test_store_holds_exactly_the_perfect_subtrees() -> None:
    n = 70
    expected = {
        (level, index): ref_mth(LEAVES_70[index << level : (index + 1) << level])
        for level in range(n.bit_length())
        for index in range(n >> level)
    }
    assert STORE_70.get_many(list(expected)) == expected
    assert len(STORE_70) == len(expected)


def test_batch_and_one_by_one_appends_store_the_same_nodes() -> None:
    one_by_one = MemoryNodeStore()
    for size, leaf in enumerate(LEAVES_70):
        one_by_one.put_many(append_leaves(size, [leaf_hash(leaf)], one_by_one))
    at_once = MemoryNodeStore()
    at_once.put_many(append_leaves(0, [leaf_hash(leaf) for leaf in LEAVES_70], at_once))
    keys = [(level, index) for level in range(7) for index in range(70 >> level)]
    assert one_by_one.get_many(keys) == at_once.get_many(keys) == STORE_70.get_many(keys)


@pytest.mark.parametrize("n", [1, 2, 3, 1000, 4097, 1_000_000, 2**40 - 1])
def test_proofs_need_one_read_of_logarithmically_many_keys(n: int) -> None:
    assert len(root_keys(n)) <= n.bit_length()
    for index in {0, n // 3, n - 1}:
        assert len(inclusion_proof_keys(index, n)) <= 2 * n.bit_length()
    for old in {1, n // 3, n - 1} - {0}:
        assert len(consistency_proof_keys(old, n)) <= 2 * n.bit_length()


def test_each_operation_reads_the_store_once() -> None:
    store = grow(records(1000))
    for operation in (
        lambda: tree_root(1000, store),
        lambda: inclusion_proof(377, 1000, store),
        lambda: consistency_proof(333, 1000, store),
        lambda: append_leaves(1000, [leaf_hash(b"x" * 32)] * 24, store),
    ):
        before = store.reads
        operation()
        assert store.reads == before + 1


def test_appending_reads_only_the_frontier_it_completes() -> None:
    store = grow(records(1000))  # 1000 = 512 + 256 + 128 + 64 + 32 + 8
    before = store.keys_read
    append_leaves(1000, [leaf_hash(b"x" * 32)] * 8, store)  # completes 1008 = ... + 16: merges the 8
    assert store.keys_read - before == 1
    append_leaves(1000, [leaf_hash(b"x" * 32)] * 7, store)  # completes no frontier node: nothing to read
    assert store.keys_read - before == 1


def test_a_missing_node_is_reported_not_guessed() -> None:
    store = grow(records(10))
    with pytest.raises(MissingNodes, match="level 0, index 10"):
        inclusion_proof(3, 11, store)


def test_nodes_once_written_never_change() -> None:
    store = grow(records(4))
    with pytest.raises(ValueError, match="already stored"):
        store.put_many([Node(1, 0, leaf_hash(b"y" * 32))])


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        inclusion_proof(5, 5, STORE_70)
    with pytest.raises(ValueError):
        consistency_proof(6, 5, STORE_70)
    with pytest.raises(ValueError, match="32"):
        append_leaves(70, [b"short"], STORE_70)


# -- verification refuses what is wrong -------------------------------------------------------
# The tree size is not tampered with on its own here: a proof is checked against the (size, root)
# pair of a signed checkpoint, and RFC 9162 uses the size only for the shape of the path, which
# neighbouring sizes can share (leaf 0 has the same path at sizes 3 and 4). A wrong size with
# its own root is the "wrong root" case.


def _flip(digest: bytes, bit: int = 0) -> bytes:
    return bytes([digest[0] ^ (1 << bit), *digest[1:]])


@pytest.mark.parametrize("n", range(1, 34))
def test_inclusion_verification_refuses_tampering(n: int) -> None:
    leaves, head = LEAVES_70[:n], tree_root(n, STORE_70)
    for index in range(n):
        proof, leaf = inclusion_proof(index, n, STORE_70), leaf_hash(leaves[index])
        assert verify_inclusion(leaf, index, n, proof, head)
        assert not verify_inclusion(_flip(leaf), index, n, proof, head), "wrong leaf"
        assert not verify_inclusion(leaves[index], index, n, proof, head), "record hash given as leaf hash"
        assert not verify_inclusion(leaf, index, n, proof, _flip(head)), "wrong root"
        for other in range(n + 2):
            if other != index:
                assert not verify_inclusion(leaf, other, n, proof, head), f"wrong index {other}"
        assert not verify_inclusion(leaf, index, index, proof, head), "index outside the tree"
        for i in range(len(proof)):
            tampered = [*proof[:i], _flip(proof[i], 7), *proof[i + 1 :]]
            assert not verify_inclusion(leaf, index, n, tampered, head), f"element {i} tampered"
        if proof:
            assert not verify_inclusion(leaf, index, n, proof[:-1], head), "truncated"
            assert not verify_inclusion(leaf, index, n, proof[1:], head), "first element dropped"
            assert not verify_inclusion(leaf, index, n, [*proof[:-1], proof[-1][:31]], head), "short element"
        assert not verify_inclusion(leaf, index, n, [*proof, head], head), "extended"


@pytest.mark.parametrize("n", range(2, 34))
def test_consistency_verification_refuses_tampering(n: int) -> None:
    head = tree_root(n, STORE_70)
    for old in range(1, n):
        proof, old_head = consistency_proof(old, n, STORE_70), tree_root(old, STORE_70)
        assert verify_consistency(old, n, old_head, head, proof)
        assert not verify_consistency(old, n, _flip(old_head), head, proof), "wrong old root"
        assert not verify_consistency(old, n, old_head, _flip(head), proof), "wrong new root"
        for wrong_old in set(range(1, n)) - {old}:
            assert not verify_consistency(wrong_old, n, old_head, head, proof), f"wrong old size {wrong_old}"
        for i in range(len(proof)):
            tampered = [*proof[:i], _flip(proof[i], 7), *proof[i + 1 :]]
            assert not verify_consistency(old, n, old_head, head, tampered), f"element {i} tampered"
        assert not verify_consistency(old, n, old_head, head, proof[:-1]), "truncated"
        assert not verify_consistency(old, n, old_head, head, [*proof, head]), "extended"


# -- Go's golang.org/x/mod/sumdb/tlog agrees --------------------------------------------------


def build_noteverify() -> Path:
    """The Go verifier, built once per source version and cached outside the work tree.

    Go is a requirement of this test tier: without it the interop tests fail, they never skip.
    """
    try:
        return gotools.build("noteverify")
    except gotools.GoToolError as exc:
        pytest.fail(f"{exc} (needed for the interop tests)")


@pytest.fixture(scope="session")
def noteverify() -> Path:
    return build_noteverify()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def go_merkle(binary: Path, request: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), "merkle"], input=json.dumps(request), capture_output=True, text=True, check=False, timeout=120
    )


def merkle_request(
    leaves: Sequence[bytes], store: MemoryNodeStore, indexes: Sequence[int], olds: Sequence[int]
) -> dict[str, Any]:
    n = len(leaves)
    return {
        "size": n,
        "root": _b64(tree_root(n, store)),
        "leaves": [_b64(leaf) for leaf in leaves],
        "inclusion": [
            {"index": i, "leaf": _b64(leaves[i]), "proof": [_b64(h) for h in inclusion_proof(i, n, store)]}
            for i in indexes
        ],
        "consistency": [
            {
                "old_size": m,
                "old_root": _b64(tree_root(m, store)),
                "proof": [_b64(h) for h in consistency_proof(m, n, store)],
            }
            for m in olds
        ],
    }


@pytest.mark.parametrize("n", SMALL)
def test_go_tlog_accepts_every_proof(noteverify: Path, n: int) -> None:
    request = merkle_request(LEAVES_70[:n], STORE_70, range(n), range(1, n + 1))
    done = go_merkle(noteverify, request)
    assert done.returncode == 0, done.stderr
    assert f"{n} inclusion and {n} consistency proofs verified at size {n}" in done.stdout


@pytest.mark.parametrize("n", [1000, 4097])
def test_go_tlog_accepts_large_trees(noteverify: Path, n: int) -> None:
    leaves, rng = records(n, seed=n), _rng(n)
    request = merkle_request(leaves, grow(leaves, seed=n), rng.sample(range(n), 40), rng.sample(range(1, n), 40))
    done = go_merkle(noteverify, request)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("what", "tamper", "message"),
    [
        (
            "tampered inclusion element",
            lambda r: r["inclusion"][0]["proof"].__setitem__(0, _b64(bytes(32))),
            "inclusion[0]",
        ),
        ("truncated inclusion proof", lambda r: r["inclusion"][0]["proof"].pop(), "inclusion[0]"),
        ("wrong leaf", lambda r: r["inclusion"][0].__setitem__("leaf", _b64(bytes(32))), "inclusion[0]"),
        ("wrong index", lambda r: r["inclusion"][0].__setitem__("index", 4), "inclusion[0]"),
        (
            "tampered consistency element",
            lambda r: r["consistency"][0]["proof"].__setitem__(0, _b64(bytes(32))),
            "consistency[0]",
        ),
        (
            "wrong old root",
            lambda r: r["consistency"][0].__setitem__("old_root", _b64(bytes(32))),
            "tree hash at size 5",
        ),
        ("wrong root", lambda r: r.__setitem__("root", _b64(bytes(32))), "tree hash at size 13"),
    ],
)
def test_go_tlog_refuses_tampering(noteverify: Path, what: str, tamper: Any, message: str) -> None:
    request = merkle_request(LEAVES_70[:13], STORE_70, [3], [5])
    tamper(request)
    done = go_merkle(noteverify, request)
    assert done.returncode != 0, what
    assert message in done.stderr, done.stderr


def test_go_tlog_refuses_a_bad_proof_without_the_leaves(noteverify: Path) -> None:
    request = merkle_request(LEAVES_70[:13], STORE_70, [3], [5])
    del request["leaves"]
    assert go_merkle(noteverify, request).returncode == 0
    request["consistency"][0]["old_root"] = _b64(tree_root(6, STORE_70))
    done = go_merkle(noteverify, request)
    assert done.returncode != 0 and "consistency[0]" in done.stderr, done.stderr


@pytest.mark.parametrize("size", [1, 2, 7, 64, 1000, 1337])
def test_batched_inclusion_proofs_equal_one_by_one_with_one_read(size: int) -> None:
    store = MemoryNodeStore()
    store.put_many(append_leaves(0, [leaf_hash(bytes([n % 256]) * 32) for n in range(size)], store))
    indexes = sorted(_rng(size).sample(range(size), min(size, 50)))
    reads = store.reads
    batched = inclusion_proofs(indexes, size, store)
    assert store.reads <= reads + 1
    assert batched == [inclusion_proof(i, size, store) for i in indexes]
