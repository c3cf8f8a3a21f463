"""kopf's last handled state read from the status (``handlers.observed``), through kopf's own
cause detection: what each Tenant event means to kopf, and what is written for it."""

from __future__ import annotations

from typing import Any

import kopf
from kopf._cogs.structs import diffs  # kopf's own diff, as its processing calls it
from kopf._core.intents import causes

from privatevault.app import Finished
from privatevault.handlers.observed import storages
from tests import builders

FINALIZER = "privatevault.io/finalizer"


def ready(generation: int) -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled", "message": "ok"}],
    }


def stalled(generation: int, reason: str) -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "conditions": [{"type": "Stalled", "status": "True", "reason": reason, "message": "no"}],
    }


def cause_of(body: dict[str, Any], finished: Finished | None = None) -> tuple[causes.Reason, kopf.Patch]:
    """What kopf makes of ``body`` (a MODIFIED event) with our storages, and what it would patch."""
    diffbase, progress = storages({"Tenant"}, finished or Finished())
    wrapped = kopf.Body(body)
    old = diffbase.fetch(body=wrapped)
    new = diffbase.build(body=wrapped)
    old = progress.clear(essence=old) if old is not None else None
    new = progress.clear(essence=new)
    patch = kopf.Patch()
    found = causes.detect_changing_cause(
        finalizer=FINALIZER,
        raw_event={"type": "MODIFIED", "object": body},
        resource=None,
        indices=None,
        logger=None,
        patch=patch,
        body=wrapped,
        old=old,
        new=new,
        diff=diffs.diff(old, new),
        memo=None,
    )
    if found.reason == causes.Reason.CREATE:
        diffbase.store(body=wrapped, patch=patch, essence=new)
    return found.reason, patch


def tenant(generation: int, status: dict[str, Any] | None = None) -> dict[str, Any]:
    body = builders.tenant("acme", uid="uid-acme", generation=generation, status=status)
    body["metadata"]["finalizers"] = [FINALIZER]
    return body


def test_a_new_tenant_is_a_creation_and_handling_it_writes_no_annotation() -> None:
    reason, patch = cause_of(tenant(1))
    assert reason == causes.Reason.CREATE
    assert not patch  # kopf's last-handled-configuration would be one more PATCH of every Tenant


def test_a_generation_its_status_observed_is_handled_and_a_new_one_is_not() -> None:
    assert cause_of(tenant(1, ready(1)))[0] == causes.Reason.NOOP
    assert cause_of(tenant(2, ready(1)))[0] == causes.Reason.CREATE  # a spec change: reconciled again


def test_a_spec_refused_is_handled_but_an_unreachable_kms_is_retried() -> None:
    assert cause_of(tenant(1, stalled(1, "NamespaceConflict")))[0] == causes.Reason.NOOP
    assert cause_of(tenant(1, stalled(1, "KMSUnavailable")))[0] == causes.Reason.CREATE


def test_a_generation_this_process_finished_is_handled_until_its_status_says_so() -> None:
    finished = Finished()
    finished.mark("uid-acme", 1)
    begun = {"conditions": [{"type": "Reconciling", "status": "True", "reason": "Progressing", "message": ""}]}
    assert cause_of(tenant(1, begun), finished)[0] == causes.Reason.NOOP  # the begin status's event, late
    assert cause_of(tenant(2, begun), finished)[0] == causes.Reason.CREATE  # not for another generation
    assert cause_of(tenant(1, ready(1)), finished)[0] == causes.Reason.NOOP
    assert len(finished) == 0  # forgotten once the status carries it


def test_other_kinds_keep_kopfs_annotation() -> None:
    diffbase, _ = storages({"Tenant"}, Finished())
    policy = kopf.Body(builders.protection_policy("strict", uid="uid-pp", generation=1, status=ready(1)))
    assert diffbase.fetch(body=policy) is None  # no annotation yet, whatever the status says
    patch = kopf.Patch()
    diffbase.store(body=policy, patch=patch, essence=diffbase.build(body=policy))
    assert "privatevault.io/last-handled-configuration" in patch["metadata"]["annotations"]


def test_a_handler_that_succeeds_at_once_leaves_kopf_nothing_to_patch() -> None:
    _, progress = storages({"Tenant"}, Finished())
    body, patch = kopf.Body(tenant(1)), kopf.Patch()
    progress.store(key="create", record={"success": True}, body=body, patch=patch)
    progress.purge(key="create", body=body, patch=patch)
    assert not patch  # kopf's kopf-managed marker alone was a PATCH of every new Tenant
