"""Prometheus metrics: collected at scrape time from what the reconciles last saw.

A custom collector rather than module-level gauges, so that a deleted tenant's series vanish and
nothing is registered at import time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from privatevault.inventory import Inventory, samples
from privatevault.inventory.metrics import METRICS


class OperatorMetrics(Collector):
    def __init__(self) -> None:
        self.inventories: dict[str, Inventory] = {}

    def collect(self) -> Iterator[Metric]:
        grouped: defaultdict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
        for found in list(self.inventories.values()):
            for sample in samples(found):
                grouped[sample.name].append((dict(sample.labels), float(sample.value)))
        for name, help_text in METRICS.items():
            rows = grouped.get(name, [])
            label_names = sorted(rows[0][0]) if rows else []
            family = GaugeMetricFamily(name, help_text, labels=label_names)
            for labels, value in rows:
                family.add_metric([labels[key] for key in label_names], value)
            yield family
