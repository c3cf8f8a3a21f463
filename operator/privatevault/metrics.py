"""Prometheus metrics: collected at scrape time from what the reconciles and the checkpointer last saw.

A custom collector rather than module-level gauges, so that a deleted tenant's series vanish and
nothing is registered at import time.

The ledger's integrity, from the checkpointer (``ledger.integrity.Integrity``):

- ``privatevault_ledger_integrity_ok``: 1 while every checkpoint it tries to sign extends the
  published, stored and last signed ones; 0 while it refuses (alert on it);
- ``privatevault_ledger_checkpoints_refused_total``: refused signing attempts since start;
- ``privatevault_ledger_checkpoint_size``: the size of the last checkpoint this process signed or
  published.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from privatevault.inventory import Inventory, samples
from privatevault.inventory.metrics import METRICS
from privatevault.ledger.integrity import Integrity


class OperatorMetrics(Collector):
    def __init__(self, integrity: Integrity | None = None) -> None:
        self.inventories: dict[str, Inventory] = {}
        self.integrity = integrity if integrity is not None else Integrity()
        #: Gated objects seen to disappear without a quorum decision, by kind.
        self.bypassed: defaultdict[str, int] = defaultdict(int)
        #: Decisions on gated actions, by action and state (Approved, Pending, Refused, Expired).
        self.decisions: defaultdict[tuple[str, str], int] = defaultdict(int)

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
        yield from self._ledger()
        yield from self._quorum()

    def _quorum(self) -> Iterator[Metric]:
        bypassed = CounterMetricFamily(
            "privatevault_quorum_bypassed",
            "Gated objects that disappeared without a quorum decision (a finalizer stripped by hand)",
            labels=["kind"],
        )
        for kind, count in sorted(self.bypassed.items()):
            bypassed.add_metric([kind], float(count))
        yield bypassed
        decisions = CounterMetricFamily(
            "privatevault_quorum_decisions", "Quorum decisions taken on gated actions", labels=["action", "state"]
        )
        for (action, state), count in sorted(self.decisions.items()):
            decisions.add_metric([action, state], float(count))
        yield decisions

    def _ledger(self) -> Iterator[Metric]:
        integrity = self.integrity
        yield GaugeMetricFamily(
            "privatevault_ledger_integrity_ok",
            "1 while every checkpoint signed extends the published, stored and last signed ones; 0 while refused",
            value=1.0 if integrity.ok else 0.0,
        )
        yield CounterMetricFamily(
            "privatevault_ledger_checkpoints_refused",
            "Checkpoints not signed because the tree could not be shown to extend one signed before",
            value=float(integrity.refused_total),
        )
        if integrity.checkpoint_size is not None:
            yield GaugeMetricFamily(
                "privatevault_ledger_checkpoint_size",
                "Tree size of the last checkpoint this process signed or published",
                value=float(integrity.checkpoint_size),
            )
