"""Freed memory given back: glibc's malloc_trim, called on a timer, and nothing without glibc."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from privatevault import memory
from privatevault.settings import Settings


def _anonymous_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/self/status")


def test_freed_heap_pages_go_back_to_the_system() -> None:
    if memory._malloc_trim() is None:
        pytest.skip("not glibc")
    memory.trim()
    # 64 MiB in blocks below glibc's mmap threshold, one in 16 kept: the heap cannot shrink from
    # its top, so the freed 60 MiB stay with the process until trimmed (measured: all of it).
    blocks = [bytearray(64 * 1024) for _ in range(1024)]
    kept = blocks[15::16]
    del blocks
    held = _anonymous_kb()
    assert memory.trim()
    assert _anonymous_kb() < held - 32 * 1024
    assert len(kept) == 64


def test_without_malloc_trim_nothing_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    assert memory.trim() is False
    memory.trim_every(0.001, threading.Event())  # returns at once instead of looping


def test_trims_on_its_interval_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    stop = threading.Event()

    def fake(pad: int) -> int:
        calls.append(pad)
        if len(calls) == 3:
            stop.set()
        return 1

    monkeypatch.setattr(memory, "_malloc_trim", lambda: fake)
    memory.trim_every(0.001, stop)
    assert calls == [0, 0, 0]


def test_default_and_environment() -> None:
    dsn = {"PRIVATEVAULT_LEDGER_DSN": "postgresql://ledger@127.0.0.1/ledger"}
    assert Settings.from_env(dsn).memory_trim_interval == 60
    assert Settings.from_env({**dsn, "PRIVATEVAULT_MEMORY_TRIM_INTERVAL": "0"}).memory_trim_interval == 0
