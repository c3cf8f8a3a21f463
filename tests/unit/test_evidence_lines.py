"""The export's hot loop gives the same bytes compiled and in pure Python, and those bytes are the
bundle's format: every proof line is ``layout.ProofLine.to_bytes`` of ``merkle.inclusion_proof``
and verifies against the root, for dense, sparse and single records at any tree size; the runs a
batch plans hold every sibling it needs; malformed batches, records outside the tree and nodes
missing from the read are refused with the same message by both."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privatevault.evidence import layout, lines
from privatevault.ledger import merkle, recompute

Row = tuple[int, bytes, bytes, bytes]


@pytest.fixture(scope="module")
def compiled() -> tuple[lines.Plan, lines.Render]:
    if lines.plan_c is None or lines.render_c is None:
        pytest.fail("the C extension privatevault.evidence._lines is not built: run `make setup`")
    return lines.plan_c, lines.render_c


def tree(size: int) -> merkle.MemoryNodeStore:
    store = merkle.MemoryNodeStore()
    store.put_many(merkle.append_leaves(0, [merkle.leaf_hash(record_hash(seq)) for seq in range(1, size + 1)], store))
    return store


def record_hash(seq: int) -> bytes:
    return hashlib.sha256(b"%d" % seq).digest()


def row(seq: int) -> Row:
    body = b'{"details":{"n":"%s"},"seq":%d}' % (b"x" * (seq * 37 % 90), seq)
    return seq, body, record_hash(seq - 1) if seq > 1 else bytes(32), record_hash(seq)


def read(store: merkle.MemoryNodeStore, runs: Sequence[lines.Run]) -> bytes:
    keys = [(level, index) for level, lo, hi in runs for index in range(lo, hi)]
    found = store.get_many(keys)
    return b"".join(found[key] for key in keys if key in found)


def uppers(size: int, store: merkle.MemoryNodeStore) -> dict[int, bytes]:
    return {level: lines.quoted(path) for level, path in merkle.block_paths(size, store).items()}


def both(
    compiled: tuple[lines.Plan, lines.Render], seqs: Sequence[int], size: int, store: merkle.MemoryNodeStore
) -> lines.Lines:
    data = recompute.pack([row(seq) for seq in seqs])
    runs = lines.plan_py(data, size)
    assert compiled[0](data, size) == runs
    nodes, above = read(store, runs), uppers(size, store)
    expected = lines.render_py(data, size, runs, nodes, above)
    assert compiled[1](data, size, runs, nodes, above) == expected
    return expected


def check_format(result: lines.Lines, seqs: Sequence[int], size: int, store: merkle.MemoryNodeStore) -> None:
    root = merkle.tree_root(size, store)
    assert result.total == len(seqs)
    assert result.records == b"".join(row(seq)[1] + b"\n" for seq in seqs)
    proof_lines = result.proofs.splitlines(keepends=True)
    assert len(proof_lines) == len(seqs)
    for seq, line in zip(seqs, proof_lines, strict=True):
        _, _, prev, digest = row(seq)
        proof = merkle.inclusion_proof(seq - 1, size, store)
        assert line == layout.ProofLine(seq, prev, digest, tuple(proof)).to_bytes()
        assert merkle.verify_inclusion(merkle.leaf_hash(digest), seq - 1, size, proof, root)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 100, 257, 1000])
def test_dense_windows_whatever_the_size(compiled: tuple[lines.Plan, lines.Render], size: int) -> None:
    store = tree(size)
    for seqs in (list(range(1, size + 1)), list(range(max(1, size // 3), size + 1)), [size]):
        check_format(both(compiled, seqs, size, store), seqs, size, store)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 600), data=st.data())
def test_any_subset_of_records(compiled: tuple[lines.Plan, lines.Render], size: int, data: st.DataObject) -> None:
    """Sparse and clustered tenants: every record of the subset with a correct proof."""
    seqs = sorted(data.draw(st.sets(st.integers(1, size), min_size=1, max_size=80)))
    store = tree(size)
    check_format(both(compiled, seqs, size, store), seqs, size, store)


def test_the_plan_reads_runs_not_nodes_for_a_dense_window(compiled: tuple[lines.Plan, lines.Render]) -> None:
    size = 5000
    seqs = [seq for seq in range(1001, 4001) if seq % 10]  # another tenant's record every tenth
    runs = compiled[0](recompute.pack([row(seq) for seq in seqs]), size)
    assert len(runs) <= 2 * size.bit_length()  # a run or two per level, not a key per node
    needed = {(level, ((seq - 1) >> level) ^ 1) for seq in seqs for level in range(lines.block_level(seq - 1, size))}
    assert needed <= {(level, index) for level, lo, hi in runs for index in range(lo, hi)}


def test_an_empty_batch(compiled: tuple[lines.Plan, lines.Render]) -> None:
    assert compiled[0](b"", 10) == lines.plan_py(b"", 10) == []
    assert compiled[1](b"", 10, [], b"", {}) == lines.render_py(b"", 10, [], b"", {}) == (b"", b"", 0)


def refused(compiled: tuple[lines.Plan, lines.Render], data: bytes, size: int, *, render: bool = False) -> str:
    """Both refuse ``data`` with the same message; the message."""
    messages = []
    for plan_one, render_one in (compiled, (lines.plan_py, lines.render_py)):
        with pytest.raises(ValueError) as caught:
            if render:
                render_one(data, size, [], b"", {0: b""})
            else:
                plan_one(data, size)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    return messages[0]


def test_malformed_batches_are_refused_alike(compiled: tuple[lines.Plan, lines.Render]) -> None:
    good = recompute.pack([row(1), row(2)])
    assert refused(compiled, good[:-1], 10) == "the row after 1 is malformed"
    assert refused(compiled, good[:5], 10) == "the row after the start is malformed"
    assert refused(compiled, b"\x00\x03" + good[2:], 10) == "the row after the start is malformed"
    short_hash = recompute.pack([(1, b"{}", bytes(31), bytes(32))])
    assert refused(compiled, short_hash, 10) == "the row after the start is malformed"
    assert refused(compiled, good, 1) == "record 2 is not in the tree of size 1"
    assert refused(compiled, recompute.pack([(0, b"{}", bytes(32), bytes(32))]), 5) == (
        "record 0 is not in the tree of size 5"
    )
    assert refused(compiled, recompute.pack([row(1)]), 4, render=True) == "no path above the block of level 2"


def test_nodes_missing_from_the_read_are_named_alike(compiled: tuple[lines.Plan, lines.Render]) -> None:
    size, store = 16, tree(16)
    data = recompute.pack([row(5)])
    runs, above = lines.plan_py(data, size), uppers(size, store)
    nodes = read(store, runs)
    for render_one in (compiled[1], lines.render_py):
        with pytest.raises(ValueError, match="bytes of nodes for runs of"):
            render_one(data, size, runs, nodes[:-32], above)
        with pytest.raises(ValueError, match=r"node \(level 1, index 3\) is not in the runs read"):
            without = [run for run in runs if run[0] != 1]
            render_one(data, size, without, read(store, without), above)
        with pytest.raises(ValueError, match="not in order"):
            render_one(data, size, [(0, 4, 6), (0, 0, 2)], nodes[:128], above)


def test_rows_parse_what_pack_packs() -> None:
    batch = [row(1), row(70000)]
    assert lines.rows(recompute.pack(batch)) == batch
    assert lines.rows(struct.pack(">hiqi", 4, 8, 3, 0) + (struct.pack(">i", 32) + bytes(32)) * 2)[0][:2] == (3, b"")
