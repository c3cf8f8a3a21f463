"""One way to wire a kind into kopf, and one place where the error tree meets kopf and status.

A kind is a model, a status model, a pure reconcile (``work``) and the facts its status shows
whatever happens (``facts``). :func:`register` gives every kind the same handlers: create and
resume, spec updates, and a resync (:class:`Resync`: one loop per kind, reading the objects from
the caches, instead of a kopf timer per object), all running :func:`run`, which

1. writes ``Reconciling=True`` at once for a generation not reconciled yet (kstatus);
2. runs ``work`` under the object's lock;
3. maps the outcome to status through ``reconcile.status`` and to kopf through :func:`to_kopf`:
   ``SpecError`` → Stalled, not retried until the spec changes; ``TransientError`` → retried
   after ``retry_delay``; ``GateClosed`` → retried less often; status written only if it changed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

import kopf
from pydantic import BaseModel, ValidationError

from privatevault.api.v1alpha1 import API_VERSION, GROUP, VERSION, Resource, Status
from privatevault.app import App
from privatevault.errors import GateClosed, PrivateVaultError, SpecError, TransientError
from privatevault.reconcile import conditions, status

R = TypeVar("R", bound=Resource)

#: How much longer a gated action waits between retries than a dependency outage.
GATE_BACKOFF = 6


@dataclass(frozen=True)
class Context:
    """What a reconcile gets besides its object: the time, the previous spec (updates), the logger."""

    now: datetime
    logger: kopf.Logger | Any
    old: Mapping[str, Any] | None = None
    #: The object as the API server stores it: gated changes are named by its exact spec.
    body: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Kind(Generic[R]):
    resource: type[R]
    status_model: type[Status]
    work: Callable[[R, Context], status.Done]
    begin_message: str
    facts: Callable[[R], Mapping[str, Any]] = field(default=lambda _: {})
    #: Run after a reconcile that ended Ready (or held), with the object as it now stands (its new
    #: status in place): what other kinds derive from it (the compliance of a tenant).
    then: Callable[[Mapping[str, Any], Any], None] | None = None
    #: Whether ``work`` compares with the previous spec (``Context.old``): kopf then keeps its own
    #: record of the last handled spec; otherwise the status is that record (``handlers.observed``).
    reads_previous: bool = False

    @property
    def name(self) -> str:
        return self.resource.kind


def write_status(app: App, kind: str, name: str, before: BaseModel | None, after: BaseModel) -> None:
    """Patch the status subresource, only when it changed: an idle reconcile writes nothing."""
    if isinstance(after, Status):
        app.metrics.observe(kind, name, status.state(after), status.stalled_reason(after))
    if before == after:
        return
    app.cluster.live.patch_status(
        API_VERSION, kind, name, after.model_dump(mode="json", by_alias=True, exclude_none=True)
    )


def to_kopf(exc: PrivateVaultError, *, retry_delay: float, logger: Any, what: str) -> None:
    """Map the error tree to kopf once: return for a Stalled spec, raise kopf's retry otherwise."""
    if isinstance(exc, SpecError):
        logger.warning("%s stalled: %s (%s)", what, exc, exc.reason)
        return
    if isinstance(exc, GateClosed):
        raise kopf.TemporaryError(f"{what} waits: {exc}", delay=retry_delay * GATE_BACKOFF) from exc
    if isinstance(exc, TransientError):
        raise kopf.TemporaryError(str(exc), delay=retry_delay) from exc
    raise kopf.TemporaryError(f"{what}: {exc}", delay=retry_delay) from exc


def run(app: App, kind: Kind[R], body: Mapping[str, Any], logger: Any, *, old: Mapping[str, Any] | None = None) -> None:
    """One reconcile of one object, from its body to its status (see the module docstring)."""
    try:
        obj = kind.resource.model_validate(dict(body))
    except ValidationError as exc:
        # Stored before a rule that now refuses it (the API server checks new objects): Stalled, not retried.
        _stall_invalid(app, kind, body, exc, logger)
        return
    name = str(obj.metadata["name"])
    now = app.clock()
    with app.locks.hold(str(obj.metadata["uid"])):
        if status.needs_begin(obj):
            begin = status.begin(obj, kind.status_model, now=now, message=kind.begin_message)
            write_status(app, kind.name, name, obj.status, begin)
            obj = obj.model_copy(update={"status": begin})
        try:
            result = kind.work(obj, Context(now=now, logger=logger, old=old, body=dict(body)))
        except PrivateVaultError as exc:
            facts = kind.facts(obj) if status.stalls(exc) else None
            after = status.failed(obj, kind.status_model, exc, now=now, facts=facts)
            write_status(app, kind.name, name, obj.status, after)
            to_kopf(exc, retry_delay=app.settings.retry_delay, logger=logger, what=f"{kind.name} {name}")
            _finished(app, body)  # stalled: not retried until the spec changes
            return
        after = status.done(obj, kind.status_model, result, now=now)
        write_status(app, kind.name, name, obj.status, after)
        _finished(app, body)
    if kind.then is not None:
        kind.then({**body, "status": after.model_dump(mode="json", by_alias=True, exclude_none=True)}, logger)


def _finished(app: App, body: Mapping[str, Any]) -> None:
    """This generation is done with (its status now says so): kopf is not to handle it again.
    Not kept when the status read said so already (an idle resync): only kopf's next look at an
    object whose finishing status write is still on its way needs this memory."""
    if status.settled(body):
        return
    metadata = body.get("metadata", {})
    app.finished.mark(str(metadata.get("uid")), int(metadata.get("generation") or 0))


