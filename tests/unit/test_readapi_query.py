"""The read API's audit filters and paging cursor: parsed strictly, and a cursor is bound to its filters."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from privatevault.readapi.query import DEFAULT_LIMIT, MAX_LIMIT, AuditFilter, QueryError, parse


def test_defaults() -> None:
    assert parse({}) == AuditFilter()
    assert parse({}).limit == DEFAULT_LIMIT and parse({}).start == 1


def test_every_filter() -> None:
    found = parse(
        {
            "tenant": "acme",
            "action": "create-namespace",
            "since": "2026-01-01T00:00:00Z",
            "until": "2026-02-01T00:00:00+00:00",
            "seqFrom": "10",
            "seqTo": "20",
            "limit": "5",
        }
    )
    assert found == AuditFilter(
        tenant="acme",
        action="create-namespace",
        since=datetime(2026, 1, 1, tzinfo=UTC),
        until=datetime(2026, 2, 1, tzinfo=UTC),
        seq_from=10,
        seq_to=20,
        limit=5,
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"limit": "0"}, "out of range"),
        ({"limit": str(MAX_LIMIT + 1)}, "out of range"),
        ({"limit": "ten"}, "not an integer"),
        ({"seqFrom": "0"}, "out of range"),
        ({"since": "yesterday"}, "RFC 3339"),
        ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "later than since"),
        ({"tenat": "acme"}, "unknown parameter"),
        ({"cursor": "!!not-base64!!"}, "not one this API gave out"),
    ],
)
def test_refused(query: dict[str, str], message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse(query)


def test_cursor_round_trip_and_start() -> None:
    first = parse({"tenant": "acme", "seqFrom": "3", "limit": "2"})
    cursor = first.cursor_after(7)
    second = parse({"tenant": "acme", "seqFrom": "3", "limit": "2", "cursor": cursor})
    assert second == replace(first, after=7)
    assert second.start == 8
    # A cursor before seqFrom does not reach back past it.
    assert replace(first, after=1).start == 3


def test_cursor_bound_to_filters() -> None:
    cursor = parse({"tenant": "acme"}).cursor_after(7)
    with pytest.raises(QueryError, match="other filters"):
        parse({"tenant": "globex", "cursor": cursor})
    # The page size may change between pages.
    assert parse({"tenant": "acme", "limit": "50", "cursor": cursor}).after == 7
