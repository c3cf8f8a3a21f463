"""An OpenBao dev server, the bench's stand-in for the key-management backend.

Dev mode starts initialised and unsealed with a root token we choose, which is all the tests need.
It keeps everything in memory: stopping the server loses every mount, key and token except the
root token, which the next start() recreates (on the same port, so clients can reconnect). Fault
tests rely on exactly that when they take OpenBao away and bring it back.

HOME points into the work directory so that bao never writes a token helper file into the real
home; the root token travels in the environment, not on the command line, to stay out of `ps`.
"""

import os
import secrets
import sys
from pathlib import Path

from privatevault.testbench.errors import BenchError
from privatevault.testbench.ports import LOOPBACK, free_port
from privatevault.testbench.probe import http_ok
from privatevault.testbench.process import ManagedProcess

START_TIMEOUT = 30.0


def _bao_binary() -> Path:
    path = Path(os.environ.get("PV_BAO") or Path(sys.executable).parent / "bao")
    if not os.access(path, os.X_OK):
        raise BenchError(f"OpenBao executable not found at {path}; run `make setup` (or point PV_BAO at a bao binary)")
    return path


class OpenBao:
    """An OpenBao dev server on a free 127.0.0.1 port with a random root token."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir.resolve()
        self.log = self.workdir / "logs" / "openbao.log"
        self.root_token = "pv-" + secrets.token_urlsafe(24)
        self._port: int | None = None
        self._process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        if self._port is None:
            raise BenchError("openbao has not been started")
        return f"http://{LOOPBACK}:{self._port}"

    @property
    def processes(self) -> list[ManagedProcess]:
        return [self._process] if self._process is not None else []

    def start(self) -> None:
        """Start the dev server (on the port of the previous start, if any) and wait for it."""
        if self._process is not None:
            raise BenchError("openbao is already running")
        home = self.workdir / "openbao-home"
        home.mkdir(parents=True, exist_ok=True)
        if self._port is None:
            self._port = free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "BAO_DEV_ROOT_TOKEN_ID": self.root_token,
        }
        argv = [str(_bao_binary()), "server", "-dev", "-dev-no-store-token"]
        argv += [f"-dev-listen-address={LOOPBACK}:{self._port}"]
        self._process = ManagedProcess("openbao", argv, self.log, env=env)
        try:
            self._process.start()
            self._process.wait_ready(self._healthy, START_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server; its in-memory data is gone."""
        process, self._process = self._process, None
        if process is not None:
            process.stop()

    def _healthy(self) -> bool:
        return http_ok(f"{self.address}/v1/sys/health")
