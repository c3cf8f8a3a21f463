"""The kopf wiring against fake adapters: Reconciling written at once, Ready for the generation,
a refused spec Stalled and not retried, a dependency outage Reconciling naming the dependency and
since when, and retried; a gate retried less often; an idle reconcile writes no status; the
registry registers every kind's handlers and every cache index without touching a cluster; the
readiness probe fails while the checkpointer refuses to sign."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest

from privatevault.api.v1alpha1 import Tenant, TenantStatus
from privatevault.app import Finished, Locks, compliance_ports
from privatevault.cache import INDEXED, INFORMED
from privatevault.compliance_facts import Facts, Gates
from privatevault.errors import ConflictError, GateClosed, LedgerUnavailable
from privatevault.handlers import complianceframework, registry, wiring
from privatevault.handlers import evidenceexport as evidenceexport_handlers
from privatevault.handlers import tenant as tenant_handlers
from privatevault.ledger.integrity import Integrity, Refusal
from privatevault.metrics import OperatorMetrics
from privatevault.reconcile import status
from privatevault.reconcile.complianceframework import CompliancePorts, Memory
from privatevault.reconcile.ports import ProtectionPolicyPorts, TenantPorts
from privatevault.settings import Settings
from tests import builders

from .fakes import FakeCluster, FakeKeys, FakeLedger, FakeLevels, FakeReports

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LOG = logging.getLogger("test")


class StatusRecorder:
    """The live-cluster side of the view: only status patches are expected of the wiring."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, str, dict[str, Any]]] = []

    def patch_status(self, api_version: str, kind: str, name: str, body: dict[str, Any]) -> None:
        self.patches.append((kind, name, body))


class FakeView(FakeCluster):
    def __init__(self) -> None:
        super().__init__()
        self.live = StatusRecorder()
        self.bound: list[str] = []
        self.forgotten: list[tuple[str, str | None, str]] = []

    def bind(self, indexes: dict[str, Any]) -> None:
        self.bound.extend(indexes)

    def in_sync(self, obj: dict[str, Any]) -> bool:
        """As ``ClusterView.in_sync``: here, whether the object is exactly what is stored."""
        meta = obj["metadata"]
        return self.objects.get((obj["kind"], meta.get("namespace"), meta["name"])) == obj

    def forget(self, kind: str, namespace: str | None, name: str) -> None:
        self.forgotten.append((kind, namespace, name))


@dataclass
class FakeApp:
    """An App of fakes, built the way the composition root builds the real one."""

    settings: Settings = field(default_factory=lambda: Settings(ledger_dsn="postgresql://unused", retry_delay=2.0))
    cluster: FakeView = field(default_factory=FakeView)
    ledger: FakeLedger = field(default_factory=FakeLedger)
    levels: FakeLevels = field(default_factory=FakeLevels)
    keys: FakeKeys = field(default_factory=FakeKeys)
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    integrity: Integrity = field(default_factory=Integrity)
    locks: Locks = field(default_factory=Locks)
    finished: Finished = field(default_factory=Finished)
    now: datetime = T0
    compliance: Memory = field(default_factory=Memory)
    reports: FakeReports = field(default_factory=FakeReports)

    def __post_init__(self) -> None:
        self.gates = Gates(self.ledger)
        self.facts = Facts(self.cluster, self.gates, self.integrity, self.metrics.inventories)

    def clock(self) -> datetime:
        return self.now

    def compliance_ports(self) -> CompliancePorts:
        return compliance_ports(self)  # type: ignore[arg-type]  # fakes of the App's adapters

    def tenant_ports(self) -> TenantPorts:
        return TenantPorts(cluster=self.cluster, ledger=self.ledger, levels=self.levels, keys=self.keys)

    def protectionpolicy_ports(self) -> ProtectionPolicyPorts:
        return ProtectionPolicyPorts(cluster=self.cluster, ledger=self.ledger, keys=self.keys)


def tenant_body(generation: int = 1, status_: dict[str, Any] | None = None) -> dict[str, Any]:
    return builders.tenant("acme", uid="uid-acme", generation=generation, status=status_)


def conditions(patch: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c.get("message", "")) for c in patch["conditions"]}


def test_a_new_tenant_reads_reconciling_at_once_then_ready_for_its_generation() -> None:
    app = FakeApp()
    wiring.run(app, tenant_handlers.kind(app), tenant_body(), LOG)  # type: ignore[arg-type]
    (_, _, first), (_, _, last) = app.cluster.live.patches
    assert conditions(first)["Reconciling"][:2] == ("True", "Progressing")
    assert "observedGeneration" not in first
    assert conditions(last)["Ready"][:2] == ("True", "Reconciled")
    assert last["observedGeneration"] == 1
    assert last["mcsLevel"] and last["kms"]["provider"] == "local"
    assert "acme" in app.metrics.inventories


