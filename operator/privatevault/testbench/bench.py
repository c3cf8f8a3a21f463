"""The whole test bench: control plane, PostgreSQL and OpenBao started and stopped as one.

pytest fixtures use it as a context manager. `make demo` starts it, saves a state file and exits,
leaving the services running; `make demo-down` later stops them from that state file in another
Python process. The state file holds only non-secret facts (pids, ports, addresses, paths); the
PostgreSQL password and the OpenBao root token go into 0600 files next to it.
"""

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from privatevault.testbench.controlplane import ControlPlane
from privatevault.testbench.errors import BenchError
from privatevault.testbench.openbao import OpenBao
from privatevault.testbench.ports import LOOPBACK
from privatevault.testbench.postgres import SUPERUSER, Postgres
from privatevault.testbench.process import stop_recorded
from privatevault.testbench.secretfile import write_secret

STATE_FILE = "state.json"
STATE_VERSION = 1


class _Service(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


def _quiet(_message: str) -> None:
    """The default progress callback: say nothing."""


class Bench:
    """All bench services in one work directory; stops in the reverse order of starting."""

    def __init__(
        self,
        workdir: Path,
        progress: Callable[[str], None] = _quiet,
        *,
        control_plane: bool = True,
    ) -> None:
        """`control_plane=False` leaves the control plane out (when a real cluster is used);
        `self.control_plane` still locates kubectl."""
        self.workdir = workdir.resolve()
        self.control_plane = ControlPlane(self.workdir)
        self.postgres = Postgres(self.workdir)
        self.openbao = OpenBao(self.workdir)
        self._progress = progress
        self._services: list[tuple[str, _Service]] = [
            ("PostgreSQL", self.postgres),
            ("OpenBao", self.openbao),
        ]
        if control_plane:
            self._services.insert(0, ("control plane", self.control_plane))

    def __enter__(self) -> "Bench":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every service; if one fails, stop those already started and re-raise."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            for label, service in self._services:
                began = time.monotonic()
                self._progress(f"starting {label}")
                service.start()
                self._progress(f"{label} ready in {time.monotonic() - began:.1f} s")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every service, last started first, and drop the state file if there is one."""
        for label, service in reversed(self._services):
            self._progress(f"stopping {label}")
            service.stop()
        (self.workdir / STATE_FILE).unlink(missing_ok=True)

    def save_state(self) -> Path:
        """Write WORKDIR/state.json (and the secrets beside it) for `stop_from_state`."""
        secrets_dir = self.workdir / "secrets"
        secrets_dir.mkdir(mode=0o700, exist_ok=True)
        cp, pg, bao = self.control_plane, self.postgres, self.openbao
        control_plane = None
        if cp.processes:
            control_plane = {
                "server": cp.server,
                "kubeconfig": str(cp.kubeconfig),
                "ca_file": str(cp.ca_file),
                "kubectl": str(cp.kubectl),
                "service_account_issuer": cp.service_account_issuer,
            }
        state = {
            "version": STATE_VERSION,
            "workdir": str(self.workdir),
            "processes": [p.record() for p in [*cp.processes, *pg.processes, *bao.processes]],
            "control_plane": control_plane,
            "postgres": {
                "host": LOOPBACK,
                "port": pg.port,
                "user": SUPERUSER,
                "dsn": f"postgresql://{SUPERUSER}@{LOOPBACK}:{pg.port}/postgres",
                "password_file": str(write_secret(secrets_dir / "postgres-password", pg.password)),
                "data_root": str(pg.data_root) if pg.data_root is not None else None,
            },
            "openbao": {
                "address": bao.address,
                "root_token_file": str(write_secret(secrets_dir / "openbao-root-token", bao.root_token)),
            },
        }
        path = self.workdir / STATE_FILE
        path.write_text(json.dumps(state, indent=2) + "\n")
        return path

    @staticmethod
    def load_state(workdir: Path) -> dict[str, Any]:
        """The state saved by `save_state` in `workdir`."""
        path = workdir / STATE_FILE
        try:
            state: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            raise BenchError(f"no bench state at {path}: is the bench running?") from None
        if state.get("version") != STATE_VERSION:
            raise BenchError(f"{path} has state version {state.get('version')}, not {STATE_VERSION}")
        return state

    @staticmethod
    def stop_from_state(workdir: Path) -> None:
        """Stop a bench saved in `workdir` by another Python process, then delete its state.

        Each recorded process group gets its stop signal, then SIGKILL if it outlives the grace
        period; a pid now held by another process (checked by start time) is left alone.
        """
        state = Bench.load_state(workdir)
        for record in reversed(state["processes"]):
            stop_recorded(record)
        if state["postgres"]["data_root"] is not None:
            shutil.rmtree(state["postgres"]["data_root"], ignore_errors=True)
        (workdir / STATE_FILE).unlink()
