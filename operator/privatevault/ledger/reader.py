"""The read API's queries of the ledger: filtered pages of records (read-only, on the shared pool).

Apart from :mod:`privatevault.ledger.store` so that the append path stays the store's alone; the
pages ride on the primary key and the ``(tenant, seq)`` index, so a page costs one index range scan
whatever the ledger's size (the action and time filters are applied along that scan).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from privatevault.database import Pool, borrow
from privatevault.ledger.event import Record

_MAX_SEQ = 2**63 - 1
_PAGE = (
    "SELECT seq, canonical, prev_hash, record_hash, idempotency_key FROM audit_records WHERE {} ORDER BY seq LIMIT %s"
)


@dataclass(frozen=True, kw_only=True)
class PageQuery:
    start: int = 1
    end: int | None = None
    tenant: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100


class Reader:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def page(self, query: PageQuery) -> list[Record]:
        """At most ``limit`` records from ``start`` to ``end`` matching the filters, in sequence order."""
        where = ["seq >= %s", "seq <= %s"]
        params: list[object] = [query.start, _MAX_SEQ if query.end is None else query.end]
        for column, value, op in (
            ("tenant", query.tenant, "="),
            ("action", query.action, "="),
            ("recorded_at", query.since, ">="),
            ("recorded_at", query.until, "<"),
        ):
            if value is not None:
                where.append(f"{column} {op} %s")
                params.append(value)
        # Only the fixed column conditions above are joined in; every value is a bound parameter.
        sql = _PAGE.format(" AND ".join(where))
        params.append(query.limit)
        with borrow(self._pool, "the audit ledger") as conn:
            rows = conn.execute(sql, params).fetchall()
        return [
            Record(
                seq=int(seq),
                canonical=bytes(body),
                prev_hash=bytes(prev),
                record_hash=bytes(digest),
                idempotency_key=key,
            )
            for seq, body, prev, digest, key in rows
        ]
