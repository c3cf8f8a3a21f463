"""Small timing helpers shared by the benchmarks: medians and percentiles of repeated runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def rate(operation: Callable[[], object], *, count: int, repeats: int = 5) -> float:
    """Median operations per second over ``repeats`` batches of ``count`` calls."""
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(count):
            operation()
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def latencies_ms(operation: Callable[[], object], *, count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        operation()
        out.append((time.perf_counter() - started) * 1000)
    return out
