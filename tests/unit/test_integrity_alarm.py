"""The composition root's side of the checkpointer: the ConfigMap is read live, with its re-anchor,
and never replaced by a smaller checkpoint unless an anchor abandons what is there (as `pvctl demo
up` writes one on a cluster kept from an earlier demo); a refusal is an
ERROR on every attempt, one Warning Event and a False condition per reason; the incident goes into
the ledger (re-anchor and closure, with their facts) before checkpoints resume; the metrics say 0
and count the refusals."""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from privatevault.app import OperatorAudit, _IntegrityAlarm, _Publisher
from privatevault.cli.demo import reanchor_earlier_demo
from privatevault.errors import ClusterUnavailable
from privatevault.ledger import merkle
from privatevault.ledger.integrity import Anchor, Incident, Integrity, Refusal
from privatevault.ledger.store import StoredCheckpoint
from privatevault.manifests import ledger as ledger_manifests
from privatevault.metrics import OperatorMetrics
from privatevault.settings import Settings

from .fakes import FakeCluster, FakeLedger

NS = "pv-system"
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class View(FakeCluster):
    """The cached view and the live cluster at once (ConfigMaps and Events are not cached)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self
        self.created: list[dict[str, Any]] = []
        self.down = False

    def apply(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        if self.down:
            raise ClusterUnavailable("the API server is down (fake)")
        return super().apply(obj, dry_run=dry_run)

    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        self.created.append(copy.deepcopy(obj))
        return obj


def note(size: int) -> bytes:
    return f"privatevault.io/ledger\n{size}\nAAAA\n\n— privatevault.io/ledger sig\n".encode()


def published(view: View, size: int, *, reanchor: str | None = None) -> None:
    view.apply(ledger_manifests.checkpoint_configmap(NS, note(size), ["key"], reanchor=reanchor))


def configmap(view: View, name: str = ledger_manifests.CHECKPOINT_CONFIGMAP) -> dict[str, str]:
    found = view.get("v1", "ConfigMap", name, NS)
    assert found is not None
    return dict(found["data"])


ANCHOR = Anchor(note(20).decode(), 12, bytes(32), "restored from backup", "alice", "2026-11-30T12:00:00Z")


# -- the publication ----------------------------------------------------------------------------


def test_the_publication_reads_the_note_and_its_anchor() -> None:
    view = View()
    publisher = _Publisher(view, NS, ["key"])  # type: ignore[arg-type]
    assert publisher.read().note is None
    published(view, 20, reanchor=ANCHOR.to_json())
    read = publisher.read()
    assert (read.note, read.anchor) == (note(20), ANCHOR)
    published(view, 20, reanchor="{not json")
    assert publisher.read().anchor is None  # a malformed anchor is ignored (and logged)


@pytest.mark.parametrize(
    ("current", "anchor", "new", "published_size"),
    [
        (None, None, 5, 5),
        (20, None, 30, 30),
        (20, None, 10, 20),  # never a smaller checkpoint ...
        (20, None, 20, 20),
        (20, ANCHOR, 13, 13),  # ... unless an anchor abandons the one there
        (30, ANCHOR, 13, 30),  # an anchor of another note abandons nothing
    ],
)
def test_the_publication_never_goes_back_unless_reanchored(
    current: int | None, anchor: Anchor | None, new: int, published_size: int
) -> None:
    view = View()
    if current is not None:
        published(view, current, reanchor=None if anchor is None else anchor.to_json())
    _Publisher(view, NS, ["key"]).publish(StoredCheckpoint(new, bytes(32), note(new)))  # type: ignore[arg-type]
    data = configmap(view)
    assert ledger_manifests.published_size({"data": data}) == published_size
    if published_size == new:
        assert ledger_manifests.REANCHOR_KEY not in data  # consumed


def test_a_demo_on_a_kept_cluster_reanchors_the_earlier_demos_checkpoint_at_the_empty_tree() -> None:
    view = View()
    assert not reanchor_earlier_demo(view, NS, at=T0)  # nothing published: nothing to abandon
    published(view, 20)
    assert reanchor_earlier_demo(view, NS, at=T0)
    read = _Publisher(view, NS, ["key"]).read()  # type: ignore[arg-type]
    assert read.note == note(20) and read.anchor is not None
    assert (read.anchor.abandoned, read.anchor.size, read.anchor.root) == (note(20).decode(), 0, merkle.EMPTY_ROOT)
    assert configmap(view)[ledger_manifests.VERIFIER_KEYS_KEY] == "key\n"


# -- the alarm -----------------------------------------------------------------------------------


def alarm() -> tuple[_IntegrityAlarm, View, FakeLedger]:
    view, ledger = View(), FakeLedger()
    audit = OperatorAudit(ledger, Settings(ledger_dsn="postgresql://unused", namespace=NS))  # type: ignore[arg-type]
    return _IntegrityAlarm(view, NS, audit, clock=lambda: T0), view, ledger  # type: ignore[arg-type]


REFUSAL = Refusal(
    "InconsistentWithPublished", "the tree at size 30 is not consistent with the published checkpoint", 30, 20
)


def refusing(attempts: int) -> Integrity:
    return Integrity(refusal=REFUSAL, since=T0, attempts=attempts, refused_total=attempts)


def test_a_refusal_is_raised_where_people_look(caplog: pytest.LogCaptureFixture) -> None:
    raised, view, _ = alarm()
    with caplog.at_level(logging.ERROR, logger="privatevault.app"):
        for attempts in (1, 2, 3):
            raised.refused(REFUSAL, refusing(attempts))
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 3  # an ERROR every attempt
    assert "refused 3 time(s) since 2026-11-30T12:00:00+00:00" in caplog.records[-1].getMessage()
    [event] = view.created  # one Event per reason
    assert (event["type"], event["reason"], event["involvedObject"]["name"]) == (
        "Warning",
        "InconsistentWithPublished",
        ledger_manifests.CHECKPOINT_CONFIGMAP,
    )
    condition = configmap(view, ledger_manifests.INTEGRITY_CONFIGMAP)
    assert condition == {
        "type": "LedgerVerified",
        "status": "False",
        "reason": "InconsistentWithPublished",
        "message": REFUSAL.message,
        "lastTransitionTime": "2026-11-30T12:00:00Z",
        "treeSize": "30",
    }


def test_a_cluster_outage_does_not_silence_the_next_attempt(caplog: pytest.LogCaptureFixture) -> None:
    raised, view, _ = alarm()
    view.down = True
    raised.refused(REFUSAL, refusing(1))  # logged, not raised: the refusal stands regardless
    view.down = False
    raised.refused(REFUSAL, refusing(2))
    assert configmap(view, ledger_manifests.INTEGRITY_CONFIGMAP)["status"] == "False"


def test_a_closed_incident_is_recorded_in_the_ledger_before_checkpoints_resume() -> None:
    raised, view, ledger = alarm()
    raised.refused(REFUSAL, refusing(4))
    raised.resolved(Incident(REFUSAL, T0, 4, ANCHOR, 31))
    reanchor, closed = ledger.events
    assert (reanchor.action, reanchor.resource.name) == ("reanchor-ledger", ledger_manifests.CHECKPOINT_CONFIGMAP)
    assert reanchor.details == {
        "abandoned": note(20).decode(),
        "size": 12,
        "root": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "reason": "restored from backup",
        "by": "alice",
        "at": "2026-11-30T12:00:00Z",
    }
    assert reanchor.idempotency_key == f"operator/{NS}/reanchor-ledger/{ANCHOR.digest()}"
    assert closed.action == "close-integrity-incident"
    assert closed.details == {
        "reason": "InconsistentWithPublished",
        "problem": REFUSAL.message,
        "refusedSince": "2026-11-30T12:00:00+00:00",
        "refusedAttempts": 4,
        "treeSizeAtRefusal": 30,
        "publishedSize": 20,
        "treeSize": 31,
        "resolution": "re-anchored",
    }
    assert [e["reason"] for e in view.created] == ["InconsistentWithPublished", "Reanchored"]
    assert configmap(view, ledger_manifests.INTEGRITY_CONFIGMAP)["status"] == "True"
    raised.resolved(Incident(REFUSAL, T0, 4, ANCHOR, 31))  # retried after a crash: no second record
    assert len(ledger.records) == 2


def test_a_healthy_ledger_shows_its_condition_once() -> None:
    raised, view, _ = alarm()
    raised.signed(StoredCheckpoint(5, bytes(32), note(5)))
    raised.signed(StoredCheckpoint(9, bytes(32), note(9)))
    condition = configmap(view, ledger_manifests.INTEGRITY_CONFIGMAP)
    assert (condition["status"], condition["reason"], condition["checkpointSize"]) == ("True", "Verified", "5")
    assert view.created == []  # no Event for the ordinary case


def test_metrics_say_whether_the_ledger_verifies_and_count_refusals() -> None:
    integrity = Integrity(checkpoint_size=20)
    registry = CollectorRegistry()
    registry.register(OperatorMetrics(integrity))
    text = generate_latest(registry).decode()
    assert "privatevault_ledger_integrity_ok 1.0" in text
    assert "privatevault_ledger_checkpoints_refused_total 0.0" in text
    assert "privatevault_ledger_checkpoint_size 20.0" in text
    integrity.refusal, integrity.refused_total = REFUSAL, 3
    text = generate_latest(registry).decode()
    assert "privatevault_ledger_integrity_ok 0.0" in text
    assert "privatevault_ledger_checkpoints_refused_total 3.0" in text
