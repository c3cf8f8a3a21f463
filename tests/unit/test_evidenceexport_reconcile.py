"""EvidenceExport reconcile on fakes: bad specs are Stalled with their reason, an export of tenants
gated by a QuorumPolicy waits in AwaitingQuorum until approved, then the bundle is written at its
destination (never partially), reported Ready with its facts, not rebuilt while it is there, and
rebuilt to the same bytes when it is gone."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from privatevault.api.v1alpha1 import EvidenceExport, QuorumPolicy
from privatevault.errors import GateClosed, SpecError
from privatevault.evidence import verifier
from privatevault.evidence.exporter import Exporter
from privatevault.ledger.checkpoint import parse_verifier_key
from privatevault.reconcile import evidenceexport, quorumpolicy
from privatevault.reconcile.ports import EvidenceExportPorts
from tests import builders
from tests.evidence_scenario import END, ORIGIN, START, Scenario, scenario
from tests.quorum_keys import ApproverKeys, approver, signed_approval
from tests.unit.fakes import FakeCluster, FakeLedger

NOW = END + timedelta(days=1)
ALICE = ApproverKeys.generate()


class World:
    def __init__(self, tmp: Path, *, gated: bool = True) -> None:
        self.evidence: Scenario = scenario()
        self.cluster, self.ledger = FakeCluster(), FakeLedger()
        self.destination = tmp / "evidence"
        self.destination.mkdir()
        self.ports = EvidenceExportPorts(
            cluster=self.cluster,
            ledger=self.ledger,
            exporter=Exporter(self.evidence.ledger, origin=ORIGIN),
            sign=lambda statement, _: self.evidence.sign(statement),
        )
        self.cluster.put(dict(builders.tenant("acme", uid="uid-acme", quorum_policy_ref="exports" if gated else None)))
        policy = dict(
            builders.quorum_policy(
                "exports",
                approvers=[approver("alice", ALICE, roles=["security"])],
                rules=[builders.rule("CreateEvidenceExport", allow_self_approval=True)],
                uid="qp-uid",
                generation=1,
            )
        )
        quorumpolicy.reconcile(
            QuorumPolicy.model_validate(policy), policy, cluster=self.cluster, ledger=self.ledger, actor="t", now=NOW
        )

    def body(self, **options: Any) -> dict[str, Any]:
        options.setdefault("destination", {"path": str(self.destination)})
        return dict(
            builders.evidence_export(
                "q1",
                start=START.isoformat().replace("+00:00", "Z"),
                end=END.isoformat().replace("+00:00", "Z"),
                uid="ee-uid",
                generation=1,
                **options,
            )
        )

    def run(self, body: dict[str, Any], status: dict[str, Any] | None = None) -> Any:
        if status is not None:
            body = {**body, "status": status}
        return evidenceexport.reconcile(EvidenceExport.model_validate(body), body, ports=self.ports, actor="t", now=NOW)

    def approve(self, pending: Any) -> None:
        manifest = signed_approval(None, pending.model_dump(mode="json", by_alias=True), "alice", ALICE)
        manifest["metadata"]["creationTimestamp"] = (NOW - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.cluster.put(manifest)


def status_of(done: Any, generation: int = 1) -> dict[str, Any]:
    facts = {k: v for k, v in done.facts.items() if k != "pending"}
    return {
        "observedGeneration": generation,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Reconciled",
                "message": done.message,
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": generation,
            }
        ],
        **{_camel(k): v for k, v in facts.items()},
    }


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"end": (NOW + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}, "WindowInFuture"),
        ({"tenants": ["acme", "nobody"]}, "TenantNotFound"),
        ({"destination": {"path": "/proc/no-such-place"}}, "DestinationNotWritable"),
        ({"signing": ["Ed25519", "ML-DSA-87"]}, "SigningUnavailable"),
    ],
)
def test_a_spec_that_cannot_be_exported_is_stalled_with_its_reason(
    tmp_path: Path, change: dict[str, Any], reason: str
) -> None:
    world = World(tmp_path)
    body = world.body(**{k: v for k, v in change.items() if k != "end"})
    if "end" in change:
        body["spec"]["window"]["to"] = change["end"]
    with pytest.raises(SpecError) as refused:
        world.run(body)
    assert refused.value.reason == reason
    assert not list(world.destination.iterdir())


def test_a_gated_export_waits_then_is_built_once_and_rebuilt_the_same(tmp_path: Path) -> None:
    world = World(tmp_path)
    body = world.body()
    held = world.run(body)
    assert isinstance(held.held, GateClosed) and held.held.reason == "AwaitingQuorum"
    [pending] = held.facts["pending"]
    assert (pending.action, pending.policy, pending.approvals) == ("CreateEvidenceExport", "exports", "0/1")
    assert not list(world.destination.iterdir())

    world.approve(pending)
    done = world.run(body)
    assert done.held is None, done.held
    bundle = world.destination / "q1.tar.gz"
    assert done.facts["location"] == str(bundle) and done.facts["checkpoint"] == 23
    assert [p.name for p in world.destination.iterdir()] == ["q1.tar.gz"]  # nothing left aside
    first = bundle.read_bytes()
    report = verifier.verify(
        bundle, [parse_verifier_key(k) for k in world.evidence.verifier_keys], [world.evidence.witness.verifier]
    )
    assert report.ok, report.problem
    actions = [json.loads(r.canonical)["action"] for r in world.ledger.records]
    assert actions.count("quorum-decision") == 1 and actions.count("export-evidence") == 1  # one tenant

    # Ready and there: not rebuilt, not decided again (even once the approval has gone).
    world.cluster.objects = {k: v for k, v in world.cluster.objects.items() if k[0] != "Approval"}
    written = bundle.stat().st_mtime_ns
    again = world.run(body, status_of(done))
    assert again.held is None and again.facts["digest"] == done.facts["digest"]
    assert bundle.stat().st_mtime_ns == written

    # Gone: rebuilt against the same checkpoints, to the same bytes.
    bundle.unlink()
    rebuilt = world.run(body, status_of(done))
    assert rebuilt.facts["digest"] == done.facts["digest"] and bundle.read_bytes() == first


def test_an_ungated_tenant_is_exported_at_once(tmp_path: Path) -> None:
    world = World(tmp_path, gated=False)
    done = world.run(world.body())
    assert done.held is None and (world.destination / "q1.tar.gz").is_file()
