"""Bad input stops early and makes nothing (issue 8): a table of bad Tenants and ProtectionPolicies
applied through kubectl against a running operator. What the schema and CEL can check is refused by
the API server with a message a person can act on; what only the operator can judge ends
``Stalled=True`` with a reason, which kstatus reads as Failed. Either way nothing is left behind: no
namespace, no KEK Secret, no MCS level in the database, no ledger record of a change for the tenant,
no key or template change on a workload; and a stalled tenant can still be deleted."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from privatevault.api.v1alpha1 import resources
from privatevault.api.v1alpha1 import tenant as tenant_api
from privatevault.api.v1alpha1.protectionpolicy import (
    PROFILE_MODE_MESSAGE,
    REFUSALS,
    ROTATION_MESSAGE,
    SELECTOR_KEY_MESSAGE,
    SELINUX_TYPE_MESSAGE,
)
from privatevault.ledger.schema import Database, bootstrap
from privatevault.ledger.store import Ledger
from privatevault.manifests import labels
from privatevault.testbench import Bench
from privatevault.testbench.secretfile import write_secret
from tests import builders
from tests.support import Kubectl, Operator, condition, eventually, wait_for_condition

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]

DRIFT_SECONDS = 2
#: A level the incumbent tenant holds, so that another tenant asking for it conflicts.
INCUMBENT, INCUMBENT_LEVEL = "bi-incumbent", "s0:c901,c902"
LONG_NAME = "bi-" + "x" * 67  # 70 characters: the example
CHILD_KINDS = "resourcequotas,limitranges,networkpolicies,rolebindings"


class SideEffect(AssertionError):
    """Bad input left something behind."""


def kstatus(obj: dict[str, Any]) -> str:
    """What kstatus (sigs.k8s.io/cli-utils) computes for a custom resource from its conditions."""
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"]["generation"]:
        return "InProgress"
    if (condition(obj, "Reconciling") or {}).get("status") == "True":
        return "InProgress"
    if (condition(obj, "Stalled") or {}).get("status") == "True":
        return "Failed"
    return "Current"


@dataclass
class World:
    """The running operator, its ledger, and what the rows made on purpose (to clean up after)."""

    kubectl: Kubectl
    operator: Operator
    database: Database
    made: list[tuple[str, str, str | None]] = field(default_factory=list)

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl.apply(manifest)
        meta = manifest["metadata"]
        self.made.append((manifest["kind"].lower(), meta["name"], meta.get("namespace")))

    def namespace(self, name: str) -> None:
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def records(self) -> list[dict[str, Any]]:
        ledger = Ledger(self.database.operator_dsn)
        try:
            return [json.loads(record.canonical) for record in ledger.records()]
        finally:
            ledger.close()

    def levels(self, tenant_name: str) -> list[str]:
        with psycopg.connect(self.database.operator_dsn) as conn:
            rows = conn.execute("SELECT level FROM mcs_levels WHERE tenant = %s", (tenant_name,)).fetchall()
        return [str(row[0]) for row in rows]

    def tenant_left_nothing(self, manifest: dict[str, Any]) -> None:
        name, spec = manifest["metadata"]["name"], manifest["spec"]
        problems = []
        for namespace in spec.get("namespaces") or [name]:
            found = self.kubectl.get("namespace", namespace)
            if found and (found["metadata"].get("labels") or {}).get(labels.TENANT) == name:
                problems.append(f"namespace {namespace} made or taken for the tenant")
            if found:
                children = self.kubectl.run(
                    "get", CHILD_KINDS, "-n", namespace, "-l", f"{labels.TENANT}={name}", "-o", "name"
                ).stdout.split()
                if children:
                    problems.append(f"{children} made in namespace {namespace}")
        if self.kubectl.get("secret", f"privatevault-kek-{name}", self.operator.namespace) is not None:
            problems.append(f"KEK Secret privatevault-kek-{name} made")
        if levels := self.levels(name):
            problems.append(f"MCS level {levels} allocated")
        if actions := [r["action"] for r in self.records() if r["tenant"] == name]:
            problems.append(f"ledger records {actions}")
        if problems:
            raise SideEffect(f"tenant {name}: " + "; ".join(problems))

    def policy_left_nothing(self, manifest: dict[str, Any], workloads: Sequence[tuple[str, str]] = ()) -> None:
        name = manifest["metadata"]["name"]
        problems = []
        if actions := [r["action"] for r in self.records() if r["details"].get("policy") == name]:
            problems.append(f"ledger records {actions}")
        for namespace, workload in workloads:
            obj = self.kubectl.get("deployment", workload, namespace) or {}
            annotations = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
            if any(key.startswith("privatevault.io/") for key in annotations):
                problems.append(f"workload {namespace}/{workload[:20]}... protected")
        if problems:
            raise SideEffect(f"policy {name}: " + "; ".join(problems))


@dataclass(frozen=True)
class Bad:
    """One row: a manifest, and either the API server's message or the operator's Stalled reason."""

    manifest: Callable[[World], dict[str, Any]]
    refused: str | None = None
    stalled: str | None = None
    says: str = ""
    setup: Callable[[World], None] = lambda _: None


def bad_tenant(name: str, **options: Any) -> Callable[[World], dict[str, Any]]:
    return lambda _: builders.tenant(name, **options)


def bad_policy(name: str, **options: Any) -> Callable[[World], dict[str, Any]]:
    return lambda _: builders.protection_policy(name, **options)


def long_workload(world: World) -> None:
    """A tenant using the policy, and a Deployment whose key Secret name would exceed 253 characters."""
    world.apply(builders.tenant("bi-protected", protection_policy_ref="bi-long-workload"))
    wait_for_condition(world.kubectl, "tenant", "bi-protected", "Ready", timeout=90)
    world.apply(
        builders.deployment("w" * 240, "bi-protected", labels={"bad-input": "long-name"}, app="long-name", replicas=0)
    )


ROWS = [
    # Refused by the API server: the CRD's schema and CEL rules.
    pytest.param(Bad(bad_tenant(LONG_NAME), refused=tenant_api.NAME_LENGTH_MESSAGE), id="tenant-name-70-chars"),
    pytest.param(Bad(bad_tenant("bi.dotted"), refused=tenant_api.NAME_LABEL_MESSAGE), id="tenant-name-not-a-label"),
    pytest.param(Bad(bad_tenant("kube-system"), refused=tenant_api.NAME_SYSTEM_MESSAGE), id="tenant-named-kube-system"),
    pytest.param(
        Bad(bad_tenant("bi-mcs-range", mcs_level="s0:c5000,c1"), refused=tenant_api.MCS_RANGE_MESSAGE),
        id="mcs-level-out-of-range",
    ),
    pytest.param(
        Bad(bad_tenant("bi-mcs-same", mcs_level="s0:c7,c7"), refused=tenant_api.MCS_DISTINCT_MESSAGE),
        id="mcs-level-equal-categories",
    ),
    pytest.param(
        Bad(bad_tenant("bi-system-ns", namespaces=["bi-apps", "default"]), refused=tenant_api.SYSTEM_NAMESPACE_MESSAGE),
        id="namespaces-include-default",
    ),
    pytest.param(
        Bad(bad_tenant("bi-twice", namespaces=["bi-twice", "bi-twice"]), refused='Duplicate value: "bi-twice"'),
        id="namespaces-twice",
    ),
    pytest.param(
        Bad(bad_tenant("bi-quota", quota={"pods": "1.5"}), refused=resources.QUOTA_INTEGER_MESSAGE),
        id="quota-fractional-pods",
    ),
    pytest.param(
        Bad(bad_tenant("bi-quantity", quota={"requests.cpu": "lots"}), refused=resources.QUANTITY_MESSAGE),
        id="quota-not-a-quantity",
    ),
    pytest.param(
        Bad(
            bad_tenant("bi-limits", limits={"default": {"cpu": "2"}, "max": {"cpu": "1"}}),
            refused=resources.limit_order_message("default", "max"),
        ),
        id="limits-default-above-max",
    ),
    pytest.param(
        Bad(bad_tenant("bi-cidr", network={"allowEgressCidrs": ["10.0.0.1/8"]}), refused=tenant_api.CIDR_MESSAGE),
        id="egress-cidr-host-bits",
    ),
    pytest.param(
        Bad(
            bad_tenant("bi-owner", owners=[builders.service_account("CI_Bot", "ci")]),
            refused=tenant_api.SERVICE_ACCOUNT_NAME_MESSAGE,
        ),
        id="service-account-owner-bad-name",
    ),
    pytest.param(Bad(bad_tenant("bi-region", region="Europe"), refused="spec.region: Invalid value"), id="bad-region"),
    pytest.param(
        Bad(bad_policy("bi-pqc-x25519", mode="PQC", kem="X25519"), refused=REFUSALS[0].message),
        id="policy-pqc-with-classical-kem",
    ),
    pytest.param(
        Bad(bad_policy("bi-profile-mode", profile="cnsa-2.0", mode="Hybrid"), refused=PROFILE_MODE_MESSAGE),
        id="policy-profile-against-mode",
    ),
    pytest.param(
        Bad(bad_policy("bi-rotation", rotation_interval="5m"), refused=ROTATION_MESSAGE), id="policy-rotation-5m"
    ),
    pytest.param(
        Bad(bad_policy("bi-selinux", selinux_type="spc_t"), refused=SELINUX_TYPE_MESSAGE), id="policy-selinux-spc-t"
    ),
    pytest.param(
        Bad(bad_policy("bi-selector", workload_selector={"not a label": "x"}), refused=SELECTOR_KEY_MESSAGE),
        id="policy-selector-not-a-label",
    ),
    # Only the operator can judge these: Stalled with a reason, and nothing made.
    pytest.param(
        Bad(
            bad_tenant("bi-grabber", namespaces=["bi-grabber", "bi-taken"]),
            stalled="NamespaceConflict",
            says="bi-taken already exists and is not managed by PrivateVault",
            setup=lambda world: world.namespace("bi-taken"),
        ),
        id="namespace-exists-unmanaged",
    ),
    pytest.param(
        Bad(
            bad_tenant("bi-squatter"),
            stalled="NamespaceConflict",
            says="bi-squatter already exists",
            setup=lambda world: world.namespace("bi-squatter"),
        ),
        id="default-namespace-exists",
    ),
    pytest.param(
        Bad(
            bad_tenant("bi-poacher", namespaces=[INCUMBENT]),
            stalled="NamespaceConflict",
            says=f"already belongs to tenant {INCUMBENT}",
        ),
        id="namespace-of-another-tenant",
    ),
    pytest.param(
        Bad(
            lambda world: builders.tenant("bi-intruder", namespaces=[world.operator.namespace]),
            stalled="NamespaceConflict",
            says="already exists and is not managed by PrivateVault",
        ),
        id="operators-own-namespace",
    ),
    pytest.param(
        Bad(
            bad_tenant("bi-copycat", mcs_level="s0:c902,c901"),
            stalled="MCSConflict",
            says="is taken by another tenant",
        ),
        id="mcs-level-taken",
    ),
    pytest.param(
        Bad(
            bad_tenant("bi-vaultless", kms="vault"),
            stalled="KMSNotConfigured",
            says="the operator has no Vault configured",
        ),
        id="vault-not-configured",
    ),
    pytest.param(
        Bad(
            bad_policy("bi-long-workload", workload_selector={"bad-input": "long-name"}),
            stalled="ChildRejected",
            says="privatevault-keys",
            setup=long_workload,
        ),
        id="policy-workload-name-too-long",
    ),
]


@pytest.fixture(scope="module")
def world(kubectl: Kubectl, bench: Bench, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One operator (local KMS only, no Vault) and its own ledger for every row; a tenant holding a level."""
    workdir = tmp_path_factory.mktemp("bad-input")
    database = bootstrap(bench.postgres.superuser_dsn, database=f"pv_{uuid.uuid4().hex[:12]}")
    dsn_file = write_secret(workdir / "operator.dsn", database.operator_dsn)
    operator = Operator(
        workdir,
        kubectl.kubeconfig,
        dsn_file,
        PRIVATEVAULT_DRIFT_INTERVAL=str(DRIFT_SECONDS),
        PRIVATEVAULT_PROTECTION_INTERVAL=str(DRIFT_SECONDS),
    ).start()
    world = World(kubectl, operator, database)
    try:
        world.apply(builders.tenant(INCUMBENT, mcs_level=INCUMBENT_LEVEL))
        wait_for_condition(kubectl, "tenant", INCUMBENT, "Ready", timeout=90)
        yield world
    finally:
        clean_up(world)
        operator.stop()


