"""Allocating levels in PostgreSQL: the primary key on the level makes allocation collision-free
across operator replicas, and since rows are never deleted, a level stays taken after its
tenant is gone (the tombstone records when)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from privatevault.database import Pool, borrow
from privatevault.errors import SpecError
from privatevault.mcs.level import Allocation, parse, random_level

ATTEMPTS = 64


class LevelStore:
    """Levels in the ledger's database, on the process's shared connection pool."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def _connect(self) -> AbstractContextManager[psycopg.Connection[tuple[Any, ...]]]:
        return borrow(self._pool, "the MCS level store")

    def find(self, tenant_uid: str) -> Allocation | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT l.level, l.hand_set, t.tenant_uid IS NOT NULL FROM mcs_levels l"
                " LEFT JOIN mcs_tombstones t USING (tenant_uid) WHERE l.tenant_uid = %s",
                (tenant_uid,),
            ).fetchone()
        return None if row is None else Allocation(parse(str(row[0])), bool(row[1]), bool(row[2]))

    def allocate(
        self,
        *,
        tenant: str,
        tenant_uid: str,
        confidentiality: str,
        integrity: str,
        compartments: Sequence[str],
        requested: str | None = None,
    ) -> Allocation:
        """The tenant's level: the one it has, else ``requested`` if free, else a random free one."""
        found = self.find(tenant_uid)
        if found is not None:
            if requested is not None and parse(requested) != found.level:
                raise SpecError(
                    f"spec.mcsLevel {requested} differs from the tenant's level {found.level};"
                    " a tenant's MCS level cannot change",
                    reason="MCSConflict",
                )
            return found
        candidates = [parse(requested)] if requested is not None else (random_level() for _ in range(ATTEMPTS))
        with self._connect() as conn:
            for level in candidates:
                inserted = conn.execute(
                    "INSERT INTO mcs_levels (level, tenant, tenant_uid, confidentiality, integrity, compartments,"
                    " hand_set) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (
                        str(level),
                        tenant,
                        tenant_uid,
                        confidentiality,
                        integrity,
                        list(compartments),
                        requested is not None,
                    ),
                ).rowcount
                if inserted == 1:
                    return Allocation(level, requested is not None, False)
                again = self.find(tenant_uid)  # a concurrent reconcile of the same tenant won
                if again is not None:
                    return again
        if requested is not None:
            raise SpecError(
                f"MCS level {requested} is taken by another tenant (now or in the past: levels"
                " are never reused); remove spec.mcsLevel to get a free one",
                reason="MCSConflict",
            )
        raise SpecError(f"no free MCS level found in {ATTEMPTS} attempts", reason="MCSExhausted")

    def release(self, tenant_uid: str) -> None:
        """Keep the tenant's level taken for ever, and record that its tenant is gone."""
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO mcs_tombstones (tenant_uid) SELECT tenant_uid FROM mcs_levels"
                " WHERE tenant_uid = %s ON CONFLICT DO NOTHING",
                (tenant_uid,),
            )