def test_a_new_tenant_with_the_crds_default_status_gets_its_status_written_once() -> None:
    app = FakeApp()
    wiring.run(app, tenant_handlers.kind(app), tenant_body(status_={"observedGeneration": 0}), LOG)  # type: ignore[arg-type]
    ((_, _, only),) = app.cluster.live.patches  # no Reconciling first: the default reads in progress already
    assert conditions(only)["Ready"][:2] == ("True", "Reconciled")
    assert only["observedGeneration"] == 1


def test_a_new_tenant_waiting_on_a_dependency_keeps_its_reconciling_message() -> None:
    app = FakeApp()
    body = tenant_body(status_={"observedGeneration": 0})
    app.ledger.down = True
    with pytest.raises(kopf.TemporaryError):
        wiring.run(app, tenant_handlers.kind(app), body, LOG)  # type: ignore[arg-type]
    ((_, _, waiting),) = app.cluster.live.patches
    state, reason, message = conditions(waiting)["Reconciling"]
    assert (state, reason) == ("True", "LedgerUnavailable")
    assert message.startswith("waiting for the ledger (PostgreSQL) since 2026-11-30T12:00:00Z: ")
    assert waiting["observedGeneration"] == 0  # still not observed: in progress to kstatus


def test_an_idle_reconcile_writes_no_status_and_no_record() -> None:
    app = FakeApp()
    wiring.run(app, tenant_handlers.kind(app), tenant_body(), LOG)  # type: ignore[arg-type]
    written = app.cluster.live.patches[-1][2]
    records, patches, applies = len(app.ledger.records), len(app.cluster.live.patches), len(app.cluster.applies)
    wiring.run(app, tenant_handlers.kind(app), tenant_body(status_=written), LOG)  # type: ignore[arg-type]
    assert (len(app.ledger.records), len(app.cluster.live.patches), len(app.cluster.applies)) == (
        records,
        patches,
        applies,
    )


def test_a_refused_spec_is_stalled_with_its_reason_and_not_retried() -> None:
    app = FakeApp()
    app.cluster.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})
    wiring.run(app, tenant_handlers.kind(app), tenant_body(), LOG)  # type: ignore[arg-type]  # returns: no retry
    last = app.cluster.live.patches[-1][2]
    assert conditions(last)["Stalled"][:2] == ("True", "NamespaceConflict")
    assert conditions(last)["Reconciling"][0] == "False"
    assert last["observedGeneration"] == 1
    assert app.ledger.records == [] and app.levels.by_uid == {}  # nothing made for a refused spec


def test_a_stored_spec_the_rules_now_refuse_is_stalled_not_retried() -> None:
    app = FakeApp()
    body = tenant_body()
    body["spec"]["mcsLevel"] = "s0:c5000,c1"  # stored before the rule that refuses it
    wiring.run(app, tenant_handlers.kind(app), body, LOG)  # type: ignore[arg-type]
    (_, _, written), *more = app.cluster.live.patches
    state, reason, message = conditions(written)["Stalled"]
    assert (state, reason) == ("True", "InvalidSpec") and "mcsLevel" in message
    assert more == [] and app.ledger.records == []
    wiring.run(app, tenant_handlers.kind(app), body | {"status": written}, LOG)  # type: ignore[arg-type]
    assert len(app.cluster.live.patches) == 1  # the resync writes nothing new


def test_a_ledger_outage_names_the_dependency_and_since_when_and_is_retried() -> None:
    app = FakeApp()
    app.ledger.down = True
    with pytest.raises(kopf.TemporaryError) as caught:
        wiring.run(app, tenant_handlers.kind(app), tenant_body(), LOG)  # type: ignore[arg-type]
    assert caught.value.delay == app.settings.retry_delay
    first = app.cluster.live.patches[-1][2]
    state, reason, message = conditions(first)["Reconciling"]
    assert (state, reason) == ("True", "LedgerUnavailable")
    assert message.startswith("waiting for the ledger (PostgreSQL) since 2026-11-30T12:00:00Z: ")
    app.now = T0 + timedelta(minutes=3)  # still down: the time it started waiting stays
    with pytest.raises(kopf.TemporaryError):
        wiring.run(app, tenant_handlers.kind(app), tenant_body(status_=first), LOG)  # type: ignore[arg-type]
    assert len(app.cluster.live.patches) == 2  # begin and waiting; the retry computed the same status
    app.ledger.down = False
    app.now = T0 + timedelta(minutes=5)
    wiring.run(app, tenant_handlers.kind(app), tenant_body(status_=first), LOG)  # type: ignore[arg-type]
    assert conditions(app.cluster.live.patches[-1][2])["Ready"][:2] == ("True", "Reconciled")


