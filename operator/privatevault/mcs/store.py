"""Allocating levels in PostgreSQL: the primary key on the level makes allocation collision-free
across operator replicas, and since rows are never deleted, a level stays taken after its
tenant is gone (the tombstone records when)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from privatevault.errors import LedgerUnavailable, SpecError
from privatevault.mcs.level import Level, parse, random_level

ATTEMPTS = 64


@dataclass(frozen=True)
class Allocation:
    level: Level
    hand_set: bool
    released: bool


class LevelStore:
    def __init__(self, dsn: str, *, connect_timeout: float = 5.0) -> None:
        self._dsn, self._timeout = dsn, connect_timeout

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        try:
            return psycopg.connect(self._dsn, connect_timeout=int(self._timeout), autocommit=True)
        except psycopg.OperationalError as exc:
            raise LedgerUnavailable(f"the MCS level store cannot be reached: {exc}".strip()) from exc

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
