"""The tenant benchmark's measures: request counters read from /metrics text, CPU and memory read
from /proc, and the bench PKI's extra client certificates."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from privatevault.testbench.errors import BenchError
from privatevault.testbench.pki import ClusterPKI
from tests.bench import procfs, request_counts

EXPOSITION = """\
# HELP apiserver_request_total [STABLE] Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",dry_run="",group="",resource="namespaces",subresource="",verb="GET"} 7
apiserver_request_total{code="404",dry_run="",group="",resource="namespaces",subresource="",verb="GET"} 1
apiserver_request_total{code="200",dry_run="All",group="networking.k8s.io",resource="networkpolicies",verb="APPLY"} 3
apiserver_request_total{dry_run="",group="privatevault.io",resource="tenants",subresource="status",verb="PATCH"} 2
apiserver_request_total{code="200",dry_run="",group="",resource="",subresource="",verb="GET"} 4
# HELP apiserver_flowcontrol_dispatched_requests_total [BETA] Number of requests executed.
# TYPE apiserver_flowcontrol_dispatched_requests_total counter
apiserver_flowcontrol_dispatched_requests_total{flow_schema="pv-bench-operator",priority_level="exempt"} 11
apiserver_flowcontrol_dispatched_requests_total{flow_schema="exempt",priority_level="exempt"} 5
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
"""


def test_parse_keeps_only_the_two_request_counters() -> None:
    snapshot = request_counts.parse(EXPOSITION)
    assert {name for name, _ in snapshot} == {request_counts.REQUESTS, request_counts.DISPATCHED}
    assert len(snapshot) == 7


def test_delta_counts_series_born_in_the_window_from_zero() -> None:
    before = request_counts.parse(EXPOSITION.replace("} 11", "} 1"))
    del before[next(series for series in before if ("verb", "PATCH") in series[1])]
    window = request_counts.delta(before, request_counts.parse(EXPOSITION))
    assert request_counts.dispatched(window, "pv-bench-operator") == 10
    assert request_counts.by_call(window)["PATCH privatevault.io/tenants/status"] == 2
    assert request_counts.by_call(window)["GET namespaces"] == 0


@pytest.mark.parametrize(
    ("labels", "name"),
    [
        ({"verb": "GET", "group": "", "resource": "namespaces", "subresource": "", "dry_run": ""}, "GET namespaces"),
        (
            {"verb": "APPLY", "group": "networking.k8s.io", "resource": "networkpolicies", "dry_run": "All"},
            "APPLY (dry run) networking.k8s.io/networkpolicies",
        ),
        (
            {"verb": "PATCH", "group": "privatevault.io", "resource": "tenants", "subresource": "status"},
            "PATCH privatevault.io/tenants/status",
        ),
        ({"verb": "GET", "resource": ""}, "GET (non-resource)"),
    ],
)
def test_call_names_a_kind_of_request(labels: dict[str, str], name: str) -> None:
    assert request_counts.call(labels) == name


def test_by_call_sums_over_codes_and_ignores_the_flow_counter() -> None:
    calls = request_counts.by_call(request_counts.parse(EXPOSITION))
    assert calls == {
        "GET namespaces": 8,
        "APPLY (dry run) networking.k8s.io/networkpolicies": 3,
        "PATCH privatevault.io/tenants/status": 2,
        "GET (non-resource)": 4,
    }


def test_dispatched_sums_one_flow_schema() -> None:
    snapshot = request_counts.parse(EXPOSITION)
    assert request_counts.dispatched(snapshot, "exempt") == 5
    assert request_counts.dispatched(snapshot, "absent") == 0


def test_procfs_reads_this_process() -> None:
    spent = procfs.cpu_seconds(os.getpid())
    sum(range(200_000))
    assert procfs.cpu_seconds(os.getpid()) >= spent > 0
    assert 1 < procfs.peak_rss_mb(os.getpid()) < 100_000


def test_issue_client_signs_a_user_outside_system_masters(tmp_path: Path) -> None:
    pki = ClusterPKI(tmp_path)
    pki.generate("10.0.0.1")
    pki.issue_client("privatevault-operator", tmp_path / "op.crt", tmp_path / "op.key")
    cert = x509.load_pem_x509_certificate((tmp_path / "op.crt").read_bytes())
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "privatevault-operator"
    assert not cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    cert.verify_directly_issued_by(ca)
    assert (tmp_path / "op.key").stat().st_mode & 0o777 == 0o600


def test_issue_client_needs_the_pki_generated_here(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="not generated in this process"):
        ClusterPKI(tmp_path).issue_client("someone", tmp_path / "c.crt", tmp_path / "c.key")
