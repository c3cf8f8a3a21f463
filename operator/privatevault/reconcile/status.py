"""One status builder for every kind: kstatus conditions, observedGeneration and the kind's facts.

A reconcile ends in one of four ways, and each maps to conditions the same way for every kind:

- done: ``Ready=True`` for this generation, with the kind's facts (``Done.facts``);
- refused (:class:`~privatevault.errors.SpecError`, and ``KmsUnavailable``): ``Stalled=True``
  with the error's reason (kstatus: Failed), observedGeneration moves on;
- waiting on a dependency (:class:`~privatevault.errors.TransientError`): ``Reconciling=True``
  naming the dependency and since when (kstatus: InProgress);
- held by a gate (:class:`~privatevault.errors.GateClosed`): ``Reconciling=True`` with the gate's
  reason (``AwaitingQuorum``) and what it waits for.

The first reconcile of a generation writes ``Reconciling=True`` at once (:func:`begin`), so a
GitOps tool never reads an empty or stale status as done; a new object needs none, as the CRD
defaults its status to ``observedGeneration: 0``, which already reads as not done.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from privatevault.api.v1alpha1 import Condition, Resource, Status
from privatevault.api.v1alpha1.common import ConditionStatus
from privatevault.errors import GateClosed, KmsUnavailable, SpecError, TransientError
from privatevault.reconcile import conditions

S = TypeVar("S", bound=Status)

_SINCE = re.compile(r"^waiting for .+ since (\S+): ")


@dataclass(frozen=True)
class Mark:
    """A kind's own condition beside the kstatus three (``Weakened`` on a ProtectionPolicy)."""

    type: str
    status: ConditionStatus
    reason: str
    message: str


@dataclass(frozen=True)
class Done:
    """A reconcile that made the object's intent real: the Ready message and the kind's facts."""

    message: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    marks: Sequence[Mark] = ()
    #: A gated change the reconcile holds (the rest of the intent is real): the status shows the
    #: facts, and the conditions this error gives (AwaitingQuorum, or Stalled when refused).
    held: GateClosed | SpecError | None = None


def stalls(error: BaseException) -> bool:
    """Whether ``error`` leaves the object ``Stalled`` (kstatus Failed) rather than in progress."""
    return isinstance(error, SpecError | KmsUnavailable)


#: The Stalled reasons a retry follows (the error is transient): their generation is not settled.
_KMS_UNAVAILABLE = "KMSUnavailable"
RETRIED_STALLS = frozenset({_KMS_UNAVAILABLE})


def settled(body: Mapping[str, Any]) -> bool:
    """Whether the stored status says its object's generation is done with: ``observedGeneration``
    is the object's generation (Ready, held for a quorum, or Stalled on its spec) and no retry is
    due (``Stalled`` on an unreachable KMS moves ``observedGeneration`` on, yet is retried).

    Read from the raw body, on every watch event of the kind: no model is built.
    """
    found = body.get("status") or {}
    generation = (body.get("metadata") or {}).get("generation")
    if generation is None or found.get("observedGeneration") != generation:
        return False
    return not any(
        c.get("type") == "Stalled" and c.get("status") == "True" and c.get("reason") in RETRIED_STALLS
        for c in found.get("conditions") or ()
    )


def _previous(obj: Resource, model: type[S]) -> S:
    return obj.status if isinstance(obj.status, model) else model()


def begin(obj: Resource, model: type[S], *, now: datetime, message: str) -> S:
    """``Reconciling=True`` for a generation the operator has not finished yet."""
    previous = _previous(obj, model)
    generation = obj.metadata.get("generation")
    return previous.model_copy(
        update={
            "conditions": conditions.progressing(
                previous.conditions, reason="Progressing", message=message, generation=generation, now=now
            )
        }
    )


