"""The test bench starts a real control plane, PostgreSQL 15 and OpenBao, and stops them cleanly."""

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import hvac
import psycopg
import pytest

from privatevault.testbench import Bench

pytestmark = pytest.mark.integration

KUBE_VERSION = "v1.36.3"


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    """A bench of this module's own, not the session one: the last test here stops it."""
    with Bench(tmp_path_factory.mktemp("bench")) as started:
        yield started


def kubectl(bench: Bench, *args: str) -> str:
    cp = bench.control_plane
    result = subprocess.run(
        [str(cp.kubectl), f"--kubeconfig={cp.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


@pytest.fixture
def bao(bench: Bench) -> Iterator[hvac.Client]:
    client = hvac.Client(url=bench.openbao.address, token=bench.openbao.root_token)
    yield client
    client.adapter.close()


def group_alive(pgid: int) -> bool:
    """Whether process group `pgid` has a member that is not a zombie (orphans that init has
    not reaped yet count as gone)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, group = stat.read_text().rpartition(")")[2].split()[:3]
        except OSError:
            continue
        if int(group) == pgid and state != "Z":
            return True
    return False


def test_apiserver_reports_the_pinned_version(bench: Bench) -> None:
    version = json.loads(kubectl(bench, "version", "-o", "json"))
    assert version["serverVersion"]["gitVersion"] == KUBE_VERSION
    assert kubectl(bench, "get", "--raw", "/readyz") == "ok"


def test_service_account_controller_created_the_default_account(bench: Bench) -> None:
    account = json.loads(kubectl(bench, "get", "serviceaccount", "default", "-o", "json"))
    assert account["metadata"]["namespace"] == "default"


def test_namespace_controller_finishes_deletion(bench: Bench) -> None:
    kubectl(bench, "create", "namespace", "bench-probe")
    kubectl(bench, "-n", "bench-probe", "create", "configmap", "leftover", "--from-literal=a=b")
    kubectl(bench, "delete", "namespace", "bench-probe", "--timeout=60s")
    names = kubectl(bench, "get", "namespaces", "-o", "name").split()
    assert "namespace/bench-probe" not in names


def test_deployment_controller_creates_a_replica_set(bench: Bench) -> None:
    kubectl(bench, "create", "deployment", "probe", "--image=registry.invalid/probe:1")
    kubectl(bench, "wait", "replicaset", "-l", "app=probe", "--for=create", "--timeout=60s")


def test_postgres_is_version_15_and_keeps_data_across_restart(bench: Bench) -> None:
    with psycopg.connect(bench.postgres.superuser_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT version()").fetchone()
        assert row is not None
        assert row[0].startswith("PostgreSQL 15")
        conn.execute("CREATE TABLE survivor (id int)")
        conn.execute("INSERT INTO survivor VALUES (42)")
    port = bench.postgres.port
    bench.postgres.restart()
    assert bench.postgres.port == port
    with psycopg.connect(bench.postgres.superuser_dsn) as conn:
        assert conn.execute("SELECT id FROM survivor").fetchall() == [(42,)]


def test_openbao_is_unsealed_and_the_root_token_works(bao: hvac.Client) -> None:
    health = bao.sys.read_health_status(method="GET")
    assert health["initialized"] is True
    assert health["sealed"] is False
    bao.sys.enable_secrets_engine("transit")
    assert "transit/" in bao.sys.list_mounted_secrets_engines()["data"]


def test_stop_from_state_stops_a_bench_left_running_by_another_process(tmp_path: Path) -> None:
    script = f"""
        from pathlib import Path
        from privatevault.testbench import Bench
        bench = Bench(Path({str(tmp_path)!r}))
        bench.start()
        bench.save_state()
    """
    subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=True, timeout=300)
    state = Bench.load_state(tmp_path)
    state_text = (tmp_path / "state.json").read_text()
    for secret in (state["postgres"]["password_file"], state["openbao"]["root_token_file"]):
        assert Path(secret).stat().st_mode & 0o777 == 0o600
        assert Path(secret).read_text() not in state_text
    pids = [record["pid"] for record in state["processes"]]
    assert len(pids) == 5
    assert all(group_alive(pid) for pid in pids)
    Bench.stop_from_state(tmp_path)
    assert not any(group_alive(pid) for pid in pids)
    assert not (tmp_path / "state.json").exists()


def test_stop_leaves_no_processes_behind(bench: Bench) -> None:
    """Runs last in this module: it stops the shared bench."""
    services = (bench.control_plane, bench.postgres, bench.openbao)
    pids = [process.pid for service in services for process in service.processes]
    assert len(pids) == 5
    bench.stop()
    assert not any(group_alive(pid) for pid in pids)
    assert all(not service.processes for service in services)