def test_the_wait_restarts_its_clock_for_another_dependency() -> None:
    before = TenantStatus.model_validate(
        {
            "conditions": [
                {
                    "type": "Reconciling",
                    "status": "True",
                    "reason": "LedgerUnavailable",
                    "message": "waiting for the ledger (PostgreSQL) since 2026-11-30T11:00:00Z: down",
                    "lastTransitionTime": "2026-11-30T11:00:00Z",
                }
            ]
        }
    )
    tenant = Tenant.model_validate(tenant_body() | {"status": before.model_dump(by_alias=True)})
    same = status.failed(tenant, TenantStatus, LedgerUnavailable("still down"), now=T0)
    other = status.failed(tenant, TenantStatus, ConflictError("x"), now=T0)
    reconciling = {c.type: c for c in same.conditions}["Reconciling"]
    assert reconciling.message == "waiting for the ledger (PostgreSQL) since 2026-11-30T11:00:00Z: still down"
    assert {c.type: c.status for c in other.conditions}["Stalled"] == "True"


def test_a_closed_gate_waits_in_reconciling_and_retries_less_often() -> None:
    app = FakeApp()

    def gated(tenant: Tenant, context: wiring.Context) -> status.Done:
        raise GateClosed("1/2 approvals; missing role platform", reason="AwaitingQuorum")

    kind = wiring.Kind(resource=Tenant, status_model=TenantStatus, work=gated, begin_message="x")
    with pytest.raises(kopf.TemporaryError) as caught:
        wiring.run(app, kind, tenant_body(), LOG)  # type: ignore[arg-type]
    assert caught.value.delay == app.settings.retry_delay * wiring.GATE_BACKOFF
    assert conditions(app.cluster.live.patches[-1][2])["Reconciling"] == (
        "True",
        "AwaitingQuorum",
        "1/2 approvals; missing role platform",
    )


def test_the_registry_wires_every_kind_and_every_cache_index_without_a_cluster() -> None:
    app = FakeApp()
    reg = registry(app)  # type: ignore[arg-type]
    ids: Callable[[Any], set[str]] = lambda handlers: {h.id for h in handlers}  # noqa: E731
    indexing = ids(reg._indexing.get_all_handlers())
    assert {c.index for c in INDEXED} == indexing
    changing = ids(reg._changing.get_all_handlers())
    assert {"create", "update/spec", "resume", "finalize"} <= changing
    # One resync loop per kind, started with the operator; no kopf timer (one per object).
    assert {f"resync-{k}" for k in ("Tenant", "ProtectionPolicy", "ComplianceFramework")} <= ids(
        reg._activities.get_all_handlers()
    )
    assert ids(reg._spawning.get_all_handlers()) == set()
    # kopf watches none of the informed kinds: no handler or index of its own on them.
    every = [
        *reg._indexing.get_all_handlers(),
        *reg._changing.get_all_handlers(),
        *reg._watching.get_all_handlers(),
        *reg._spawning.get_all_handlers(),
    ]
    watched = {handler.selector.any_name for handler in every if handler.selector is not None}
    assert "tenants" in watched
    assert watched.isdisjoint({c.plural for c in INFORMED})
    assert app.cluster.live.patches == []  # building the registry touches nothing


def test_the_readiness_probe_fails_while_the_checkpointer_refuses() -> None:
    app = FakeApp()
    reg = registry(app)  # type: ignore[arg-type]
    [probe] = [handler for handler in reg._activities.get_all_handlers() if handler.id == "ledger-integrity"]
    app.integrity.checkpoint_size = 20
    assert probe.fn() == {"ok": True, "checkpointSize": 20}
    app.integrity.refusal = Refusal("InconsistentWithPublished", "the tree at size 30 is not consistent", 30, 20)
    app.integrity.since = T0
    with pytest.raises(kopf.PermanentError) as failed:  # kopf's health endpoint answers 500
        probe.fn()
    assert str(failed.value) == (
        "no checkpoint signed since 2026-11-30T12:00:00+00:00 (InconsistentWithPublished):"
        " the tree at size 30 is not consistent"
    )


def compliance_body(generation: int = 1, status_: dict[str, Any] | None = None) -> dict[str, Any]:
    residency = builders.control(
        "residency", "EU only", checks=[builders.compliance_check("data-residency", regions=["eu-west-1"])]
    )
    return dict(
        builders.compliance_framework("soc2", uid="cf-uid", generation=generation, controls=[residency], status=status_)
    )


