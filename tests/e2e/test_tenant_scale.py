"""100 Tenants applied at once through kubectl get 100 distinct MCS levels; a tenant deleted and
created again under the same name gets a new level, never an old one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import builders
from tests.support import Kubectl, Operator, condition, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]

COUNT = 100


@pytest.fixture
def operator(kubectl: Kubectl, operator_dsn_file: Path, tmp_path: Path) -> Iterator[Operator]:
    running = Operator(tmp_path, kubectl.kubeconfig, operator_dsn_file, PRIVATEVAULT_DRIFT_INTERVAL="600").start()
    yield running
    running.stop()


def levels(kubectl: Kubectl, names: list[str]) -> dict[str, str] | None:
    listed = kubectl.run("get", "tenants", "-l", "scale-test=yes", "-o", "json").stdout
    found = {}
    for item in json.loads(listed)["items"]:
        cond = condition(item, "Ready")
        if item["metadata"]["name"] in names and cond and cond["status"] == "True":
            found[item["metadata"]["name"]] = item["status"]["mcsLevel"]
    return found if len(found) == len(names) else None


def test_hundred_tenants_get_distinct_levels_never_reused(kubectl: Kubectl, operator: Operator) -> None:
    names = [f"scale-{i:03d}" for i in range(COUNT)]
    items = [builders.tenant(name, owners=[builders.user("ops")], labels={"scale-test": "yes"}) for name in names]
    kubectl.apply({"apiVersion": "v1", "kind": "List", "items": items})
    first: dict[str, str] = eventually(lambda: levels(kubectl, names), timeout=600, what=f"{COUNT} tenants Ready")
    assert len(set(first.values())) == COUNT

    again = names[0]
    kubectl.run("delete", "tenant", again, "--wait=true")
    eventually(lambda: kubectl.get("namespace", again) is None, timeout=120, what="the old namespace gone")
    kubectl.apply(items[0])
    second: dict[str, str] = eventually(lambda: levels(kubectl, [again]), timeout=120, what="the new tenant Ready")
    assert second[again] not in first.values()
    kubectl.run("delete", "tenants", "-l", "scale-test=yes", "--wait=true", "--timeout=300s")
