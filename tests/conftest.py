"""Session fixtures: one real test bench (control plane, PostgreSQL, OpenBao) for the whole run.

A service that cannot start fails the tests that need it, loudly: nothing here skips.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from privatevault.ledger.schema import Database, bootstrap
from privatevault.ledger.store import Ledger
from privatevault.testbench import Bench
from privatevault.testbench.secretfile import write_secret

from .support import REPO, Kubectl


@pytest.fixture(scope="session")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    with Bench(tmp_path_factory.mktemp("bench")) as started:
        yield started


@pytest.fixture(scope="session")
def kubectl(bench: Bench) -> Kubectl:
    return Kubectl(bench.control_plane.kubectl, bench.control_plane.kubeconfig)


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> None:
    kubectl.run("apply", "--server-side", "-f", str(REPO / "crds"))
    kubectl.run(
        "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app.kubernetes.io/part-of=privatevault"
    )


@pytest.fixture
def database(bench: Bench) -> Database:
    """A fresh ledger database of its own, with owner and operator roles."""
    return bootstrap(bench.postgres.superuser_dsn, database=f"pv_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def operator_dsn_file(database: Database, tmp_path: Path) -> Path:
    return write_secret(tmp_path / "operator.dsn", database.operator_dsn)


@pytest.fixture
def ledger(database: Database) -> Iterator[Ledger]:
    """The operator's view of that database: appends, reads and finds."""
    opened = Ledger(database.operator_dsn)
    yield opened
    opened.close()