def test_a_framework_is_scored_then_a_tenant_change_rescores_it_incrementally() -> None:
    app = FakeApp()
    prod = {"tier": "prod"}

    def acme(status_: dict[str, Any] | None = None, labels: dict[str, str] = prod) -> dict[str, Any]:
        return dict(builders.tenant("acme", uid="uid-acme", generation=1, status=status_, labels=labels))

    wiring.run(app, tenant_handlers.kind(app), acme(), LOG)  # type: ignore[arg-type]
    tenant_status = app.cluster.live.patches[-1][2]
    app.cluster.put(acme(tenant_status))
    frameworks = complianceframework.kind(app)  # type: ignore[arg-type]
    body = compliance_body() | {"spec": {**compliance_body()["spec"], "tenantSelector": {"matchLabels": prod}}}
    wiring.run(app, frameworks, body, LOG)  # type: ignore[arg-type]
    written = app.cluster.live.patches[-1][2]
    assert written["score"] == 100 and written["tenants"] == 1
    assert conditions(written)["Ready"][2] == "score 100 over 1 tenant; 0 failing controls"
    assert app.metrics.compliance["soc2"] == (100, {"acme": (100, 0)})
    # An idle resync of the framework and of the tenant writes no status and no record.
    body["status"] = written
    app.cluster.put(body)
    records, patches = len(app.ledger.records), len(app.cluster.live.patches)
    wiring.run(app, frameworks, body, LOG)  # type: ignore[arg-type]
    wiring.run(app, tenant_handlers.kind(app), acme(tenant_status), LOG)  # type: ignore[arg-type]
    assert (len(app.ledger.records), len(app.cluster.live.patches)) == (records, patches)
    # The tenant relabelled out of the framework: its own reconcile rescores the framework at
    # once, without the framework's reconcile.
    wiring.run(app, tenant_handlers.kind(app), acme(tenant_status, labels={}), LOG)  # type: ignore[arg-type]
    kind, _, last = app.cluster.live.patches[-1]
    assert kind == "ComplianceFramework" and last["tenants"] == 0 and "score" not in last
    assert app.metrics.compliance["soc2"] == (None, {})


def test_a_deleted_framework_leaves_no_memory_metrics_or_reports() -> None:
    app = FakeApp()
    wiring.run(app, tenant_handlers.kind(app), tenant_body(), LOG)  # type: ignore[arg-type]
    app.cluster.put(tenant_body(status_=app.cluster.live.patches[-1][2]))
    wiring.run(app, complianceframework.kind(app), compliance_body(), LOG)  # type: ignore[arg-type, arg-type]
    assert app.reports.objects and "soc2" in app.metrics.compliance
    complianceframework.forget(app, compliance_body(), LOG)  # type: ignore[arg-type]
    assert app.reports.objects == {} and app.metrics.compliance == {} and app.compliance.frames == {}


def test_a_finished_evidence_export_rescores_its_tenants() -> None:
    app = FakeApp()
    wiring.run(app, tenant_handlers.kind(app), tenant_body(), LOG)  # type: ignore[arg-type]
    app.cluster.put(tenant_body(status_=app.cluster.live.patches[-1][2]))
    exported = builders.control("exported", "Evidence", checks=[builders.compliance_check("evidence-exported-within")])
    body = dict(builders.compliance_framework("soc2", uid="cf-uid", generation=1, controls=[exported]))
    wiring.run(app, complianceframework.kind(app), body, LOG)  # type: ignore[arg-type]
    body["status"] = app.cluster.live.patches[-1][2]
    assert body["status"]["summary"]["fail"] == 1
    app.cluster.put(body)
    ready = {"type": "Ready", "status": "True", "reason": "Exported", "lastTransitionTime": "2026-11-30T11:00:00Z"}
    export = dict(builders.evidence_export("q4", uid="ee-uid", generation=1, status={"conditions": [ready]}))
    app.cluster.put(export)
    then = evidenceexport_handlers.kind(app).then  # type: ignore[arg-type]
    assert then is not None
    then(export, LOG)
    kind, name, last = app.cluster.live.patches[-1]
    assert (kind, name, last["summary"]["pass"], last["score"]) == ("ComplianceFramework", "soc2", 1, 100)


