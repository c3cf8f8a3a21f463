"""Cost of a quorum decision: a rule over 50 approvers with 50 Approvals, signatures checked.

One decision is what the operator does on each reconcile of a held object: judge every Approval
(``ballots.verify``: parse the envelope and the statement, compare the mirror fields, verify the
signatures under the approver's keys in the policy) and then decide (``gate.hold``: bind, count,
the pending status). ``quorum_decision_50_*_ms`` is the median over several runs of all of it for
50 Approvals signed with Ed25519 only, ML-DSA-65 only, or both (the rule asks for what they carry);
``quorum_decide_only_50_ms`` is the decision alone over 50 ballots already judged.
``quorum_verify_*_per_s`` is Approvals judged per second, one at a time (median of batches).

    python -m tests.bench.bench_quorum      # prints the figures as JSON
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from privatevault.api.v1alpha1 import Approval
from privatevault.api.v1alpha1.quorumpolicy import QuorumPolicySpec
from privatevault.quorum import Judged, Requester, changes, dsse, verify
from privatevault.quorum.gate import InForce, hold
from tests import builders
from tests.bench.timing import per_second
from tests.quorum_keys import ApproverKeys, approver, signed_approval

APPROVERS = 50
RUNS = 15
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ROLES = ("security", "platform", "audit")
REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1")
MODES: dict[str, tuple[tuple[dsse.Algorithm, ...], str]] = {
    "ed25519": (("Ed25519",), "any"),
    "ml_dsa_65": (("ML-DSA-65",), "any"),
    "hybrid": (("Ed25519", "ML-DSA-65"), "hybrid-required"),
}


def _setup(algorithms: Sequence[dsse.Algorithm], mode: str, keys: list[ApproverKeys]) -> dict[str, Any]:
    names = [f"approver-{n}" for n in range(APPROVERS)]
    spec = QuorumPolicySpec.model_validate(
        builders.quorum_policy(
            "fifty",
            approvers=[
                approver(name, k, roles=[ROLES[n % 3]], region=REGIONS[n % 5])
                for n, (name, k) in enumerate(zip(names, keys, strict=True))
            ],
            rules=[
                builders.rule(
                    min_approvals=APPROVERS - 1,
                    required_roles=list(ROLES),
                    min_distinct_regions=len(REGIONS),
                    signature_mode=mode,
                )
            ],
        )["spec"]
    )
    tenant = builders.tenant("acme", uid="uid-acme", generation=2, deletion_policy="CryptoShred")
    change = changes.deletion(tenant)
    pending = builders.pending_action(
        change.action, policy="fifty", target_generation=2, digest=change.digest, approvals=f"0/{APPROVERS}"
    )
    approvals = []
    for name, k in zip(names, keys, strict=True):
        manifest = signed_approval(None, pending, name, k, not_after=NOW + timedelta(hours=1), algorithms=algorithms)
        manifest["metadata"]["creationTimestamp"] = "2026-06-01T11:30:00Z"
        approvals.append(Approval.model_validate(manifest))
    return {"spec": spec, "change": change, "approvals": approvals}


def _hold(spec: QuorumPolicySpec, change: changes.Change, judged: list[Judged]) -> str:
    held = hold(
        change,
        rules=spec.rules,
        policy=InForce("fifty", 1, spec),
        judged=judged,
        requester=Requester.of("someone@corp"),
        now=NOW,
    )
    return held.decision.state


def _decision(spec: QuorumPolicySpec, change: changes.Change, approvals: list[Approval]) -> str:
    return _hold(spec, change, [verify(a, "fifty", spec, NOW) for a in approvals])


def _median_ms(operation: Callable[[], object]) -> float:
    operation()
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        operation()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _measure(label: str, algorithms: Sequence[dsse.Algorithm], mode: str, keys: list[ApproverKeys]) -> dict[str, float]:
    world = _setup(algorithms, mode, keys)
    spec, change, approvals = world["spec"], world["change"], world["approvals"]
    state = _decision(spec, change, approvals)
    if state != "Approved":
        raise AssertionError(f"the {label} bench decision is {state}, not Approved: the bench is wrong")
    figures = {
        f"quorum_decision_50_{label}_ms": _median_ms(partial(_decision, spec, change, approvals)),
        f"quorum_verify_{label}_per_s": per_second(partial(verify, approvals[0], "fifty", spec, NOW)),
    }
    if label == "hybrid":
        judged = [verify(a, "fifty", spec, NOW) for a in approvals]
        figures["quorum_decide_only_50_ms"] = _median_ms(partial(_hold, spec, change, judged))
    return figures


def run() -> dict[str, float]:
    """Measure and return every figure; prints nothing."""
    keys = [ApproverKeys.generate() for _ in range(APPROVERS)]
    figures: dict[str, float] = {}
    for label, (algorithms, mode) in MODES.items():
        figures |= _measure(label, algorithms, mode, keys)
    return figures


if __name__ == "__main__":
    print(json.dumps({name: round(value, 4) for name, value in run().items()}, indent=2))
