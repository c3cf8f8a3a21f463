"""The libpq that psycopg runs on, for the verifier's compiled reader (``recompute.recompute_copy``).

The compiled pass takes the rows of a COPY from libpq itself, on the connection psycopg opened
(from the pool: its authentication, TLS and transaction), so it must call the very libpq that
made the connection's ``PGconn``: psycopg's "binary" package bundles its own (in
``psycopg_binary.libs``), the "c" one links the system's, the "python" one loads it with
ctypes. The library already loaded is found again (``RTLD_NOLOAD``: nothing new is loaded) and
checked against the connection (same version as psycopg reports, same backend process); when it
cannot be found, the verifier reads the rows in Python instead.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import weakref
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq


def _loaded(name: str) -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(name, mode=os.RTLD_NOLOAD | os.RTLD_LOCAL)
    except OSError:
        return None


@cache
def _library() -> ctypes.CDLL | None:
    implementation = pq.__impl__
    if implementation == "python":
        # psycopg's ctypes bindings: the library they loaded is their module's ``pq``.
        library = getattr(importlib.import_module("psycopg.pq._pq_ctypes"), "pq", None)
        return library if isinstance(library, ctypes.CDLL) else None
    candidates: list[str] = []
    if implementation == "binary":
        spec = importlib.util.find_spec("psycopg_binary")
        if spec is not None and spec.origin is not None:
            bundled = Path(spec.origin).parent.parent / "psycopg_binary.libs"
            candidates = [str(path) for path in sorted(bundled.glob("libpq*.so*"))]
    elif implementation == "c":
        candidates = ["libpq.so.5"]
    for name in candidates:
        library_ = _loaded(name)
        if library_ is not None and ctypes.CFUNCTYPE(ctypes.c_int)(("PQlibVersion", library_))() == pq.version():
            return library_
    return None


def _address(library: ctypes.CDLL, name: str) -> int:
    # A new function object: the library's own attributes (psycopg's, with the "python"
    # implementation) keep their argument types.
    address = ctypes.cast(ctypes.CFUNCTYPE(None)((name, library)), ctypes.c_void_p).value
    if not address:
        raise OSError(f"{name} not found in libpq")
    return address


def copy_functions(conn: psycopg.Connection[Any]) -> tuple[int, int, int] | None:
    """``(PGconn *, PQgetCopyData, PQfreemem)`` for ``conn``, as addresses; None when the libpq that
    made the connection is not found."""
    # ``pgconn_ptr``: every psycopg implementation has it, its abstract PGconn does not declare it.
    library, pointer = _library(), getattr(conn.pgconn, "pgconn_ptr", None)
    if library is None or not isinstance(pointer, int):
        return None
    backend = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(("PQbackendPID", library))
    if backend(pointer) != conn.pgconn.backend_pid:
        return None
    return pointer, _address(library, "PQgetCopyData"), _address(library, "PQfreemem")


#: The libpq functions ``_append.send`` calls, in the order it takes them.
_SEND = (
    "PQexec",
    "PQresultStatus",
    "PQresultErrorField",
    "PQresultErrorMessage",
    "PQcmdStatus",
    "PQclear",
    "PQputCopyData",
    "PQputCopyEnd",
    "PQgetResult",
    "PQerrorMessage",
    "PQsetnonblocking",
    "PQisnonblocking",
)
_checked: weakref.WeakKeyDictionary[psycopg.Connection[Any], int] = weakref.WeakKeyDictionary()


@cache
def _send_addresses() -> tuple[int, ...] | None:
    library = _library()
    return None if library is None else tuple(_address(library, name) for name in _SEND)


def send_functions(conn: psycopg.Connection[Any]) -> tuple[int, tuple[int, ...]] | None:
    """``(PGconn *, addresses)`` for the writer's ``_append.send`` on ``conn``; None when the libpq
    that made the connection is not found. Each connection is checked once."""
    addresses, pointer = _send_addresses(), getattr(conn.pgconn, "pgconn_ptr", None)
    if addresses is None or not isinstance(pointer, int):
        return None
    if _checked.get(conn) != pointer:
        library = _library()
        assert library is not None
        backend = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(("PQbackendPID", library))
        if backend(pointer) != conn.pgconn.backend_pid:
            return None
        _checked[conn] = pointer
    return pointer, addresses
