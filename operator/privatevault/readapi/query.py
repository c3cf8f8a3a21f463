"""The audit list's filters and its paging cursor, parsed from the query string (pure).

A page is ``limit`` records in sequence order after the cursor's position. The cursor is opaque to
clients (base64url of the last sequence number served and a digest of the filters it was made
under), so a cursor is refused with another filter rather than silently skipping records.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class QueryError(ValueError):
    """A filter or cursor the client must fix (HTTP 400)."""


@dataclass(frozen=True, kw_only=True)
class AuditFilter:
    tenant: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    seq_from: int = 1
    seq_to: int | None = None
    limit: int = DEFAULT_LIMIT
    #: The last sequence number already served (from the cursor); 0 at the start.
    after: int = 0

    def digest(self) -> str:
        fields = [self.tenant, self.action, _iso(self.since), _iso(self.until), self.seq_from, self.seq_to]
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:16]

    @property
    def start(self) -> int:
        """The first sequence number the page may hold."""
        return max(self.seq_from, self.after + 1)

    def cursor_after(self, seq: int) -> str:
        raw = json.dumps({"after": seq, "filter": self.digest()}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _time(name: str, text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise QueryError(f"{name}={text!r} is not an RFC 3339 time such as 2026-01-31T12:00:00Z") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _int(name: str, text: str, *, low: int, high: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise QueryError(f"{name}={text!r} is not an integer") from exc
    if value < low or (high is not None and value > high):
        raise QueryError(f"{name}={value} is out of range ({low}..{high if high is not None else ''})")
    return value


KNOWN = frozenset({"tenant", "action", "since", "until", "seqFrom", "seqTo", "limit", "cursor"})


def parse(query: Mapping[str, str]) -> AuditFilter:
    """The filter a query string asks for: ``tenant``, ``action``, ``since``/``until`` (RFC 3339,
    until exclusive), ``seqFrom``/``seqTo`` (inclusive), ``limit`` (1..1000) and ``cursor``."""
    unknown = sorted(set(query) - KNOWN)
    if unknown:
        raise QueryError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN))}")
    found = AuditFilter(
        tenant=query.get("tenant") or None,
        action=query.get("action") or None,
        since=_time("since", query["since"]) if query.get("since") else None,
        until=_time("until", query["until"]) if query.get("until") else None,
        seq_from=_int("seqFrom", query["seqFrom"], low=1) if query.get("seqFrom") else 1,
        seq_to=_int("seqTo", query["seqTo"], low=1) if query.get("seqTo") else None,
        limit=_int("limit", query["limit"], low=1, high=MAX_LIMIT) if query.get("limit") else DEFAULT_LIMIT,
    )
    if found.since is not None and found.until is not None and found.until <= found.since:
        raise QueryError("until must be later than since")
    cursor = query.get("cursor")
    return found if not cursor else replace(found, after=_cursor(cursor, found))


def _cursor(text: str, made_for: AuditFilter) -> int:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        after, digest = int(decoded["after"]), str(decoded["filter"])
    except (ValueError, KeyError, TypeError) as exc:
        raise QueryError("cursor is not one this API gave out") from exc
    if digest != made_for.digest():
        raise QueryError("cursor was made for other filters; start again without it")
    if after < 0:
        raise QueryError("cursor is not one this API gave out")
    return after
