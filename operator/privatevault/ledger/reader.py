"""The read API's queries of the ledger: filtered pages of records (read-only, on the shared pool).

Apart from :mod:`privatevault.ledger.store` so that the append path stays the writer's alone; the
pages ride on the primary key and the ``(tenant, seq)`` index, so a page costs one index range scan
whatever the ledger's size (the action and time filters are applied along that scan).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from privatevault.database import Pool, borrow
from privatevault.ledger import merkle
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


class _Nodes:
    """Merkle nodes read on the connection the record was read on (one borrow per proof)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def get_many(self, keys: Sequence[merkle.NodeKey]) -> dict[merkle.NodeKey, bytes]:
        if not keys:
            return {}
        rows = (
            self._conn.cursor(binary=True)
            .execute(
                "SELECT n.level, n.idx, n.hash FROM merkle_nodes n"
                " JOIN unnest(%s::smallint[], %s::bigint[]) AS k(level, idx) ON n.level = k.level AND n.idx = k.idx",
                ([level for level, _ in keys], [index for _, index in keys]),
            )
            .fetchall()
        )
        return {(int(level), int(index)): bytes(digest) for level, index, digest in rows}


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

    def proven(self, seq: int, size: int) -> tuple[Record, list[bytes]] | None:
        """Record ``seq`` and its RFC 9162 inclusion proof in the tree of ``size`` (``seq <= size``),
        on one connection; None when there is no such record."""
        with borrow(self._pool, "the audit ledger") as conn:
            row = (
                conn.cursor(binary=True)
                .execute(
                    "SELECT seq, canonical, prev_hash, record_hash, idempotency_key FROM audit_records WHERE seq = %s",
                    (seq,),
                )
                .fetchone()
            )
            if row is None:
                return None
            return _record(row), merkle.inclusion_proof(seq - 1, size, _Nodes(conn))
