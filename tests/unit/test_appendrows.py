"""The writer's hot loop: the C extension and the pure-Python twin give the same rows, the bodies
are ``Event.canonical``'s (so RFC 8785's: tests/unit/test_chain.py), the hashes the chain's, and
the nodes the Merkle tree's (``merkle.grow``), with the tenant chains advanced as ``tenantchain``
advances them."""

from __future__ import annotations

import base64
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privatevault.ledger import Event, ResourceRef, appendrows, merkle, record_hash, tenantchain, writer
from privatevault.ledger import event as event_module
from privatevault.ledger.chain import GENESIS
from privatevault.ledger.event import canonical_time


@pytest.fixture(scope="module")
def compiled() -> Any:
    if appendrows.ENGINE != "c":
        pytest.fail("the C extension privatevault.ledger._append is not built: run `make setup` (needs libssl-dev)")
    from privatevault.ledger import _append  # type: ignore[attr-defined]  # noqa: PLC0415

    return _append


def test_the_compiled_engine_is_the_one_the_writer_runs(compiled: Any) -> None:
    assert appendrows.records is compiled.records
    assert appendrows.nodes is compiled.nodes


_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | _text,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(st.characters(max_codepoint=127)), inner, max_size=3)
    ),
    max_leaves=8,
)
_events = st.lists(
    st.builds(
        lambda tenant, actor, name, namespace, uid, key, details: Event(
            tenant=tenant,
            actor=actor,
            action="create-namespace",
            outcome="intended",
            resource=ResourceRef(kind="Namespace", name=name, namespace=namespace, uid=uid),
            idempotency_key=key,
            details=details,
        ),
        st.sampled_from(["", "acme", "globex", "é"]),
        _text,
        _text,
        st.none() | _text,
        st.none() | _text,
        _text,
        st.dictionaries(st.text(st.characters(max_codepoint=127), max_size=6), _json, max_size=3),
    ),
    max_size=40,
)


def _fixed(event: Event) -> tuple[bytes, bytes]:
    """The fixed COPY fields, written out here from PostgreSQL's binary format (not the store's code)."""

    def text(value: str | None) -> bytes:
        return b"\xff\xff\xff\xff" if value is None else struct.pack(">i", len(value.encode())) + value.encode()

    resource = event.resource
    values = [event.tenant, event.actor, event.action, resource.kind, resource.namespace, resource.name, resource.uid]
    return b"".join(text(v) for v in [*values, event.outcome]), text(event.idempotency_key)


@settings(max_examples=200, deadline=None)
@given(
    events=_events,
    seq=st.integers(0, 2**40),
    prev=st.binary(min_size=32, max_size=32),
    micros=st.integers(0, 10**15),
    known=st.dictionaries(
        st.sampled_from(["acme", "globex", "é"]), st.tuples(st.integers(0, 2**40), st.binary(min_size=32, max_size=32))
    ),
)
def test_records_are_the_chain_s_in_both_engines(
    compiled: Any,
    *,
    events: list[Event],
    seq: int,
    prev: bytes,
    micros: int,
    known: dict[str, tuple[int, bytes]],
) -> None:
    time = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    recorded = b"\x00\x00\x00\x08" + struct.pack(">q", micros)
    tenants = sorted({e.tenant for e in events if e.tenant})
    items = [(*e.canonical_parts, tenants.index(e.tenant) if e.tenant else -1, *_fixed(e)) for e in events]
    states_py = [list(known.get(t, (0, GENESIS))) for t in tenants]
    states_c = [list(state) for state in states_py]
    made = appendrows.records_py(seq, prev, canonical_time(time), recorded, items, states_py)
    assert compiled.records(seq, prev, canonical_time(time), recorded, items, states_c) == made
    assert states_c == states_py

    # What the records must be: Event.canonical at their position, the chain's hash, tenantchain's links.
    heads = tenantchain.Heads()
    for tenant, (tenant_seq, digest) in known.items():
        heads.set(tenant, tenant_seq, digest)
    rows, bodies, digests = made
    expected_rows = []
    for offset, event in enumerate(events):
        link = heads.link(event.tenant)
        body = event.canonical(seq=seq + 1 + offset, time=canonical_time(time), link=link)
        digest = record_hash(prev, body)
        heads.advance(event.tenant, link, digest)
        assert (bodies[offset], digests[offset]) == (body, digest)
        middle, key = _fixed(event)
        expected_rows.append(
            struct.pack(">hiq", 14, 8, seq + 1 + offset)
            + recorded
            + middle
            + struct.pack(">i", len(body))
            + body
            + struct.pack(">i", 32)
            + prev
            + struct.pack(">i", 32)
            + digest
            + key
        )
        prev = digest
    assert rows == b"".join(expected_rows)
    assert states_py == [list(heads.get(t)) for t in tenants]


@settings(max_examples=200, deadline=None)
@given(size=st.integers(0, 600), count=st.integers(0, 300))
def test_nodes_are_the_tree_s_in_both_engines(compiled: Any, size: int, count: int) -> None:
    leaves = [bytes([n % 251]) * 32 for n in range(size + count)]
    store = merkle.MemoryNodeStore()
    store.put_many(merkle.append_leaves(0, [merkle.leaf_hash(leaf) for leaf in leaves[:size]], store))
    frontier = merkle.frontier(size, store)
    before = [frontier[key] for key in merkle.root_keys(size)]
    made = appendrows.nodes_py(size, before, leaves[size:])
    assert compiled.nodes(size, before, leaves[size:]) == made

    grown = merkle.grow(size, frontier, [merkle.leaf_hash(leaf) for leaf in leaves[size:]])
    rows, after = made
    assert rows == b"".join(struct.pack(">hihiqi", 3, 2, n.level, 8, n.idx, 32) + n.hash for n in grown)
    assert after == [frontier[key] for key in merkle.root_keys(size + count)]
    if size + count:
        assert merkle.root(leaves) == merkle.tree_root(size + count, _with(store, grown))


