"""Prometheus metrics: collected at scrape time from what the reconciles and the checkpointer last saw.

A custom collector rather than module-level gauges, so that a deleted tenant's series vanish and
nothing is registered at import time.

The ledger's integrity, from the checkpointer (``ledger.integrity.Integrity``):

- ``privatevault_ledger_integrity_ok``: 1 while every checkpoint it tries to sign extends the
  published, stored and last signed ones; 0 while it refuses (alert on it);
- ``privatevault_ledger_checkpoints_refused_total``: refused signing attempts since start;
- ``privatevault_ledger_checkpoint_size``: the size of the last checkpoint this process signed or
  published.

The witnesses, from their client (``ledger.witness.WitnessStatus``), labelled ``witness`` (its name):

- ``privatevault_ledger_witness_ok``: 1 while the witness cosigned the last checkpoint submitted
  to it, 0 after it failed (``reason`` label: ``Unreachable``, ``Inconsistent``, ``UnknownLog``, …);
- ``privatevault_ledger_witness_failures_total``: checkpoints it did not cosign since start;
- ``privatevault_ledger_witness_cosigned_size``: the size it cosigned last.

The objects the operator reconciles, by kind and state (``reconcile.status.state``: Ready,
Stalled, AwaitingQuorum, Reconciling):

- ``privatevault_objects{kind,state}``: counted from the last status each reconcile wrote or kept.
  Every object is reconciled at least once per resync interval, so an object not seen for
  ``forget_after`` seconds is gone (deleted) and no longer counted; every state of every kind
  is exported, 0 included, so that an alert on Stalled has a series before anything stalls;
- ``privatevault_objects_stalled{kind,reason}``: the Stalled ones by reason (``KMSUnavailable``,
  ``NamespaceConflict``, …), only reasons that some object has.

Compliance, from the compliance controller's last evaluation (a deleted framework's or tenant's
series go with it):

- ``privatevault_compliance_score{framework,tenant}``: the tenant's score (absent when nothing counts);
- ``privatevault_compliance_failing_controls{framework,tenant}``: the controls it fails;
- ``privatevault_compliance_framework_score{framework}``: the framework's score pooled over its tenants.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from privatevault.inventory import Inventory, samples
from privatevault.inventory.metrics import METRICS
from privatevault.ledger.integrity import Integrity
from privatevault.ledger.witness import WitnessStatus

#: The kinds whose objects are counted by state.
KINDS = ("Tenant", "ProtectionPolicy", "QuorumPolicy", "Approval", "ComplianceFramework")
#: The states of ``reconcile.status.state`` (kept equal by a unit test: this module sits below it).
STATES = ("Ready", "Stalled", "AwaitingQuorum", "Reconciling")


class OperatorMetrics(Collector):
    def __init__(
        self,
        integrity: Integrity | None = None,
        witnesses: Mapping[str, WitnessStatus] | None = None,
        *,
        forget_after: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        #: (kind, name) -> (state, stalled reason, when last seen)
        self._objects: dict[tuple[str, str], tuple[str, str, float]] = {}
        self._forget_after, self._clock = forget_after, clock
        self._objects_lock = threading.Lock()  # reconcile threads observe, the scrape thread forgets
        self.inventories: dict[str, Inventory] = {}
        self.integrity = integrity if integrity is not None else Integrity()
        self.witnesses = witnesses if witnesses is not None else {}
        #: Gated objects seen to disappear without a quorum decision, by kind.
        self.bypassed: defaultdict[str, int] = defaultdict(int)
        #: Decisions on gated actions, by action and state (Approved, Pending, Refused, Expired).
        self.decisions: defaultdict[tuple[str, str], int] = defaultdict(int)
        #: Compliance by framework name: its pooled score and each tenant's (score, failing controls).
        self.compliance: dict[str, tuple[int | None, Mapping[str, tuple[int | None, int]]]] = {}

    def observe(self, kind: str, name: str, state: str, reason: str = "") -> None:
        """The state of an object as its reconcile just left it (``reason``: why it is Stalled)."""
        with self._objects_lock:
            self._objects[(kind, name)] = (state, reason, self._clock())

    def forget(self, kind: str, name: str) -> None:
        with self._objects_lock:
            self._objects.pop((kind, name), None)

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
        yield from self._witnesses()
        yield from self._quorum()
        yield from self._states()
        yield from self._compliance()

    def _compliance(self) -> Iterator[Metric]:
        score = GaugeMetricFamily(
            "privatevault_compliance_score",
            "A tenant's compliance score (0-100) under a framework",
            labels=["framework", "tenant"],
        )
        failing = GaugeMetricFamily(
            "privatevault_compliance_failing_controls",
            "Controls of the framework the tenant fails",
            labels=["framework", "tenant"],
        )
        pooled = GaugeMetricFamily(
            "privatevault_compliance_framework_score",
            "A framework's compliance score (0-100) pooled over its tenants",
            labels=["framework"],
        )
        for framework, (value, tenants) in sorted(list(self.compliance.items())):
            if value is not None:
                pooled.add_metric([framework], float(value))
            for tenant, (tenant_score, tenant_failing) in sorted(tenants.items()):
                if tenant_score is not None:
                    score.add_metric([framework, tenant], float(tenant_score))
                failing.add_metric([framework, tenant], float(tenant_failing))
        yield from (score, failing, pooled)

    def _states(self) -> Iterator[Metric]:
        cutoff = self._clock() - self._forget_after
        counts: defaultdict[tuple[str, str], int] = defaultdict(int)
        stalled: defaultdict[tuple[str, str], int] = defaultdict(int)
        with self._objects_lock:
            for key in [key for key, (_, _, seen) in self._objects.items() if seen < cutoff]:
                del self._objects[key]
            current = list(self._objects.items())
        for key, (state, reason, _) in current:
            counts[(key[0], state)] += 1
            if state == "Stalled":
                stalled[(key[0], reason)] += 1
        family = GaugeMetricFamily(
            "privatevault_objects", "Objects the operator reconciles, by kind and state", labels=["kind", "state"]
        )
        for kind in sorted({*KINDS, *(k for k, _ in counts)}):
            for state in STATES:
                family.add_metric([kind, state], float(counts.get((kind, state), 0)))
        yield family
        reasons = GaugeMetricFamily(
            "privatevault_objects_stalled", "Stalled objects by kind and reason", labels=["kind", "reason"]
        )
        for (kind, reason), count in sorted(stalled.items()):
            reasons.add_metric([kind, reason], float(count))
        yield reasons

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

    def _witnesses(self) -> Iterator[Metric]:
        ok = GaugeMetricFamily(
            "privatevault_ledger_witness_ok",
            "1 while the witness cosigned the last checkpoint submitted to it; 0 after it failed (reason label)",
            labels=["witness", "reason"],
        )
        failures = CounterMetricFamily(
            "privatevault_ledger_witness_failures",
            "Checkpoints the witness did not cosign (unreachable, refused, bad answer)",
            labels=["witness"],
        )
        size = GaugeMetricFamily(
            "privatevault_ledger_witness_cosigned_size", "Tree size the witness cosigned last", labels=["witness"]
        )
        for status in list(self.witnesses.values()):
            ok.add_metric([status.name, status.reason], 1.0 if status.ok else 0.0)
            failures.add_metric([status.name], float(status.failures_total))
            if status.cosigned_size is not None:
                size.add_metric([status.name], float(status.cosigned_size))
        yield from (ok, failures, size)
