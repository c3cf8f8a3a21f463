"""The API server's own request counters, read from its ``/metrics`` before and after a window.

Two counters matter, and they answer different questions:

- ``apiserver_request_total`` (labels verb, dry_run, group, version, resource, subresource, scope,
  component, code) says *what* was asked for. It has no user label, so on its own it counts every
  client at once: the controller manager, the API server's own loopback client, the bench's kubectl.
- ``apiserver_flowcontrol_dispatched_requests_total`` (labels priority_level, flow_schema), from
  API Priority and Fairness, says *who* asked, as far as flow schemas tell clients apart: every
  request, exempt ones included, is counted once under the flow schema that matched it. A client
  given a flow schema of its own is counted exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

from tests.support import Kubectl

REQUESTS = "apiserver_request_total"
DISPATCHED = "apiserver_flowcontrol_dispatched_requests_total"

Series = tuple[str, tuple[tuple[str, str], ...]]
"""A sample's name and its labels, sorted: one time series."""

Snapshot = dict[Series, float]


def parse(text: str) -> Snapshot:
    """The two request counters' series in a Prometheus text exposition; everything else is dropped."""
    wanted = {REQUESTS, DISPATCHED}
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in wanted
    }


def scrape(kubectl: Kubectl) -> Snapshot:
    """The counters now, read by the bench's admin (``/metrics`` needs that)."""
    return parse(kubectl.run("get", "--raw", "/metrics").stdout)


def delta(before: Snapshot, after: Snapshot) -> Snapshot:
    """What each series counted between the two snapshots (a series born meanwhile started at 0)."""
    return {series: value - before.get(series, 0.0) for series, value in after.items()}


def dispatched(counts: Snapshot, flow_schema: str) -> float:
    """Requests dispatched under ``flow_schema``, over all priority levels."""
    return sum(
        value
        for (name, labels), value in counts.items()
        if name == DISPATCHED and ("flow_schema", flow_schema) in labels
    )


def call(labels: Mapping[str, str]) -> str:
    """A readable name for one kind of request: ``APPLY networking.k8s.io/networkpolicies``,
    ``APPLY (dry run) resourcequotas``, ``PATCH tenants/status``, ``GET (non-resource)``."""
    verb = labels.get("verb", "?") + (" (dry run)" if labels.get("dry_run") else "")
    resource = labels.get("resource", "")
    if not resource:
        return f"{verb} (non-resource)"
    group = labels.get("group", "")
    path = f"{group}/{resource}" if group else resource
    subresource = labels.get("subresource", "")
    return f"{verb} {path}/{subresource}" if subresource else f"{verb} {path}"


def by_call(counts: Snapshot) -> dict[str, float]:
    """``apiserver_request_total`` summed by kind of request (over versions, scopes and codes)."""
    totals: defaultdict[str, float] = defaultdict(float)
    for (name, labels), value in counts.items():
        if name == REQUESTS:
            totals[call(dict(labels))] += value
    return dict(totals)
