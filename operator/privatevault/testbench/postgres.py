"""A throwaway PostgreSQL 15 cluster, so ledger tests run against the real server and its locks.

The harness runs `postgres` itself rather than through pg_ctl, so it owns the process and can stop
it, watch it die, or restart it mid-write as the fault tests do. Durability is switched off (fsync,
synchronous commit, full-page writes): the cluster only has to survive clean restarts. A
benchmark that measures writes asks for ``durable=True``: PostgreSQL's defaults, as production
runs it (every commit flushed to disk), so that write figures are not flattered.

PostgreSQL refuses to run as root. When the harness is root, initdb and postgres run as the
`postgres` OS user, which must be able to reach the data directory; if the work directory's
ancestors are closed to it (pytest's tmp_path lives under a 0700 directory), the cluster goes into
a private scratch directory in the system temp directory instead. stop() deletes the cluster
wherever it lives; restart() keeps it.
"""

import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import tempfile
from pathlib import Path

import psycopg

from privatevault.testbench.errors import BenchError
from privatevault.testbench.ports import LOOPBACK, free_port
from privatevault.testbench.process import ManagedProcess, run_logged
from privatevault.testbench.secretfile import write_secret

SUPERUSER = "postgres"
START_TIMEOUT = 60.0


def _bin_dir() -> Path:
    return Path(os.environ.get("PV_PG_BIN_DIR", "/usr/lib/postgresql/15/bin"))


def _binary(name: str) -> Path:
    path = _bin_dir() / name
    if not os.access(path, os.X_OK):
        raise BenchError(
            f"PostgreSQL binary {name} not found at {path}; run `make setup` "
            "(or point PV_PG_BIN_DIR at the directory holding initdb and postgres)"
        )
    return path


def _service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise BenchError(
            f"PostgreSQL refuses to run as root and there is no `{SUPERUSER}` OS user to run it "
            "as; run `make setup` (it installs PostgreSQL 15, which creates that user)"
        ) from None


def _traversable(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` may search every directory from / down to `path` (mode bits only)."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for directory in [path, *path.parents]:
        info = directory.stat()
        if info.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif info.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return False
    return True


class Postgres:
    """A PostgreSQL server on a free 127.0.0.1 port with a random superuser password."""

    def __init__(self, workdir: Path, *, durable: bool = False) -> None:
        self.workdir = workdir.resolve()
        self.durable = durable
        self.log = self.workdir / "logs" / "postgres.log"
        self.password = secrets.token_urlsafe(24)
        self._user = _service_user() if os.geteuid() == 0 else None
        self._root: Path | None = None
        self._port: int | None = None
        self._process: ManagedProcess | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise BenchError("postgres has not been started")
        return self._port

    @property
    def superuser_dsn(self) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@{LOOPBACK}:{self.port}/postgres"

    @property
    def settings(self) -> dict[str, str]:
        """The durability settings the server runs with (``durable``: PostgreSQL's defaults)."""
        value = "on" if self.durable else "off"
        return {"fsync": value, "synchronous_commit": value, "full_page_writes": value}

    @property
    def data_root(self) -> Path | None:
        """The directory holding the cluster (data and sockets), None when there is none."""
        return self._root

    @property
    def processes(self) -> list[ManagedProcess]:
        return [self._process] if self._process is not None else []

    def start(self) -> None:
        """Create a fresh cluster if there is none, then start the server and wait for it.

        If start-up fails, the server is stopped again; the cluster stays until stop().
        """
        if self._process is not None:
            raise BenchError("postgres is already running")
        try:
            if self._root is None:
                self._root = self._create_cluster()
            if self._port is None:
                self._port = free_port()
            self._launch(self._root)
        except BaseException:
            self._halt()
            raise

    def restart(self) -> None:
        """Stop the server and start it again on the same port with the same data."""
        self._halt()
        self.start()

    def stop(self) -> None:
        """Stop the server and delete the cluster."""
        self._halt()
        root, self._root = self._root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    def _halt(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.stop()

    def _create_cluster(self) -> Path:
        initdb = _binary("initdb")
        root = self.workdir / "postgres"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True, mode=0o700)
        if self._user is not None:
            if not _traversable(root.parent, self._user):
                root.rmdir()
                root = Path(tempfile.mkdtemp(prefix="privatevault-pg-"))
            os.chown(root, self._user.pw_uid, self._user.pw_gid)
        pwfile = write_secret(root / "pwfile", self.password)
        if self._user is not None:
            os.chown(pwfile, self._user.pw_uid, self._user.pw_gid)
        argv = [str(initdb), "-D", str(root / "data"), "-U", SUPERUSER, "--encoding=UTF8"]
        argv += ["--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256"]
        argv += [f"--pwfile={pwfile}", "--no-sync"]
        try:
            run_logged("initdb", argv, self.log, env=self._env(root), user=self._username)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        pwfile.unlink()
        return root

    @property
    def _username(self) -> str | None:
        return self._user.pw_name if self._user is not None else None

    def _env(self, root: Path) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root), "LC_ALL": "C"}

    def _launch(self, root: Path) -> None:
        argv = [str(_binary("postgres")), "-D", str(root / "data"), "-p", str(self.port)]
        argv += ["-k", str(root), "-c", f"listen_addresses={LOOPBACK}"]
        for name, value in self.settings.items():
            argv += ["-c", f"{name}={value}"]
        self._process = ManagedProcess(
            "postgres",
            argv,
            self.log,
            env=self._env(root),
            user=self._username,
            stop_signal=signal.SIGINT,  # "fast" shutdown: SIGTERM would wait for clients to leave
        )
        self._process.start()
        self._process.wait_ready(self._accepts_queries, START_TIMEOUT)

    def _accepts_queries(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1):
                pass
            with psycopg.connect(self.superuser_dsn, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except (OSError, psycopg.Error):
            return False
        return True
