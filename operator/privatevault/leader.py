"""Leader election on a ``coordination.k8s.io`` Lease, as client-go's leaderelection does it.

Several replicas may run; only the holder of the Lease ``privatevault-operator`` in the operator's
namespace runs kopf. The others wait and try again every ``retry`` seconds. A Lease whose record
has not changed for ``duration`` seconds *as this process observed it* (its own monotonic clock,
never the holder's timestamps, so clock skew cannot hand over early) is taken over, with the
Lease's resourceVersion guarding against two takers. The leader renews every ``retry`` seconds;
when it cannot renew within ``deadline`` seconds it has lost the Lease and must stop at once
(``on_lost``): the CLI exits the process, so no reconcile of a former leader overlaps the new one.

kopf's own peering is not used: it is not a Lease, and it pauses handlers instead of stopping
the process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from privatevault.errors import PrivateVaultError

LEASE = "privatevault-operator"
log = logging.getLogger("privatevault.leader")


class Leases(Protocol):
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None: ...

    def replace(self, obj: dict[str, Any]) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Timing:
    duration: float = 15.0
    deadline: float = 10.0
    retry: float = 2.0


def _micro(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease(namespace: str, identity: str, seconds: float, now: datetime, *, transitions: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": LEASE, "namespace": namespace},
        "spec": {
            "holderIdentity": identity,
            "leaseDurationSeconds": max(1, round(seconds)),
            "acquireTime": _micro(now),
            "renewTime": _micro(now),
            "leaseTransitions": transitions,
        },
    }


def record_of(found: dict[str, Any]) -> tuple[Any, ...]:
    """What changes whenever a holder renews: the holder and its renew time."""
    spec = found.get("spec") or {}
    return spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseTransitions")


class Election:
    def __init__(
        self,
        leases: Leases,
        namespace: str,
        identity: str,
        *,
        timing: Timing = Timing(),
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.leases, self.namespace, self.identity, self.timing = leases, namespace, identity, timing
        self.clock, self.now = clock, now
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self.renewed_at = 0.0

    def try_once(self) -> bool:
        """One attempt to take or keep the Lease; True while this process holds it."""
        found = self.leases.get("coordination.k8s.io/v1", "Lease", LEASE, self.namespace)
        if found is None:
            made = self.leases.create(lease(self.namespace, self.identity, self.timing.duration, self.now()))
            return self._held(made is not None)
        spec = found.get("spec") or {}
        record = record_of(found)
        if record != self._observed:
            self._observed, self._observed_at = record, self.clock()
        mine = spec.get("holderIdentity") == self.identity
        expired = self.clock() - self._observed_at >= self.timing.duration
        if not mine and not expired and spec.get("holderIdentity"):
            return False
        updated = {**found, "spec": {**spec, "holderIdentity": self.identity, "renewTime": _micro(self.now())}}
        updated["spec"]["leaseDurationSeconds"] = max(1, round(self.timing.duration))
        if not mine:
            updated["spec"]["acquireTime"] = _micro(self.now())
            updated["spec"]["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        replaced = self.leases.replace(updated)
        if replaced is not None:
            self._observed, self._observed_at = record_of(replaced), self.clock()
        return self._held(replaced is not None)

    def _held(self, held: bool) -> bool:
        if held:
            self.renewed_at = self.clock()
        return held

    def acquire(self, log_every: float = 30.0) -> None:
        """Block until this process holds the Lease."""
        last_log = -log_every
        while True:
            try:
                if self.try_once():
                    log.info("leader: %s holds Lease %s/%s", self.identity, self.namespace, LEASE)
                    return
            except PrivateVaultError as exc:
                log.warning("leader election: %s", exc)
            if self.clock() - last_log >= log_every:
                log.info("waiting for Lease %s/%s, held by another replica", self.namespace, LEASE)
                last_log = self.clock()
            time.sleep(self.timing.retry)

    def keep(self, on_lost: Callable[[], None], stop: threading.Event) -> threading.Thread:
        """Renew in the background; call ``on_lost`` once renewing has failed for ``deadline`` seconds."""

        def renew() -> None:
            while not stop.wait(self.timing.retry):
                try:
                    if self.try_once():
                        continue
                except PrivateVaultError as exc:
                    log.warning("leader election: cannot renew: %s", exc)
                if self.clock() - self.renewed_at >= self.timing.deadline:
                    log.error("leader election lost: Lease %s/%s not renewed in time", self.namespace, LEASE)
                    on_lost()
                    return

        thread = threading.Thread(target=renew, name="privatevault-leader", daemon=True)
        thread.start()
        return thread
