"""kopf's session to the API server: bounded, with room for requests beside the watches."""

from __future__ import annotations

import asyncio

import kopf

from privatevault.api.v1alpha1 import KINDS
from privatevault.cache import CACHED
from privatevault.handlers import REQUEST_CONNECTIONS, session
from privatevault.settings import Settings


def _limit(connections: int) -> tuple[int, dict[str, str]]:
    async def make() -> tuple[int, dict[str, str]]:
        info = kopf.ConnectionInfo(server="https://127.0.0.1:6443", token="t0ken", insecure=True)
        s = session(info, connections)
        try:
            return s.connector.limit if s.connector else 0, dict(s.headers)
        finally:
            await s.close()

    return asyncio.run(make())


def test_the_setting_bounds_the_connections() -> None:
    limit, headers = _limit(200)
    assert limit == 200
    assert headers["Authorization"] == "Bearer t0ken"


def test_a_small_setting_still_leaves_room_beside_every_watch() -> None:
    limit, _ = _limit(1)
    assert limit == len(CACHED) + len(KINDS) + REQUEST_CONNECTIONS


def test_default_and_environment() -> None:
    dsn = {"PRIVATEVAULT_LEDGER_DSN": "postgresql://ledger@127.0.0.1/ledger"}
    assert Settings.from_env(dsn).api_connections == 64
    assert Settings.from_env({**dsn, "PRIVATEVAULT_API_CONNECTIONS": "32"}).api_connections == 32