def resource_of(model: type[Resource]) -> tuple[str, str, str]:
    return GROUP, VERSION, model.plural


def _stall_invalid(app: App, kind: Kind[R], body: Mapping[str, Any], error: ValidationError, logger: Any) -> None:
    metadata = body.get("metadata", {})
    generation = metadata.get("generation")
    problems = "; ".join(
        f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors(include_url=False)[:3]
    )
    message = f"the spec no longer passes the API's rules ({problems}); fix the spec"
    after = kind.status_model(
        observed_generation=generation,
        conditions=conditions.stalled(
            [], reason="InvalidSpec", message=message, generation=generation, now=app.clock()
        ),
    )
    try:
        before = kind.status_model.model_validate(body.get("status") or {})
    except ValidationError:
        before = None
    write_status(app, kind.name, str(metadata.get("name")), before, after)
    _finished(app, body)
    logger.warning("%s %s stalled: %s", kind.name, metadata.get("name"), message)


class _ObjectLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Log lines prefixed with the object they concern, as kopf's own per-object loggers are."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"[{self.extra['name'] if self.extra else ''}] {msg}", kwargs


def object_logger(kind: str, name: str) -> logging.LoggerAdapter:  # type: ignore[type-arg]
    return _ObjectLogger(logging.getLogger(f"privatevault.{kind.lower()}"), {"name": name})


class Resync:
    """Every ``interval`` seconds, :func:`run` for every object of ``kind`` in the caches that is
    not being deleted, one after the other, each logged as ``Resync of <kind> <name> succeeded.``
    (or ``failed``; the next interval tries again). One thread per kind, however many objects:
    a kopf timer per object kept a task, its coroutines and the object's last body each."""

    def __init__(self, app: App, kind: Kind[R], interval: float) -> None:
        self.app, self.kind, self.interval = app, kind, interval

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            self.once(stop)

    def once(self, stop: threading.Event | None = None) -> int:
        """One pass; the number of objects reconciled without an error."""
        cluster, name_of = self.app.cluster, self.kind.name
        known = cluster.versions(API_VERSION, name_of)
        names = (
            [name for name, _ in known]
            if known is not None
            else [str(obj["metadata"]["name"]) for obj in cluster.list(API_VERSION, name_of)]
        )
        done = 0
        for name in names:
            if stop is not None and stop.is_set():
                break
            body = cluster.get(API_VERSION, name_of, name)  # read one at a time: no pass holds them all
            if body is None or body["metadata"].get("deletionTimestamp"):
                continue
            logger = object_logger(name_of, name)
            try:
                run(self.app, self.kind, body, logger)
            except kopf.TemporaryError as exc:
                logger.warning("Resync of %s %s failed: %s", name_of, name, exc)
                continue
            except Exception:
                logger.exception("Resync of %s %s failed", name_of, name)
                continue
            logger.info("Resync of %s %s succeeded.", name_of, name)
            done += 1
        return done


def register_bypass(
    registry: kopf.OperatorRegistry,
    app: App,
    model: type[Resource],
    decide: Callable[[dict[str, Any]], str | None],
) -> None:
    """On a gated object's deletion event: ``decide`` records a bypass and names the QuorumPolicy
    whose gate was bypassed (None: the deletion was decided, or nothing gated it), raised by
    :func:`bypassed`. Filtered on kopf's loop: no other event of the kind reaches a thread."""

    def deleted(event: kopf.RawEvent, **_: Any) -> bool:
        return event.get("type") == "DELETED"

    @kopf.on.event(*resource_of(model), registry=registry, id="bypass", when=deleted)
    def on_gone(body: kopf.Body, logger: kopf.Logger, **kwargs: Any) -> None:
        app.cluster.bind(kwargs)
        policy = decide(dict(body))
        if policy is not None:
            bypassed(app, model.__name__, str(body.get("metadata", {}).get("name")), policy, logger)


def bypassed(app: App, kind: str, name: str, policy: str, logger: Any) -> None:
    """A gated object gone without a quorum decision (its finalizer stripped by hand), already
    recorded in the ledger: counted, logged as an error, and a Warning Event on the QuorumPolicy."""
    app.metrics.bypassed[kind] += 1
    message = f"{kind} {name} disappeared without a quorum decision: its finalizer was removed by hand"
    logger.error("%s; the gate of QuorumPolicy %s was bypassed (recorded in the ledger)", message, policy)
    found = app.cluster.get(API_VERSION, "QuorumPolicy", policy)
    if found is not None:
        kopf.warn(kopf.Body(cast(kopf.RawBody, found)), reason="BypassedQuorum", message=message)


def register(registry: kopf.OperatorRegistry, app: App, kind: Kind[R], *, resync: float) -> None:
    """Create/resume, spec updates and the resync loop of ``kind``, all through :func:`run`."""
    resource = resource_of(kind.resource)

    @kopf.on.resume(*resource, registry=registry, id="resume")
    @kopf.on.create(*resource, registry=registry, id="create")
    def on_start(body: kopf.Body, logger: kopf.Logger, **kwargs: Any) -> None:
        app.cluster.bind(kwargs)
        run(app, kind, body, logger)

    @kopf.on.update(*resource, registry=registry, id="update", field="spec")
    def on_update(body: kopf.Body, old: Any, logger: kopf.Logger, **kwargs: Any) -> None:
        app.cluster.bind(kwargs)
        run(app, kind, body, logger, old=dict(old) if old else None)

    @kopf.on.startup(registry=registry, id=f"resync-{kind.name}")
    def start_resync(**_: Any) -> None:
        app.background(f"privatevault-resync-{kind.name.lower()}", Resync(app, kind, resync).run)
