"""Small timing helpers shared by the benchmarks: medians and percentiles of repeated runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def per_second(operation: Callable[[], object], *, batches: int = 7, batch_seconds: float = 0.1) -> float:
    """Median operations per second over ``batches`` timed batches, each sized to ~``batch_seconds``.

    One untimed batch warms caches first.
    """
    start = time.perf_counter()
    operation()
    size = max(1, int(batch_seconds / max(time.perf_counter() - start, 1e-6)))
    for _ in range(size):
        operation()
    rates = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(size):
            operation()
        rates.append(size / (time.perf_counter() - start))
    return statistics.median(rates)


def latencies_ms(operation: Callable[[], object], *, count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        operation()
        out.append((time.perf_counter() - started) * 1000)
    return out