def needs_begin(obj: Resource) -> bool:
    """Whether this generation still lacks ``Reconciling=True`` (an object already waiting keeps its message).

    Not for a new object whose status is the CRD's default (``observedGeneration: 0``, no
    condition): that already reads as in progress, to kstatus and to the Argo CD health checks,
    and its first reconcile writes its status once, at its end. A new object without any status
    (its CRD installed before the default) still gets ``Reconciling=True`` at once.
    """
    status, generation = obj.status, obj.metadata.get("generation")
    if status is not None and status.observed_generation == generation:
        return False
    if status is not None and status.observed_generation == 0 and not status.conditions:
        return False  # the CRD's default status: a new object, in progress to every reader already
    return not any(
        c.type == conditions.RECONCILING and c.status == "True" and c.observed_generation == generation
        for c in (status.conditions if status else [])
    )


def waiting_message(previous: Sequence[Condition], error: TransientError, now: datetime) -> str:
    """``waiting for <dependency> since <time>: <error>``; the time is kept while the wait goes on."""
    since = conditions.timestamp(now)
    for condition in previous:
        if condition.type == conditions.RECONCILING and condition.status == "True":
            found = _SINCE.match(condition.message)
            if found and condition.message.startswith(f"waiting for {error.dependency} since "):
                since = found.group(1)
    return f"waiting for {error.dependency} since {since}: {error}"


def done(obj: Resource, model: type[S], result: Done, *, now: datetime) -> S:
    previous = _previous(obj, model)
    generation = obj.metadata.get("generation")
    if result.held is not None:
        held = failed(obj, model, result.held, now=now, facts=result.facts)
        return held.model_copy(update={"observed_generation": generation})
    conds = conditions.ready(previous.conditions, message=result.message, generation=generation, now=now)
    for mark in result.marks:
        conds = conditions.set_condition(
            conds,
            type=mark.type,
            status=mark.status,
            reason=mark.reason,
            message=mark.message,
            generation=generation,
            now=now,
        )
    return model(observed_generation=generation, conditions=conds, **result.facts)


def failed(
    obj: Resource, model: type[S], error: Exception, *, now: datetime, facts: Mapping[str, Any] | None = None
) -> S:
    """The status after a reconcile that raised ``error`` (one of the error tree's)."""
    previous = _previous(obj, model)
    generation = obj.metadata.get("generation")
    if stalls(error):
        reason = _KMS_UNAVAILABLE if isinstance(error, KmsUnavailable) else getattr(error, "reason", "ReconcileFailed")
        message = waiting_message(previous.conditions, error, now) if isinstance(error, TransientError) else str(error)
        return previous.model_copy(
            update={
                "observed_generation": generation,
                "conditions": conditions.stalled(
                    previous.conditions, reason=reason, message=message, generation=generation, now=now
                ),
                **(facts or {}),
            }
        )
    if isinstance(error, GateClosed):
        reason, message = error.reason, str(error)
    elif isinstance(error, TransientError):
        reason, message = type(error).__name__, waiting_message(previous.conditions, error, now)
    else:
        reason, message = type(error).__name__, str(error)
    return previous.model_copy(
        update={
            "conditions": conditions.progressing(
                previous.conditions, reason=reason, message=message, generation=generation, now=now
            ),
            **(facts or {}),
        }
    )


#: What :func:`state` answers: the kstatus reading of a status, with a gate told apart.
STATES = ("Ready", "Stalled", "AwaitingQuorum", "Reconciling")


def state(status: Status) -> str:
    """One word for ``status`` as kstatus and the Argo CD health checks read it (the metrics' label).

    ``Stalled`` wins over everything, then ``Ready`` of the current generation; a gate held is
    ``AwaitingQuorum``; anything else is ``Reconciling``.
    """
    found = {c.type: c for c in status.conditions or []}
    if (stalled := found.get("Stalled")) is not None and stalled.status == "True":
        return "Stalled"
    reconciling = found.get("Reconciling")
    if reconciling is not None and reconciling.status == "True":
        return "AwaitingQuorum" if reconciling.reason == "AwaitingQuorum" else "Reconciling"
    if (ready := found.get("Ready")) is not None and ready.status == "True":
        return "Ready"
    return "Reconciling"


def stalled_reason(status: Status) -> str:
    """The reason of ``Stalled=True`` (``KMSUnavailable``, ``NamespaceConflict``, …); empty otherwise."""
    for condition in status.conditions or []:
        if condition.type == "Stalled" and condition.status == "True":
            return condition.reason
    return ""