def _with(store: merkle.MemoryNodeStore, nodes: list[merkle.Node]) -> merkle.MemoryNodeStore:
    store.put_many(nodes)
    return store


@pytest.mark.parametrize(
    ("size", "frontier", "digests"),
    [
        (3, [b"x" * 32], []),  # 3 leaves have two frontier nodes
        (2, [b"x" * 32, b"y" * 32], []),
        (1, [b"short"], [b"d" * 32]),
        (0, [], [b"short"]),
    ],
)
def test_nodes_refuse_a_wrong_frontier_or_hash_in_both_engines(
    compiled: Any, size: int, frontier: list[bytes], digests: list[bytes]
) -> None:
    with pytest.raises(ValueError, match=r"frontier|hash"):
        appendrows.nodes_py(size, frontier, digests)
    with pytest.raises(ValueError, match=r"frontier|hash"):
        compiled.nodes(size, frontier, digests)


@pytest.mark.parametrize("state", [[1, b"short"], [1]])
def test_records_refuse_a_wrong_tenant_state_in_both_engines(compiled: Any, state: list[Any]) -> None:
    items = [(b'{"action":"a"', b'"tenant":"acme"', 0, b"", b"")]
    for engine in (appendrows.records_py, compiled.records):
        with pytest.raises(ValueError, match="tenant"):
            engine(0, GENESIS, b'"t"', b"", items, [list(state)])


def test_the_tenant_link_is_standard_base64() -> None:
    digest = bytes(range(250, 256)) * 5 + b"\xfb\xff"  # "+" and "/" in its base64
    items = [(b'{"action":"a"', b'"tenant":"acme"', 0, b"", b"")]
    _, [body], _ = appendrows.records(0, GENESIS, b'"t"', b"", items, [[4, digest]])
    assert base64.b64encode(digest) in body and b'"tenantSeq":5' in body


_any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=1000, deadline=None)
@given(_any_json)
def test_canonical_bytes_are_the_same_compiled(compiled: Any, value: Any) -> None:
    """``_append.jcs`` writes what ``event._jcs_py`` writes, and declines (None) what it refuses."""
    try:
        expected: bytes | None = event_module._jcs_py(value)
    except event_module._NotPlain:
        expected = None
    assert compiled.jcs(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"a\x00c": 1, "a\x00b": 2, "a": 3, "": 4},  # keys with NUL sort by code points, not as C strings
        '\x00\x1f\x7f"\\\n\r\t\b\f é \u2028 😀',
        [2**53 - 1, -(2**53) + 1, True, False, None, (1, "x")],
    ],
)
def test_canonical_bytes_at_the_edges_are_the_same_compiled(compiled: Any, value: Any) -> None:
    assert compiled.jcs(value) == event_module._jcs_py(value)


@pytest.mark.parametrize(
    "value",
    [2**53, -(2**53), 10**30, 1.5, [1.0], {"é": 1}, {1: 2}, "\ud800", ["\udfff"], {"a": {"b": 0.5}}],
)
def test_the_compiled_canonical_bytes_decline_what_is_not_plain(compiled: Any, value: Any) -> None:
    assert compiled.jcs(value) is None
    with pytest.raises(event_module._NotPlain):
        event_module._jcs_py(value)


def test_deep_nesting_is_left_to_the_python_path(compiled: Any) -> None:
    deep: Any = 1
    for _ in range(150):
        deep = [deep]
    assert compiled.jcs(deep) is None
    assert event_module._jcs(deep) == event_module._jcs_py(deep) == b"[" * 150 + b"1" + b"]" * 150


_column = st.one_of(st.none(), st.text(max_size=40))


@settings(max_examples=300, deadline=None)
@given(columns=st.tuples(*[_column] * 8), key=st.text(min_size=1, max_size=80))
def test_an_event_s_fixed_fields_are_the_same_compiled(compiled: Any, columns: tuple[Any, ...], key: str) -> None:
    """The caller-side COPY fields (tenant … outcome, the key): NULLs, non-ASCII and the empty
    string, compiled and in Python; and what a lone surrogate does (refused by both)."""
    tenant, actor, action, kind, namespace, name, uid, outcome = columns
    event = Event(
        tenant=tenant or "",
        actor=actor or "a",
        action=action or "b",
        outcome=outcome or "c",
        resource=ResourceRef(kind=kind or "K", namespace=namespace, name=name or "n", uid=uid),
        idempotency_key=key,
        details={},
    )
    try:
        expected: Any = writer._fixed_fields_py(event)
    except UnicodeEncodeError:
        expected = UnicodeEncodeError
    try:
        got: Any = compiled.fields(writer._columns(event), event.idempotency_key)
    except UnicodeEncodeError:
        got = UnicodeEncodeError
    assert got == expected


def test_the_writer_uses_the_compiled_fields(compiled: Any) -> None:
    assert appendrows.fields is compiled.fields
    event = Event(
        tenant="t", actor="a", action="b", outcome="c", resource=ResourceRef(kind="K", name="n"), idempotency_key="k"
    )
    assert writer._fixed_fields(event) == writer._fixed_fields_py(event)
