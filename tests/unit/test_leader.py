"""Leader election on a Lease, on a fake store and a fake clock: the first replica takes a missing
Lease, a held one is taken only after it went unrenewed for the whole duration as this replica
observed it (a renewing holder keeps it whatever the clocks say), two takers cannot both win (the
resourceVersion), and a leader that cannot renew within the deadline is told it lost."""

from __future__ import annotations

import copy
import threading
from typing import Any

from privatevault.errors import ClusterUnavailable
from privatevault.leader import LEASE, Election, Timing

TIMING = Timing(duration=15, deadline=10, retry=0.01)


class Leases:
    def __init__(self) -> None:
        self.stored: dict[str, Any] | None = None
        self.version = 0
        self.down = False

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        assert (kind, name, namespace) == ("Lease", LEASE, "pv")
        if self.down:
            raise ClusterUnavailable("down")
        return copy.deepcopy(self.stored)

    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        if self.stored is not None:
            return None
        return self._store(obj)

    def replace(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        if self.stored is None or obj["metadata"].get("resourceVersion") != str(self.version):
            return None
        return self._store(obj)

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.stored = copy.deepcopy(obj) | {"metadata": {**obj["metadata"], "resourceVersion": str(self.version)}}
        return copy.deepcopy(self.stored)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def replica(leases: Leases, name: str, clock: Clock) -> Election:
    return Election(leases, "pv", name, timing=TIMING, clock=clock)


def test_the_first_replica_takes_a_missing_lease_and_the_second_waits() -> None:
    leases, clock = Leases(), Clock()
    first, second = replica(leases, "a", clock), replica(leases, "b", clock)
    assert first.try_once() and not second.try_once()
    assert leases.stored is not None and leases.stored["spec"]["holderIdentity"] == "a"


def test_a_renewing_holder_keeps_the_lease_past_any_duration() -> None:
    leases, clock = Leases(), Clock()
    first, second = replica(leases, "a", clock), replica(leases, "b", clock)
    first.try_once()
    for _ in range(10):
        clock.t += 5
        assert first.try_once()  # renews: the record changes
        assert not second.try_once()


def test_an_unrenewed_lease_is_taken_after_the_whole_duration_as_observed() -> None:
    leases, clock = Leases(), Clock()
    first, second = replica(leases, "a", clock), replica(leases, "b", clock)
    first.try_once()
    clock.t = 100.0  # however old the Lease is, b has only just seen it
    assert not second.try_once()
    clock.t += 14.9
    assert not second.try_once()
    clock.t += 0.2
    assert second.try_once()
    assert leases.stored is not None and leases.stored["spec"]["holderIdentity"] == "b"
    assert leases.stored["spec"]["leaseTransitions"] == 1
    assert not first.try_once()  # the former leader sees it lost


def test_two_takers_cannot_both_win() -> None:
    leases, clock = Leases(), Clock()
    replica(leases, "a", clock).try_once()
    b, c = replica(leases, "b", clock), replica(leases, "c", clock)
    assert not b.try_once() and not c.try_once()
    clock.t += 16
    stale = leases.get("coordination.k8s.io/v1", "Lease", LEASE, "pv")
    assert b.try_once()
    # c read the Lease before b wrote it: its write carries the old resourceVersion and is refused.
    leases.get = lambda *args, **kwargs: copy.deepcopy(stale)  # type: ignore[method-assign]
    assert not c.try_once()


def test_a_leader_that_cannot_renew_within_the_deadline_is_told_it_lost() -> None:
    leases, clock = Leases(), Clock()
    leader = replica(leases, "a", clock)
    assert leader.try_once()
    lost = threading.Event()
    stop = threading.Event()
    leases.down = True
    thread = leader.keep(on_lost=lost.set, stop=stop)
    clock.t += 9
    assert not lost.wait(0.1)
    clock.t += 2
    assert lost.wait(2)
    stop.set()
    thread.join(2)
