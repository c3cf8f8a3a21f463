"""GitOps: the Argo CD health checks of all six kinds pass their tests in Argo CD's own Lua engine
(gopher-lua, standard libraries off as Argo runs custom checks: tools/argo-health, built by
tests.gotools), are laid out as Argo keeps its built-ins, and are the ones the argocd-cm snippet
installs; the Argo CD and Flux examples point at the chart."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from privatevault.api.v1alpha1 import GROUP
from tests.gotools import build
from tests.support import REPO

GITOPS = REPO / "gitops"
HEALTH = GITOPS / "argocd" / "health"


def crd_kinds() -> set[str]:
    return {yaml.safe_load(p.read_text())["spec"]["names"]["kind"] for p in (REPO / "crds").glob("*.yaml")}


def test_every_kind_has_a_health_check_laid_out_as_argo_keeps_them() -> None:
    kinds = crd_kinds()
    assert len(kinds) == 6
    for kind in kinds:
        folder = HEALTH / GROUP / kind
        assert (folder / "health.lua").is_file() and (folder / "health_test.yaml").is_file(), kind
        # One script for every kind: each health.lua is a link to it.
        assert (folder / "health.lua").resolve() == (HEALTH / GROUP / "kstatus.lua").resolve(), kind
        tests = yaml.safe_load((folder / "health_test.yaml").read_text())["tests"]
        for case in tests:
            assert (folder / case["inputPath"]).is_file(), case
        statuses = {case["healthStatus"]["status"] for case in tests}
        assert {"Healthy", "Progressing", "Degraded"} <= statuses, kind
        # Every kind but Approval has a gated action: an action awaiting quorum is Suspended.
        assert ("Suspended" in statuses) is (kind != "Approval"), kind


def test_the_health_checks_pass_their_tests_in_argo_cds_lua_engine() -> None:
    done = subprocess.run([str(build("argo-health")), str(HEALTH)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    cases = sum(len(yaml.safe_load(p.read_text())["tests"]) for p in HEALTH.glob("*/*/health_test.yaml"))
    assert f"{cases} passed, 0 failed" in done.stdout


def test_the_engine_refuses_what_argo_refuses(tmp_path: Path) -> None:
    """The harness is as strict as Argo: no string library, a table must come back."""
    folder = tmp_path / GROUP / "Tenant"
    (folder / "testdata").mkdir(parents=True)
    (folder / "testdata" / "t.yaml").write_text("metadata: {name: a}\n")
    (folder / "health_test.yaml").write_text(
        "tests:\n- healthStatus: {status: Healthy, message: a}\n  inputPath: testdata/t.yaml\n"
    )
    (folder / "health.lua").write_text('return { status = "Healthy", message = string.lower("A") }\n')
    done = subprocess.run([str(build("argo-health")), str(tmp_path)], capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "string" in done.stdout, done.stdout


def test_argocd_cm_installs_the_same_scripts() -> None:
    cm = yaml.safe_load((GITOPS / "argocd" / "argocd-cm.yaml").read_text())
    data = cm["data"]
    for kind in crd_kinds():
        script = (HEALTH / GROUP / kind / "health.lua").read_text()
        assert data[f"resource.customizations.health.{GROUP}_{kind}"] == script, kind
    assert len(data) == 6


def test_the_examples_install_the_chart() -> None:
    app = [d for d in yaml.safe_load_all((GITOPS / "argocd" / "application.yaml").read_text()) if d]
    chart = next(a for a in app if a["spec"]["source"]["path"] == "charts/privatevault")
    assert "ServerSideApply=true" in chart["spec"]["syncPolicy"]["syncOptions"]
    flux = {d["kind"]: d for d in yaml.safe_load_all((GITOPS / "flux" / "privatevault.yaml").read_text()) if d}
    release = flux["HelmRelease"]["spec"]
    assert release["chart"]["spec"]["chart"] == "charts/privatevault"
    assert release["install"]["crds"] == "Create" and release["upgrade"]["crds"] == "CreateReplace"
    assert flux["Kustomization"]["spec"]["wait"] is True
    for values in (chart["spec"]["source"]["helm"]["valuesObject"], release["values"]):
        assert set(values) <= set(yaml.safe_load((REPO / "charts" / "privatevault" / "values.yaml").read_text()))
