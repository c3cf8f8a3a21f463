"""The verifier's hot loop gives the same answer compiled and in pure Python: on intact batches cut
anywhere, from any starting size, and on every kind of tampering (a changed byte anywhere in a
batch, a gap, a broken link, a wrong hash, a wrong inner sequence number, a cut-short or malformed
row), and it agrees with the writer's Merkle code and with ``chain.verify_chain``."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privatevault.ledger import merkle, recompute
from privatevault.ledger.chain import GENESIS, record_hash, verify_chain
from privatevault.ledger.recompute import DIGEST, GAP, INNER_SEQ, MALFORMED, PREV, Problem, Result

from .fakes import LibpqCopy

Row = tuple[int, bytes, bytes, bytes]


def rows(count: int, *, first: int = 1, prev: bytes = GENESIS) -> list[Row]:
    out = []
    for seq in range(first, first + count):
        body = b'{"details":{"n":"%s"},"seq":%d,"v":1}' % (b"x" * (seq * 37 % 300), seq)
        digest = record_hash(prev, body)
        out.append((seq, body, prev, digest))
        prev = digest
    return out


@pytest.fixture(scope="module")
def compiled() -> recompute.Recompute:
    if recompute.recompute_c is None:
        pytest.fail("the C extension privatevault.ledger._recompute is not built: run `make setup` (needs libssl-dev)")
    return recompute.recompute_c


def split(data: bytes, sizes: tuple[int, ...]) -> list[bytes]:
    """``data`` cut into messages of the given sizes, in turn (none of two bytes: the trailer's size)."""
    messages, offset = [], 0
    for size in itertools.cycle(sizes):
        if offset >= len(data):
            break
        messages.append(data[offset : offset + size])
        offset += size
    if len(messages) > 1 and len(messages[-1]) == 2:
        messages[-2:] = [messages[-2] + messages[-1]]
    return messages


def streamed(messages: list[bytes], next_seq: int, prev: bytes, frontier: tuple[bytes, ...]) -> Result:
    """The compiled pass taking ``messages`` from (a fake) libpq as a COPY would send them."""
    assert recompute.recompute_copy is not None
    copy = LibpqCopy(messages)
    result = recompute.recompute_copy(copy, len(messages), next_seq, prev, frontier)
    assert not copy.live, "every message taken is freed"
    return result


def both(compiled: recompute.Recompute, data: bytes, next_seq: int, prev: bytes, frontier: tuple[bytes, ...]) -> Result:
    """Run both implementations, and the compiled one on the same bytes taken from libpq as one
    message, as messages cut anywhere and as messages of a row each when they are rows; they must
    agree exactly."""
    expected = recompute.recompute_py(data, next_seq, prev, frontier)
    assert compiled(data, next_seq, prev, frontier) == expected
    if data:
        for sizes in [(len(data),), (1, 5, 64, 700), (97,)]:
            assert streamed(split(data, sizes), next_seq, prev, frontier) == expected, sizes
        if expected.problem is None:
            sizes = tuple(len(recompute.pack([row])) for row in unpack(data))
            assert streamed(split(data, sizes), next_seq, prev, frontier) == expected
    return expected


def unpack(data: bytes) -> list[Row]:
    out = []
    for row in recompute._rows(data):
        assert row is not None
        out.append(row)
    return out


def frontier_at(leaves: list[bytes]) -> tuple[bytes, ...]:
    store = merkle.MemoryNodeStore()
    store.put_many(merkle.append_leaves(0, [merkle.leaf_hash(leaf) for leaf in leaves], store))
    return tuple(store.get_many(merkle.root_keys(len(leaves)))[key] for key in merkle.root_keys(len(leaves)))


def fold(frontier: tuple[bytes, ...]) -> bytes:
    digest = frontier[-1]
    for left in reversed(frontier[:-1]):
        digest = merkle.node_hash(left, digest)
    return digest


def test_the_compiled_engine_is_the_one_the_verifier_runs(compiled: recompute.Recompute) -> None:
    assert recompute.recompute is compiled
    assert recompute.ENGINE == "c"


@pytest.mark.parametrize("cuts", [[0, 300], [0, 1, 2, 3, 300], [0, 127, 128, 129, 256, 300], [0, 64, 300]])
def test_intact_batches_cut_anywhere_give_the_writers_tree(compiled: recompute.Recompute, cuts: list[int]) -> None:
    ledger = rows(300)
    store = merkle.MemoryNodeStore()
    store.put_many(merkle.append_leaves(0, [merkle.leaf_hash(row[3]) for row in ledger], store))
    state: tuple[int, bytes, tuple[bytes, ...]] = (1, GENESIS, ())
    for before, after in itertools.pairwise(cuts):
        result = both(compiled, recompute.pack(ledger[before:after]), *state)
        assert result.problem is None
        expected = b"".join(
            store.get_many([(level, index)])[(level, index)]
            for level, first, end in [(level, before >> level, after >> level) for level in range(after.bit_length())]
            for index in range(first, end)
        )
        assert result.nodes == expected  # what Ledger.node_runs returns for the same sizes
        state = (result.next_seq, result.prev, result.frontier)
    assert state[0] == 301 and state[1] == ledger[-1][3]
    assert fold(state[2]) == merkle.root([row[3] for row in ledger])


def test_a_pass_resumes_from_any_size(compiled: recompute.Recompute) -> None:
    ledger = rows(100)
    for size in (1, 2, 5, 64, 99):
        frontier = frontier_at([row[3] for row in ledger[:size]])
        result = both(compiled, recompute.pack(ledger[size:]), size + 1, ledger[size - 1][3], frontier)
        assert result.problem is None and result.next_seq == 101
        assert fold(result.frontier) == merkle.root([row[3] for row in ledger])


def tampered(ledger: list[Row], at: int, **change: object) -> list[Row]:
    seq, body, prev, digest = ledger[at]
    fields = {"seq": seq, "body": body, "prev": prev, "digest": digest} | change
    out = list(ledger)
    out[at] = (fields["seq"], fields["body"], fields["prev"], fields["digest"])  # type: ignore[assignment]
    return out


CASES = {
    "changed bytes": (lambda r: tampered(r, 9, body=r[9][1].replace(b'"v":1', b'"v":2')), Problem(DIGEST, 10, 10)),
    "rehashed, link broken": (
        lambda r: tampered(r, 9, body=b'{"seq":10,"v":2}', digest=record_hash(r[9][2], b'{"seq":10,"v":2}')),
        Problem(PREV, 11, 11),
    ),
    "wrong prev": (lambda r: tampered(r, 4, prev=bytes(32)), Problem(PREV, 5, 5)),
    "short prev": (lambda r: tampered(r, 4, prev=r[4][2][:31]), Problem(PREV, 5, 5)),
    "short hash": (lambda r: tampered(r, 4, digest=r[4][3][:31]), Problem(DIGEST, 5, 5)),
    "gap": (lambda r: r[:6] + r[7:], Problem(GAP, 7, 8)),
    "swapped": (lambda r: [*r[:6], r[7], r[6], *r[8:]], Problem(GAP, 7, 8)),
    "negative seq": (lambda r: tampered(r, 0, seq=-1), Problem(GAP, 1, -1)),
    "inner seq": (
        lambda r: tampered(r, 0, body=b'{"seq":2,"v":1}', digest=record_hash(GENESIS, b'{"seq":2,"v":1}')),
        Problem(INNER_SEQ, 1, 1),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_tampering_is_found_the_same_way_by_both(compiled: recompute.Recompute, case: str) -> None:
    tamper, problem = CASES[case]
    ledger = tamper(rows(20))
    result = both(compiled, recompute.pack(ledger), 1, GENESIS, ())
    assert result.problem == problem
    assert result.next_seq == problem.seq  # the records before it are counted, and only those
    broken = verify_chain(ledger)
    assert broken is not None and (broken.seq, broken.problem) == (problem.seq, problem.describe())


@pytest.mark.parametrize(
    "data",
    [
        recompute.pack(rows(3))[:-1],  # cut short
        recompute.pack(rows(3)) + b"\x00",
        b"\x00\x03" + recompute.pack(rows(1))[2:],  # three fields
        struct.pack(">hi", 4, 4) + b"\x00" * 30,  # a 4-byte seq
        struct.pack(">hiqi", 4, 8, 1, -1) + struct.pack(">i", 32) + bytes(32) + struct.pack(">i", 32) + bytes(32),
    ],
    ids=["cut-short", "trailing-byte", "three-fields", "short-seq", "null-canonical"],
)
def test_malformed_rows_are_refused_the_same_way(compiled: recompute.Recompute, data: bytes) -> None:
    result = both(compiled, data, 1, GENESIS, ())
    assert result.problem is not None and result.problem.code == MALFORMED


def test_bad_state_is_refused_by_both(compiled: recompute.Recompute) -> None:
    for implementation in (compiled, recompute.recompute_py):
        with pytest.raises(ValueError, match="frontier"):
            implementation(b"", 4, GENESIS, ())  # size 3 needs two frontier nodes
        with pytest.raises(ValueError):
            implementation(b"", 0, GENESIS, ())


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(1, 40),
    start=st.integers(0, 39),
    position=st.integers(0, 10**6),
    value=st.integers(0, 255),
)
def test_any_changed_byte_gives_the_same_answer(
    compiled: recompute.Recompute, count: int, start: int, position: int, value: int
) -> None:
    ledger = rows(40)
    start = min(start, 40 - count) if count < 40 else 0
    frontier = frontier_at([row[3] for row in ledger[:start]])
    data = bytearray(recompute.pack(ledger[start : start + count]))
    data[position % len(data)] = value
    prev = ledger[start - 1][3] if start else GENESIS
    both(compiled, bytes(data), start + 1, prev, frontier)


# -- the rows taken from libpq by the compiled pass --------------------------------------------


def test_a_copy_read_in_batches_from_libpq_gives_the_joined_batches_answer(compiled: recompute.Recompute) -> None:
    """Batch after batch on one COPY, as the verifier reads it: the header only before the first
    message, the trailer read by ``finish``, every message freed."""
    assert recompute.recompute_copy is not None
    ledger = rows(300)
    copy = LibpqCopy([recompute.pack([row]) for row in ledger])
    state: tuple[int, bytes, tuple[bytes, ...]] = (1, GENESIS, ())
    for before, after in itertools.pairwise([0, 1, 2, 3, 127, 128, 129, 256, 300]):
        result = recompute.recompute_copy(copy, after - before, *state)
        assert result == both(compiled, recompute.pack(ledger[before:after]), *state)
        assert not copy.header and not copy.done and not copy.live
        state = (result.next_seq, result.prev, result.frontier)
    copy.finish()
    assert state[0] == 301 and fold(state[2]) == merkle.root([row[3] for row in ledger])


def test_a_copy_that_ends_early_gives_what_it_held() -> None:
    assert recompute.recompute_copy is not None
    ledger = rows(10)
    copy = LibpqCopy([recompute.pack([row]) for row in ledger])
    result = recompute.recompute_copy(copy, 16, 1, GENESIS, ())
    assert result.problem is None and result.next_seq == 11 and copy.done and not copy.live
    empty = LibpqCopy([])  # the header and the trailer in one message, then the end
    assert recompute.recompute_copy(empty, 16, 1, GENESIS, ()) == Result(1, GENESIS, (), b"", None)
    assert empty.done


def test_a_copy_libpq_fails_on_is_an_error_not_a_short_ledger() -> None:
    assert recompute.recompute_copy is not None
    copy = LibpqCopy([recompute.pack([row]) for row in rows(10)], fail_after=4)
    with pytest.raises(recompute.CopyFailed, match="server closed the connection unexpectedly"):
        recompute.recompute_copy(copy, 16, 1, GENESIS, ())
    assert copy.done and not copy.live


def test_a_copy_not_in_binary_format_is_refused() -> None:
    assert recompute.recompute_copy is not None
    copy = LibpqCopy([recompute.pack([row]) for row in rows(3)])
    copy.messages[0] = b"seq\tcanonical\n" + copy.messages[0]
    with pytest.raises(recompute.CopyFailed, match="binary signature"):
        recompute.recompute_copy(copy, 3, 1, GENESIS, ())
    assert not copy.live
