"""A managed process: one long-running bench service with its own log file and process group.

Each service runs in a new session, so stopping it signals the whole group (PostgreSQL's backends
included) and a Ctrl-C in the terminal never reaches it behind the harness's back. The log file
collects stdout and stderr; when start-up fails, its tail goes into the error message.

A process can also be stopped from another Python process (`make demo-down`) through the record
it leaves in the bench state file. The record holds the kernel's start time of the process, so a
stale state file never leads to signalling an unrelated process that reused the pid.
"""

import contextlib
import os
import pwd
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from privatevault.testbench.errors import BenchError

LOG_TAIL_LINES = 40
POLL_SECONDS = 0.1


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file, or a note that there is none."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return "(no log file)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _open_log(path: Path) -> IO[bytes]:
    """Open a log for appending, private to the owner: dev-mode services print secrets there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")


def _failure(name: str, reason: str, argv: Sequence[str], log: Path) -> BenchError:
    return BenchError(
        f"{name} {reason}\n  command: {shlex.join(argv)}\n  log: {log}\n"
        f"--- last {LOG_TAIL_LINES} lines of {log.name} ---\n{log_tail(log)}"
    )


def _user_ids(user: str | None) -> dict[str, Any]:
    """Popen arguments that run the child as `user` with that user's groups (None: as we are)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {
        "user": entry.pw_uid,
        "group": entry.pw_gid,
        "extra_groups": os.getgrouplist(user, entry.pw_gid),
    }


def run_logged(
    name: str,
    argv: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    timeout: float = 120.0,
) -> None:
    """Run a one-shot command (such as initdb) with its output appended to `log`."""
    with _open_log(log) as handle:
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=timeout,
                check=False,
                **_user_ids(user),
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise _failure(name, f"could not run: {error}", argv, log) from error
    if result.returncode != 0:
        raise _failure(name, f"failed with exit code {result.returncode}", argv, log)


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a live pid, None if it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rpartition(")")[2].split()
    return fields[0], int(fields[19])


class ManagedProcess:
    """One service process: started into its own session, probed until ready, stopped by group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.env = env
        self.user = user
        self.stop_signal = stop_signal
        self._popen: subprocess.Popen[bytes] | None = None
        self._start_ticks = 0

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise BenchError(f"{self.name} has not been started")
        return self._popen.pid

    @property
    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self) -> None:
        if self.is_running:
            raise BenchError(f"{self.name} is already running (pid {self.pid})")
        with _open_log(self.log) as handle:
            try:
                self._popen = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    start_new_session=True,
                    **_user_ids(self.user),
                )
            except OSError as error:
                raise self.failure(f"could not be started: {error}") from error
        stat = _proc_stat(self._popen.pid)
        self._start_ticks = stat[1] if stat else 0

    def wait_ready(self, probe: Callable[[], bool], timeout: float, waiting_for: str = "its readiness probe") -> None:
        """Poll `probe` until it returns True; fail early if the process exits meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            if self._popen is None or self._popen.poll() is not None:
                code = None if self._popen is None else self._popen.returncode
                raise self.failure(f"exited during start-up (exit code {code})")
            if probe():
                return
            if time.monotonic() > deadline:
                raise self.failure(f"timed out after {timeout:.0f} s waiting for {waiting_for}")
            time.sleep(POLL_SECONDS)

    def stop(self, grace: float = 15.0) -> None:
        """Signal the process group with the stop signal; SIGKILL it after `grace` seconds."""
        popen, self._popen = self._popen, None
        if popen is None:
            return
        if popen.poll() is None:
            _signal_group(popen.pid, self.stop_signal)
            try:
                popen.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(popen.pid, signal.SIGKILL)
                popen.wait()

    def failure(self, reason: str) -> BenchError:
        """A BenchError that names the service and command and quotes the tail of its log."""
        return _failure(self.name, reason, self.argv, self.log)

    def record(self) -> dict[str, Any]:
        """What `stop_recorded` needs to stop this process from another Python process."""
        return {
            "name": self.name,
            "pid": self.pid,
            "start_ticks": self._start_ticks,
            "stop_signal": self.stop_signal.name,
            "log": str(self.log),
        }


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _alive(pid: int, start_ticks: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[1] == start_ticks and stat[0] != "Z"


def stop_recorded(record: Mapping[str, Any], grace: float = 15.0) -> None:
    """Stop a process described by `ManagedProcess.record()`, if it is still that process."""
    pid, start_ticks = int(record["pid"]), int(record["start_ticks"])
    for sig in (signal.Signals[record["stop_signal"]], signal.SIGKILL):
        if not _alive(pid, start_ticks):
            return
        _signal_group(pid, sig)
        deadline = time.monotonic() + grace
        while _alive(pid, start_ticks) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
    if _alive(pid, start_ticks):
        raise BenchError(f"{record['name']} (pid {pid}) is still running after SIGKILL")
