"""One PostgreSQL connection pool per process, shared by the ledger and the MCS level store.

The composition root opens it once at start-up (without waiting: PostgreSQL may be down, and a
reconcile then waits for it, saying so); every use borrows a connection for one transaction.
A connection that broke is dropped by the pool when it comes back, so an outage heals itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from privatevault.errors import LedgerUnavailable

Pool = ConnectionPool[psycopg.Connection[tuple[Any, ...]]]


def open_pool(dsn: str, *, max_size: int = 4, timeout: float = 5.0, name: str = "privatevault") -> Pool:
    """A pool of at most ``max_size`` connections; a borrower waits at most ``timeout`` seconds."""
    pool: Pool = ConnectionPool(
        dsn,
        min_size=1,
        max_size=max_size,
        timeout=timeout,
        name=name,
        open=False,
        reconnect_timeout=timeout,
        kwargs={"connect_timeout": max(1, int(timeout))},
    )
    pool.open(wait=False)
    return pool


@contextmanager
def borrow(pool: Pool, what: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A connection for one unit of work; database failures become :class:`LedgerUnavailable`.

    The pool commits when the block ends and rolls back when it raises.
    """
    try:
        with pool.connection() as conn:
            yield conn
    except psycopg.OperationalError as exc:
        raise LedgerUnavailable(f"{what} cannot be reached: {exc}".strip()) from exc