def clean_up(world: World) -> None:
    """Delete what the rows made, tenants while the operator still runs their finalizers."""
    kubectl = world.kubectl
    for kind, name, namespace in reversed(world.made):
        scope = ["-n", namespace] if namespace else []
        kubectl.run("delete", kind, name, *scope, "--ignore-not-found", "--wait=false", check=False)
    tenants = [name for kind, name, _ in world.made if kind == "tenant"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(kubectl.get("tenant", name) for name in tenants):
        time.sleep(0.5)
    for name in tenants:
        if kubectl.get("tenant", name) is not None:
            # A tenant the operator could not finalize (test_a_stalled_tenant_can_be_deleted fails
            # then): the bench is shared with the next test module, so it must not outlive this one.
            kubectl.run("patch", "tenant", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False)


@pytest.mark.parametrize("row", ROWS)
def test_bad_input_stops_early_and_makes_nothing(world: World, row: Bad) -> None:
    row.setup(world)
    manifest = row.manifest(world)
    kind, name = manifest["kind"].lower(), manifest["metadata"]["name"]
    if row.refused is not None:
        done = world.kubectl.apply(manifest, check=False)
        assert done.returncode != 0, f"{name} was accepted"
        assert row.refused in done.stderr, done.stderr
        assert world.kubectl.get(kind, name) is None
    else:
        world.apply(manifest)
        obj = wait_for_condition(world.kubectl, kind, name, "Stalled", current=True, timeout=90)
        stalled = condition(obj, "Stalled")
        assert stalled is not None and stalled["reason"] == row.stalled, stalled
        assert row.says in stalled["message"], stalled["message"]
        # A reconcile or two later it is still stalled and has still made nothing.
        time.sleep(2 * DRIFT_SECONDS)
        obj = world.kubectl.get(kind, name)
        assert obj is not None and kstatus(obj) == "Failed", obj.get("status") if obj else None
        assert (condition(obj, "Reconciling") or {}).get("status") == "False"
        assert (condition(obj, "Ready") or {}).get("status") == "False"
    if kind == "tenant":
        world.tenant_left_nothing(manifest)
    else:
        workloads = [(ns, n) for k, n, ns in world.made if k == "deployment" and ns is not None]
        world.policy_left_nothing(manifest, workloads)


def test_a_stalled_tenant_can_be_deleted(world: World) -> None:
    """Its finalizer has no key to keep or shred: it must not need the KMS provider that stalled it."""
    world.apply(builders.tenant("bi-undeletable", kms="vault"))
    wait_for_condition(world.kubectl, "tenant", "bi-undeletable", "Stalled", current=True, timeout=90)
    world.kubectl.run("delete", "tenant", "bi-undeletable", "--wait=false")
    eventually(
        lambda: world.kubectl.get("tenant", "bi-undeletable") is None,
        timeout=30,
        what="a stalled tenant whose KMS provider is not configured to be deleted",
    )