def test_one_resync_pass_reconciles_every_cached_tenant_not_being_deleted_and_logs_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FakeApp()
    for name in ("acme", "globex", "initech"):
        app.cluster.put(builders.tenant(name, uid=f"uid-{name}"))
    app.cluster.objects[("Tenant", None, "initech")]["metadata"]["deletionTimestamp"] = "2026-11-30T12:00:00Z"
    resync = wiring.Resync(app, tenant_handlers.kind(app), 60.0)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="privatevault.tenant"):
        assert resync.once() == 2
    assert [r.getMessage() for r in caplog.records if "Resync" in r.getMessage()] == [
        "[acme] Resync of Tenant acme succeeded.",
        "[globex] Resync of Tenant globex succeeded.",
    ]
    assert {name for _, name, _ in app.cluster.live.patches} == {"acme", "globex"}
    # A second pass of unchanged tenants writes nothing (they are read from the cache each time).
    for (_, _, name), obj in app.cluster.objects.items():
        written = [body for _, n, body in app.cluster.live.patches if n == name]
        if written:
            obj["status"] = written[-1]
    before = len(app.cluster.live.patches)
    assert resync.once() == 2
    assert len(app.cluster.live.patches) == before


def test_a_failed_resync_is_logged_and_the_pass_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    app = FakeApp()
    for name in ("acme", "globex"):
        app.cluster.put(builders.tenant(name, uid=f"uid-{name}"))
    kind = tenant_handlers.kind(app)
    failing = wiring.Kind(
        resource=kind.resource,
        status_model=kind.status_model,
        work=lambda tenant, ctx: (
            (_ for _ in ()).throw(LedgerUnavailable("down"))
            if tenant.metadata["name"] == "acme"
            else kind.work(tenant, ctx)
        ),
        begin_message=kind.begin_message,
    )
    with caplog.at_level(logging.INFO, logger="privatevault.tenant"):
        assert wiring.Resync(app, failing, 60.0).once() == 1  # type: ignore[arg-type]
    messages = [r.getMessage() for r in caplog.records if "Resync" in r.getMessage()]
    assert messages[0].startswith("[acme] Resync of Tenant acme failed: ")
    assert messages[1] == "[globex] Resync of Tenant globex succeeded."


def test_a_childs_change_by_someone_else_reconciles_its_tenant_and_the_operators_own_does_not() -> None:
    app = FakeApp()
    app.cluster.put(builders.tenant("acme", uid="uid-acme"))
    tenants = tenant_handlers.kind(app)
    wiring.run(app, tenants, app.cluster.objects[("Tenant", None, "acme")], LOG)  # type: ignore[arg-type]
    quota = next(o for (k, _, _), o in app.cluster.objects.items() if k == "ResourceQuota")
    reconciles = len(app.cluster.live.patches)

    def changed(event: str, body: dict[str, Any]) -> None:
        tenant_handlers.child_changed(app, tenants, event, body)  # type: ignore[arg-type]

    changed("MODIFIED", quota)  # the operator's own write: nothing to do
    assert len(app.cluster.live.patches) == reconciles and app.ledger.events[-1].action != "update-resourcequota"
    edited = {**quota, "spec": {"hard": {"pods": "999"}}}
    app.cluster.objects[("ResourceQuota", quota["metadata"]["namespace"], quota["metadata"]["name"])] = edited
    changed("MODIFIED", {**edited, "metadata": {**edited["metadata"], "resourceVersion": "9999"}})
    assert app.ledger.events[-1].action == "update-resourcequota"  # repaired at once
    assert (
        app.cluster.objects[("ResourceQuota", quota["metadata"]["namespace"], quota["metadata"]["name"])]["spec"]
        == quota["spec"]
    )
    namespace = next(o for (k, _, _), o in app.cluster.objects.items() if k == "Namespace")
    changed("DELETED", namespace)
    assert app.cluster.forgotten == [("Namespace", None, namespace["metadata"]["name"])]
    # A namespace that is not the operator's (the informer lists every namespace) is not its business.
    records = len(app.ledger.records)
    changed("MODIFIED", {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "kube-system"}})
    assert len(app.ledger.records) == records and app.cluster.forgotten[-1][2] != "kube-system"


def test_only_a_reconcile_that_finished_a_generation_is_remembered_for_kopf() -> None:
    app = FakeApp()
    wiring.run(app, tenant_handlers.kind(app), tenant_body(), LOG)  # type: ignore[arg-type]
    assert app.finished.covers("uid-acme", 1)  # its status event is still on its way to kopf
    idle = FakeApp()
    written = app.cluster.live.patches[-1][2]
    wiring.run(idle, tenant_handlers.kind(idle), tenant_body(status_=written), LOG)  # type: ignore[arg-type]
    assert len(idle.finished) == 0  # an idle resync: the status says it already
