"""The read API's queries of the ledger: filtered pages of records (read-only, on the shared pool).

Apart from :mod:`privatevault.ledger.store` so that the append path stays the writer's alone; the
pages ride on the primary key and the ``(tenant, seq)`` index, so a page costs one index range scan
whatever the ledger's size (the action and time filters are applied along that scan).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from privatevault.database import Pool, borrow
from privatevault.ledger import merkle, tiles
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


def _record(row: tuple[Any, ...]) -> Record:
    seq, body, prev, digest, key = row
    return Record(
        seq=int(seq), canonical=bytes(body), prev_hash=bytes(prev), record_hash=bytes(digest), idempotency_key=key
    )


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
            rows = conn.cursor(binary=True).execute(sql, params).fetchall()
        return [_record(row) for row in rows]

    def tile(self, tier: int, index: int) -> tiles.Tile:
        """Tile ``(tier, index)`` of the Merkle tree's stored nodes as it is now (:mod:`.tiles`), one
        index range scan per level; in tier 0 with the tenant named in each of its leaves' records
        (the canonical bytes decide, as for a record read whole)."""
        levels, firsts, ends = zip(*tiles.ranges(tier, index), strict=True)
        with borrow(self._pool, "the audit ledger") as conn:
            rows = (
                conn.cursor(binary=True)
                .execute(
                    # A range scan of the primary key per level (a plain join was planned as a
                    # scan of the whole table); OFFSET 0 keeps the subquery from being flattened.
                    "SELECT n.level, n.idx, n.hash FROM unnest(%s::smallint[], %s::bigint[], %s::bigint[])"
                    " AS r(level, first, stop) CROSS JOIN LATERAL (SELECT level, idx, hash FROM merkle_nodes"
                    " WHERE level = r.level AND idx >= r.first AND idx < r.stop OFFSET 0) n",
                    (list(levels), list(firsts), list(ends)),
                )
                .fetchall()
            )
            named: list[str] = []
            if tier == 0:
                # Leaf i is the record seq i + 1; the tenants in sequence order, a prefix like the nodes.
                named = [
                    str(tenant)
                    for (tenant,) in conn.execute(
                        "SELECT coalesce(convert_from(canonical, 'UTF8')::json->>'tenant', '') FROM audit_records"
                        " WHERE seq > %s AND seq <= %s ORDER BY seq",
                        (index * tiles.WIDTH, (index + 1) * tiles.WIDTH),
                    )
                ]
        nodes = [merkle.Node(int(level), int(idx), bytes(digest)) for level, idx, digest in rows]
        return tiles.assemble(tier, index, nodes, [sys.intern(name) for name in named])
