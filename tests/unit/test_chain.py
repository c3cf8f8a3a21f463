"""The hash chain catches a changed, removed, reordered or inserted record and names where."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from privatevault.ledger import Event, Record, ResourceRef, record_hash, verify_chain
from privatevault.ledger import event as event_module
from privatevault.ledger.chain import GENESIS
from privatevault.ledger.event import canonical, canonical_time


def build(n: int) -> list[Record]:
    out: list[Record] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        event = Event(
            tenant="t",
            actor="a",
            action="create-namespace",
            outcome="intended",
            resource=ResourceRef(kind="Namespace", name=f"ns-{seq}"),
            idempotency_key=f"k{seq}",
        )
        body = canonical(event.body(seq=seq, time=datetime(2026, 1, 1, tzinfo=UTC)))
        digest = record_hash(prev, body)
        out.append(Record(seq=seq, canonical=body, prev_hash=prev, record_hash=digest, idempotency_key=f"k{seq}"))
        prev = digest
    return out


def test_intact_chain_verifies() -> None:
    assert verify_chain(build(20)) is None


def test_canonical_bytes_are_rfc8785() -> None:
    assert canonical({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'.encode()


def test_changed_bytes_fail_at_that_record() -> None:
    records = build(10)
    body = json.loads(records[4].canonical) | {"tenant": "mallory"}
    records[4] = records[4]._replace(canonical=canonical(body))
    broken = verify_chain(records)
    assert broken is not None and broken.seq == 5 and "hash" in broken.problem


def test_removed_record_is_a_gap() -> None:
    records = build(10)
    del records[6]
    broken = verify_chain(records)
    assert broken is not None and broken.seq == 7 and "gap" in broken.problem


def test_swapped_records_fail() -> None:
    records = build(10)
    records[2], records[3] = records[3], records[2]
    broken = verify_chain(records)
    assert broken is not None and broken.seq == 3


@pytest.mark.parametrize("position", [0, 5, 9])
def test_relinked_forgery_is_caught_by_seq_inside_the_bytes(position: int) -> None:
    # An attacker renumbers records but cannot change the seq hashed inside them without breaking the hash.
    records = build(10)
    forged = records[position]._replace(seq=records[position].seq + 100)
    records[position] = forged
    assert verify_chain(records) is not None


# -- canonical bytes: the fast path is RFC 8785 exactly ----------------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"]), max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


def _both(body: dict[str, Any]) -> tuple[bytes | type[Exception], bytes | type[Exception]]:
    def attempt(encode: Callable[[dict[str, Any]], bytes]) -> bytes | type[Exception]:
        try:
            return encode(body)
        except rfc8785.CanonicalizationError as exc:
            return type(exc)

    return attempt(canonical), attempt(lambda value: bytes(rfc8785.dumps(value)))


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _json, max_size=6))
def test_canonical_bytes_are_rfc8785_for_any_value(body: dict[str, Any]) -> None:
    fast, reference = _both(body)
    assert fast == reference


@pytest.mark.parametrize(
    "body",
    [
        {"s": '\x00\x1f\x7f\b\f\n\r\t"\\/\u2028\u00e9\U0001f600'},
        {"\U0001f600": 1, "\uff61": 2, "a": 3},  # keys sorted by UTF-16 code units, not code points
        {"n": 2**53 - 1, "m": -(2**53) + 1},
        {"n": 2**53},  # outside JSON's safe integers: refused
        {"f": 1.0, "g": 1e21, "h": 5e-7},
        {"s": "\ud800"},  # a lone surrogate: refused
        {"t": (1, "x")},
    ],
)
def test_canonical_bytes_are_rfc8785_at_the_edges(body: dict[str, Any]) -> None:
    fast, reference = _both(body)
    assert fast == reference


_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    fields=st.tuples(_text, _text, _text, _text, _text, _text),
    optional=st.tuples(st.none() | _text, st.none() | _text),
    details=st.dictionaries(_text, _json, max_size=4),
    seq=st.integers(1, 2**53 - 1),
    micros=st.integers(0, 10**15),
    chained=st.none() | st.tuples(st.integers(1, 2**53 - 1), st.binary(min_size=32, max_size=32)),
)
def test_an_events_canonical_bytes_from_parts_are_those_of_its_whole_body(
    *,
    fields: tuple[str, ...],
    optional: tuple[str | None, str | None],
    details: dict[str, Any],
    seq: int,
    micros: int,
    chained: tuple[int, bytes] | None,
) -> None:
    tenant, actor, action, outcome, name, key = fields
    namespace, uid = optional
    event = Event(
        tenant=tenant,
        actor=actor,
        action=action,
        outcome=outcome,
        resource=ResourceRef(kind="Namespace", name=name, namespace=namespace, uid=uid),
        idempotency_key=key,
        details=details,
    )
    time = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    # The tenant chain's members (ledger.tenantchain), when the record has a tenant.
    link = {"tenantSeq": chained[0], "tenantPrev": base64.b64encode(chained[1]).decode()} if chained else None

    def whole() -> bytes:
        return canonical(event.body(seq=seq, time=time, link=link))

    def parts() -> bytes:
        return event.canonical(seq=seq, time=canonical_time(time), link=link)

    def parts_in_python() -> bytes:  # the writer's C extension (_append.jcs) left out
        with mock.patch.object(event_module, "_jcs_c", None):
            return dataclasses.replace(event).canonical(seq=seq, time=canonical_time(time), link=link)

    fast, in_python, reference = (_attempt(encode) for encode in (parts, parts_in_python, whole))
    assert fast == in_python == reference


def _attempt(encode: Callable[[], bytes]) -> bytes | type[Exception]:
    try:
        return encode()
    except rfc8785.CanonicalizationError as exc:
        return type(exc)
