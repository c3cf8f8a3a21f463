"""The ComplianceFramework decisions against fakes: tenants selected by labels or by their own refs;
one compliance-state record per tenant that changed (none for an unchanged evaluation, none after a
restart rebuilt from the ledger); a fixed tenant's transition recorded with its previous record;
a full evaluation only when due; bad params refused; a missing QuorumPolicy stalls and waives
nothing; an exception waits for its quorum, is active once approved and expires; Reports written
only when they changed, and deleted with their tenant."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from privatevault.api.v1alpha1 import ComplianceFramework, QuorumPolicy
from privatevault.app import compliance_ports
from privatevault.compliance_facts import Facts, Gates
from privatevault.errors import SpecError
from privatevault.ledger.integrity import Integrity
from privatevault.reconcile import complianceframework as decisions
from privatevault.reconcile import quorumpolicy
from privatevault.reconcile.complianceframework import CompliancePorts, Memory
from tests import builders
from tests.quorum_keys import ApproverKeys, approver, signed_approval

from .fakes import FakeCluster, FakeLedger, FakeReports

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
KEYS = {name: ApproverKeys.generate(ml_dsa65=False) for name in ("alice", "bob", "carol")}

RESIDENCY = builders.control(
    "residency",
    "Data stays in the EU",
    severity="High",
    checks=[builders.compliance_check("data-residency", regions=["eu-west-1"])],
)
QUOTA = builders.control("quota", "Namespaces have quotas", checks=[builders.compliance_check("quota-set")])


def tenant_body(
    name: str, *, region: str = "eu-west-1", labels: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    body = dict(
        builders.tenant(
            name,
            uid=f"uid-{name}",
            region=region,
            labels=labels if labels is not None else {"tier": "prod"},
            status={"namespaces": [name], "mcsLevel": "s0:c1,c2"},
            **spec,
        )
    )
    return body


def framework_body(generation: int = 1, **options: Any) -> dict[str, Any]:
    options.setdefault("controls", [RESIDENCY, QUOTA])
    options.setdefault("tenant_selector", {"matchLabels": {"tier": "prod"}})
    return dict(builders.compliance_framework("soc2", uid="cf-uid", generation=generation, **options))


class World:
    def __init__(self) -> None:
        self.cluster, self.ledger, self.reports = FakeCluster(), FakeLedger(), FakeReports()
        self.memory = Memory()
        self.gates = Gates(self.ledger)
        self.facts = Facts(self.cluster, self.gates, Integrity(), {})
        self.tenants: dict[str, dict[str, Any]] = {}

    def ports(self) -> CompliancePorts:
        return compliance_ports(self)  # type: ignore[arg-type]  # fakes of the App's adapters

    def add(self, body: dict[str, Any]) -> None:
        self.tenants[body["metadata"]["name"]] = body
        self.cluster.objects[("Tenant", None, body["metadata"]["name"])] = body

    def reconcile(self, body: dict[str, Any], now: datetime = NOW) -> decisions.Outcome:
        cf = ComplianceFramework.model_validate(body)
        return decisions.reconcile(
            cf, body, list(self.tenants.values()), ports=self.ports(), memory=self.memory, actor="test", now=now
        )

    def changed(self, body: dict[str, Any], now: datetime = NOW) -> list[decisions.Frame]:
        return decisions.tenant_changed(body, ports=self.ports(), memory=self.memory, actor="test", now=now)

    def actions_of(self, prefix: str) -> list[str]:
        return [json.loads(r.canonical)["action"] for r in self.ledger.records if r.idempotency_key.startswith(prefix)]

    def states(self) -> list[dict[str, Any]]:
        return [
            json.loads(r.canonical)
            for r in self.ledger.records
            if json.loads(r.canonical)["action"] == "compliance-state"
        ]


def world_with(*tenants: dict[str, Any]) -> World:
    world = World()
    for body in tenants:
        world.add(body)
    return world


def test_the_selector_and_the_tenants_own_refs_choose_who_is_evaluated() -> None:
    cf = ComplianceFramework.model_validate(
        framework_body(
            tenant_selector={
                "matchLabels": {"tier": "prod"},
                "matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["lab"]}],
            }
        )
    )
    assert decisions.selected(cf, tenant_body("a"))
    assert not decisions.selected(cf, tenant_body("b", labels={"tier": "prod", "team": "lab"}))
    assert not decisions.selected(cf, tenant_body("c", labels={"tier": "dev"}))
    assert decisions.selected(cf, tenant_body("d", labels={}, compliance_framework_refs=["soc2"]))
    deleting = tenant_body("e")
    deleting["metadata"]["deletionTimestamp"] = "2026-11-30T11:00:00Z"
    assert not decisions.selected(cf, deleting)


def test_a_first_evaluation_records_each_tenant_once_and_an_unchanged_one_nothing() -> None:
    world = world_with(tenant_body("acme"), tenant_body("globex", region="us-east-1"), tenant_body("x", labels={}))
    outcome = world.reconcile(framework_body())
    records = world.states()
    assert sorted(r["tenant"] for r in records) == ["acme", "globex"]
    acme = next(r for r in records if r["tenant"] == "acme")["details"]
    assert acme["controls"]["residency"] == {"state": "pass", "severity": "High", "weight": 1}
    assert acme["controls"]["quota"]["state"] == "fail"  # no ResourceQuota in the caches
    assert acme["previous"] is None and acme["score"] == 66  # 8 of 12
    assert outcome.full and outcome.done.facts["tenants"] == 2
    assert outcome.done.message == "score 33 over 2 tenants; 3 failing controls"
    assert outcome.done.facts["lowest"][0] == {"tenant": "globex", "score": 0, "failing": ["residency", "quota"]}
    # The resync before the interval evaluates nothing; after it, nothing changed: no record.
    again = world.reconcile(framework_body(), NOW + timedelta(minutes=5))
    assert not again.full and again.done == outcome.done
    later = world.reconcile(framework_body(), NOW + timedelta(hours=2))
    assert later.full and len(world.states()) == 2


def test_a_fixed_tenant_is_one_record_naming_its_transition_and_its_previous_record() -> None:
    world = world_with(tenant_body("globex", region="us-east-1"))
    world.reconcile(framework_body())
    [first] = world.states()
    # The region is immutable; a tenant's labels and quota are what a platform team fixes.
    world.cluster.objects[("ResourceQuota", "globex", "q")] = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q", "namespace": "globex"},
        "spec": {"hard": {"pods": "10"}},
    }
    [frame] = world.changed(world.tenants["globex"])
    assert frame.uid == "cf-uid"
    first_seq = next(r.seq for r in world.ledger.records if json.loads(r.canonical)["action"] == "compliance-state")
    [_, second] = world.states()
    details = second["details"]
    assert details["previous"] == first_seq and first["details"]["controls"]["quota"]["state"] == "fail"
    assert [(c["control"], c["from"], c["to"]) for c in details["changed"]] == [("quota", "fail", "pass")]
    assert details["changed"][0]["findings"][0]["check"] == "quota-set"
    assert world.changed(world.tenants["globex"]) == []  # the same tenant again: nothing moved, nothing written
    assert len(world.states()) == 2


def test_a_restart_rebuilt_from_the_ledger_writes_nothing_new() -> None:
    world = world_with(tenant_body("acme"), tenant_body("globex", region="us-east-1"))
    world.reconcile(framework_body())
    before = len(world.ledger.records)
    world.memory = Memory()  # a new process: the same ledger, the same caches
    outcome = world.reconcile(framework_body())
    assert outcome.full and len(world.ledger.records) == before
    assert outcome.done.facts["score"] == 33


def test_bad_params_are_refused_naming_the_control_and_the_check() -> None:
    world = world_with(tenant_body("acme"))
    bad = builders.control("residency", "x", checks=[builders.compliance_check("data-residency", regions=[])])
    with pytest.raises(SpecError) as refused:
        world.reconcile(framework_body(controls=[bad]))
    assert refused.value.reason == "InvalidCheckParams"
    assert "residency" in str(refused.value) and "data-residency" in str(refused.value)
    assert world.states() == [] and world.memory.frames == {}


EXPIRES = "2026-12-01T12:00:00Z"


def exception_framework() -> dict[str, Any]:
    return framework_body(
        quorum_policy_ref="compliance",
        exceptions=[{"control": "quota", "tenants": ["acme"], "reason": "migration", "expires": EXPIRES}],
    )


def in_force(world: World) -> None:
    body = dict(
        builders.quorum_policy(
            "compliance",
            approvers=[approver(name, KEYS[name], roles=["security"]) for name in KEYS],
            rules=[builders.rule("AddComplianceException", min_approvals=2)],
            uid="qp-uid",
            generation=1,
        )
    )
    quorumpolicy.reconcile(
        QuorumPolicy.model_validate(body), body, cluster=world.cluster, ledger=world.ledger, actor="test", now=NOW
    )
    world.cluster.put(body)


def test_a_missing_quorum_policy_stalls_and_waives_nothing() -> None:
    world = world_with(tenant_body("acme"))
    outcome = world.reconcile(exception_framework())
    assert outcome.done.held is not None and outcome.done.held.reason == "QuorumPolicyNotFound"
    assert outcome.done.facts["score"] == 66  # evaluated, the exception not applied
    assert outcome.done.facts["exceptions"][0]["state"] == "AwaitingQuorum"


def test_an_exception_waits_for_its_quorum_then_applies_until_it_expires() -> None:
    world = world_with(tenant_body("acme"))
    in_force(world)
    held = world.reconcile(exception_framework())
    [row] = held.done.facts["exceptions"]
    # Two approvals, and one more: no admission webhook saw who asked (it might be an approver).
    assert row["state"] == "AwaitingQuorum" and "0/3" in row["message"]
    [pending] = held.done.facts["pending"]
    assert pending.action == "AddComplianceException" and pending.approvals == "0/3"
    assert "pvctl approvals create ComplianceFramework/soc2" in pending.sign_with
    assert held.done.held is not None and held.done.held.reason == "AwaitingQuorum"
    assert held.done.facts["score"] == 66
    for name, keys in KEYS.items():
        manifest = signed_approval(None, pending.model_dump(mode="json", by_alias=True), name, keys)
        manifest["metadata"]["creationTimestamp"] = "2026-11-30T11:59:00Z"
        world.cluster.put(manifest)
    active = world.reconcile(exception_framework(), NOW + timedelta(minutes=1))
    assert active.full and active.done.held is None and active.done.facts["pending"] == []
    assert active.done.facts["exceptions"][0]["state"] == "Active"
    assert active.done.facts["score"] == 100  # quota excepted: only residency counts
    excepted = world.states()[-1]["details"]["changed"]
    assert [(c["control"], c["to"]) for c in excepted] == [("quota", "excepted")] and excepted[0]["exception"]
    # Approved once, it stays approved (the Approvals may lapse); at its expiry it stops applying.
    world.cluster.objects = {k: v for k, v in world.cluster.objects.items() if k[0] != "Approval"}
    expired = world.reconcile(exception_framework(), NOW + timedelta(days=1))
    assert expired.full and expired.done.facts["exceptions"][0]["state"] == "Expired"
    assert expired.done.facts["score"] == 66
    assert [(c["from"], c["to"]) for c in world.states()[-1]["details"]["changed"]] == [("excepted", "fail")]


def approve(world: World, pending: Any, *names: str, keys: ApproverKeys | None = None) -> None:
    for name in names:
        manifest = signed_approval(None, pending.model_dump(mode="json", by_alias=True), name, keys or KEYS[name])
        manifest["metadata"]["creationTimestamp"] = "2026-11-30T11:59:00Z"
        world.cluster.put(manifest)


def test_a_framework_made_again_under_another_policy_waits_and_the_old_policy_decides_meanwhile() -> None:
    world = world_with(tenant_body("acme"))
    in_force(world)
    takeover = dict(
        builders.quorum_policy(
            "takeover",
            approvers=[approver("mallory", KEYS["alice"], roles=["security"])],  # mallory holds alice's key here
            rules=[builders.rule("AddComplianceException", min_approvals=1, allow_self_approval=True)],
            uid="qp-takeover",
        )
    )
    quorumpolicy.reconcile(
        QuorumPolicy.model_validate(takeover), takeover, cluster=world.cluster, ledger=world.ledger, actor="t", now=NOW
    )
    world.reconcile(framework_body(quorum_policy_ref="compliance"))  # the approving policy in force: compliance
    world.memory.drop("cf-uid")  # deleted, and made again under its name by someone holding takeover's key
    again = framework_body(quorum_policy_ref="takeover", exceptions=exception_framework()["spec"]["exceptions"])
    again["metadata"]["uid"] = "cf-again"
    held = world.reconcile(again)
    moved, exception = held.done.facts["pending"]
    assert (moved.action, moved.policy, moved.approvals) == ("ChangeQuorumGate", "compliance", "0/3")
    assert (exception.action, exception.policy) == ("AddComplianceException", "compliance")
    mallory = KEYS["alice"]  # takeover's only approver; under compliance, alice's key counts once of 3
    approve(world, exception, "alice")
    still = world.reconcile(again, NOW + timedelta(minutes=1))
    assert still.done.facts["exceptions"][0]["state"] == "AwaitingQuorum" and still.done.facts["score"] == 66

    approve(world, moved, "alice", "bob", "carol")  # compliance's approvers let the move through
    [under_takeover] = world.reconcile(again, NOW + timedelta(minutes=2)).done.facts["pending"]
    assert (under_takeover.policy, under_takeover.approvals) == ("takeover", "0/1")
    approve(world, under_takeover, "mallory", keys=mallory)
    after = world.reconcile(again, NOW + timedelta(minutes=3))
    assert after.done.facts["exceptions"][0]["state"] == "Active" and after.done.facts["score"] == 100
    assert world.actions_of("complianceframework/soc2/") == ["complianceframework-gate-in-force"] * 2


def test_a_framework_made_again_under_the_same_policy_is_not_held() -> None:
    world = world_with(tenant_body("acme"))
    in_force(world)
    world.reconcile(framework_body(quorum_policy_ref="compliance"))
    world.memory.drop("cf-uid")
    again = exception_framework()
    again["metadata"]["uid"] = "cf-again"
    [pending] = world.reconcile(again).done.facts["pending"]
    assert pending.action == "AddComplianceException"
    assert world.actions_of("complianceframework/soc2/") == ["complianceframework-gate-in-force"]


def test_reports_are_written_when_changed_and_go_with_their_tenant() -> None:
    world = world_with(tenant_body("acme"))
    world.reconcile(framework_body())
    report = world.reports.objects[("acme", "privatevault-soc2")]
    assert {r["rule"]: r["result"] for r in report["results"]} == {"residency": "pass", "quota": "fail"}
    assert report["metadata"]["ownerReferences"] == [
        {"apiVersion": "privatevault.io/v1alpha1", "kind": "ComplianceFramework", "name": "soc2", "uid": "cf-uid"}
    ]
    world.reconcile(framework_body(), NOW + timedelta(hours=2))
    assert world.reports.writes == 1  # a later evaluation saying the same writes nothing
    world.tenants["acme"]["metadata"]["labels"] = {"tier": "dev"}
    [frame] = world.changed(world.tenants["acme"])
    assert world.reports.objects == {} and decisions.done(frame, world.memory, NOW).facts["tenants"] == 0


def test_no_report_is_written_without_the_openreports_crd() -> None:
    world = world_with(tenant_body("acme"))
    world.reports.present = False
    world.reconcile(framework_body())
    assert world.reports.objects == {} and len(world.states()) == 1


def test_a_tenant_back_in_a_framework_names_its_last_record_as_previous() -> None:
    world = world_with(tenant_body("acme"))
    world.reconcile(framework_body())
    [first] = world.states()
    world.tenants["acme"]["metadata"]["labels"] = {}
    world.changed(world.tenants["acme"])  # it leaves: no record
    world.cluster.objects[("ResourceQuota", "acme", "q")] = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q", "namespace": "acme"},
        "spec": {"hard": {"pods": "1"}},
    }
    world.changed(world.tenants["acme"])
    world.tenants["acme"]["metadata"]["labels"] = {"tier": "prod"}
    world.changed(world.tenants["acme"])  # back, quota now set: a transition from its last record
    del world.cluster.objects[("ResourceQuota", "acme", "q")]
    world.changed(world.tenants["acme"])  # the same states as its first record: a record of its own
    seqs = [r.seq for r in world.ledger.records if json.loads(r.canonical)["action"] == "compliance-state"]
    states = world.states()
    assert len(states) == 3 and states[2]["details"]["controls"] == first["details"]["controls"]
    assert [s["details"]["previous"] for s in states] == [None, seqs[0], seqs[1]]


def test_a_resync_of_an_unchanged_tenant_evaluates_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    world = world_with(tenant_body("globex", region="us-east-1"))
    world.reconcile(framework_body())
    evaluated: list[str] = []
    real = decisions.evaluate_tenant

    def counted(frame: Any, body: Any, *args: Any, **kwargs: Any) -> bool:
        evaluated.append(str(body["metadata"]["name"]))
        return real(frame, body, *args, **kwargs)

    monkeypatch.setattr(decisions, "evaluate_tenant", counted)
    world.changed(world.tenants["globex"])
    world.changed(world.tenants["globex"])  # a resync: same facts, same frameworks
    assert evaluated == ["globex"]
    world.cluster.objects[("ResourceQuota", "globex", "q")] = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q", "namespace": "globex"},
        "spec": {"hard": {"pods": "10"}},
    }
    world.changed(world.tenants["globex"])  # a child changed: evaluated again
    assert evaluated == ["globex", "globex"]
