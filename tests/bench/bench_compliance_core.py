"""Cost of the pure compliance core: 20 frameworks of 20 controls over 1,000 tenants.

A tenant has 3 namespaces, 10 workloads and 5 certificates; the controls use every check of the
library. ``compliance_full_20x1000_s`` is one full evaluation of every framework against every
tenant, with the framework summaries (design target ≤ 30 s, with the controller's work on top);
``compliance_one_tenant_20_frameworks_ms`` re-evaluates one tenant under the 20 frameworks, with
what changed and its record (design target ≤ 1 s); both are the median of a few runs.

    python -m tests.bench.bench_compliance_core      # prints the figures as JSON
"""

from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from privatevault.api.v1alpha1.complianceframework import ComplianceFrameworkSpec
from privatevault.compliance import evaluate as ev
from privatevault.compliance import records
from privatevault.compliance.checks import CHECK_NAMES, Finding
from privatevault.compliance.facts import (
    CertFact,
    ClusterFacts,
    ExportFact,
    NamespaceFacts,
    PolicyFacts,
    QuorumRuleFacts,
    TenantFacts,
    WorkloadFact,
    labels_of,
)
from privatevault.compliance.waivers import NONE

FRAMEWORKS = 20
CONTROLS = 20
TENANTS = 1000
RUNS = 3
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
PARAMS: dict[str, dict[str, Any]] = {"data-residency": {"regions": ["eu-west-1"]}, "quota-set": {"resources": ["pods"]}}
CLUSTER = ClusterFacts(checkpoint_verified_at=NOW - timedelta(hours=1), checkpoint_size=10_000, witness_cosignatures=1)
POLICY = PolicyFacts("cnsa", "PQC", frozenset({"ML-KEM-1024", "ML-DSA-87", "AES-256-GCM"}), ready=True)


def framework(f: int) -> ev.Framework:
    names = list(CHECK_NAMES)
    controls = [
        {
            "id": f"F{f}-C{c}",
            "title": "control",
            "severity": ("Low", "Medium", "High", "Critical")[c % 4],
            "checks": [
                {"name": names[(f + c) % len(names)], "params": PARAMS.get(names[(f + c) % len(names)], {})},
                {
                    "name": names[(f + 3 * c + 1) % len(names)],
                    "params": PARAMS.get(names[(f + 3 * c + 1) % len(names)], {}),
                },
            ],
        }
        for c in range(CONTROLS)
    ]
    return ev.compile_framework(
        ComplianceFrameworkSpec.model_validate({"framework": "SOC2", "version": "2017", "controls": controls})
    )


def tenant(i: int) -> TenantFacts:
    name = f"tenant-{i}"
    namespaces = tuple(
        NamespaceFacts(
            f"{name}-{n}",
            labels=labels_of({"pod-security.kubernetes.io/enforce": "restricted"}),
            has_default_deny=i % 7 != 0,
            quota_hard=frozenset({"pods", "requests.cpu"}),
            owner_binding=True,
            mcs_label=f"s0:c{i},c{i + 1}",
        )
        for n in range(3)
    )
    return TenantFacts(
        name=name,
        uid=f"uid-{i}",
        region="eu-west-1",
        owners=2,
        deletion_policy="CryptoShred",
        mcs_level=f"s0:c{i},c{i + 1}",
        kms_provider="vault",
        kek_created=NOW - timedelta(days=i % 120),
        namespaces=namespaces,
        workloads=tuple(WorkloadFact(f"{name}-0", "Deployment", f"app-{w}", True, "cnsa") for w in range(10)),
        certificates=tuple(
            CertFact(f"{name}-1", f"cert-{c}", NOW + timedelta(days=10 * c), c % 2 == 0, 20 * c) for c in range(5)
        ),
        protection=POLICY,
        quorum_policy="two-person",
        quorum_rules=(QuorumRuleFacts("DeleteTenant", 2, frozenset({"a", "b"})),),
        last_export=ExportFact("weekly", NOW - timedelta(days=3)),
    )


def run() -> dict[str, float]:
    frameworks = [framework(f) for f in range(FRAMEWORKS)]
    tenants = [tenant(i) for i in range(TENANTS)]
    full = []
    for _ in range(RUNS):
        start = time.perf_counter()
        memos: list[dict[str, Finding]] = [{} for _ in tenants]
        for fw in frameworks:
            ev.summarize([ev.evaluate(fw, t, CLUSTER, NOW, NONE, memo=m) for t, m in zip(tenants, memos, strict=True)])
        full.append(time.perf_counter() - start)
    before = [ev.evaluate(fw, tenants[0], CLUSTER, NOW, NONE) for fw in frameworks]
    one = []
    for _ in range(RUNS * 5):
        start = time.perf_counter()
        memo: dict[str, Finding] = {}
        for fw, prev in zip(frameworks, before, strict=True):
            after = ev.evaluate(fw, tenants[0], CLUSTER, NOW + timedelta(days=1), NONE, memo=memo)
            changed = ev.changes(prev, after)
            if changed:
                details = records.details(
                    framework="f",
                    framework_uid="u",
                    standard=fw.standard,
                    version=fw.version,
                    generation=1,
                    previous=1,
                    result=after,
                    changed=changed,
                )
                records.change_key("u", after.tenant, 1, details["controls"])
        one.append(time.perf_counter() - start)
    return {
        "compliance_full_20x1000_s": statistics.median(full),
        "compliance_one_tenant_20_frameworks_ms": 1000 * statistics.median(one),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
