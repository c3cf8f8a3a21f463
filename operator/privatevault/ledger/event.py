"""What goes into the ledger (an Event) and what comes out (a Record)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from json.encoder import encode_basestring
from typing import Any, NamedTuple

import rfc8785


@dataclass(frozen=True, kw_only=True)
class ResourceRef:
    kind: str
    name: str
    namespace: str | None = None
    uid: str | None = None


@dataclass(frozen=True, kw_only=True)
class Event:
    """One change about to be made. ``details`` holds digests and facts, never secrets."""

    tenant: str
    actor: str
    action: str
    resource: ResourceRef
    outcome: str
    idempotency_key: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def body(self, *, seq: int, time: datetime, link: dict[str, Any] | None = None) -> dict[str, Any]:
        """The record's content as hashed: the event plus its position and time, and its place in
        its tenant's chain (``link``, from ``ledger.tenantchain``)."""
        return {
            "v": 1,
            "seq": seq,
            "time": timestamp(time),
            "tenant": self.tenant,
            "actor": self.actor,
            "action": self.action,
            "resource": self._resource(),
            "outcome": self.outcome,
            "details": self.details,
            "idempotencyKey": self.idempotency_key,
            **(link or {}),
        }

    def _resource(self) -> dict[str, str]:
        resource = {"kind": self.resource.kind, "name": self.resource.name}
        if self.resource.namespace is not None:
            resource["namespace"] = self.resource.namespace
        if self.resource.uid is not None:
            resource["uid"] = self.resource.uid
        return resource

    def canonical(self, *, seq: int, time: bytes, link: dict[str, Any] | None = None) -> bytes:
        """``canonical(self.body(seq=seq, time=...))``, from parts made once per event.

        ``time`` is the time's canonical form, :func:`canonical_time`, made once per batch. In
        JCS order the members before ``seq`` (action … resource) and ``tenant`` do not depend on
        the position, so the writer only joins bytes for each record
        (``tests/unit/test_chain.py`` holds this to the bytes of the whole body).
        """
        head, tenant = self.canonical_parts
        # The tenant chain's members sort between ``tenant`` and ``time``; base64 needs no escaping.
        chained = (
            b',"tenantPrev":"%s","tenantSeq":%d' % (link["tenantPrev"].encode(), link["tenantSeq"]) if link else b""
        )
        return b'%s,"seq":%d,%s%s,"time":%s,"v":1}' % (head, seq, tenant, chained, time)

    @cached_property
    def canonical_parts(self) -> tuple[bytes, bytes]:
        """The canonical bytes before ``seq`` and of ``tenant``: see :meth:`canonical`."""
        resource = self._resource()
        fields = {
            "action": self.action,
            "actor": self.actor,
            "details": self.details,
            "idempotencyKey": self.idempotency_key,
            "outcome": self.outcome,
            "resource": resource,
        }
        if _jcs_c is not None:  # compiled: two calls, the members in JCS order without a closing brace
            head, tenant_member = _jcs_c(fields), _jcs_c({"tenant": self.tenant})
            if head is not None and tenant_member is not None:
                return head[:-1], tenant_member[1:-1]
        strings = [self.action, self.actor, self.idempotency_key, self.outcome, self.tenant, *resource.values()]
        if all(type(value) is str for value in strings):
            # Keys in JCS order, strings escaped as JCS escapes them (ensure_ascii=False JSON).
            action, actor, key, outcome, tenant = map(_string, strings[:5])
            members = b",".join(b'"%s":%s' % (name.encode(), _string(value)) for name, value in resource.items())
            head = b'{"action":%s,"actor":%s,"details":%s,"idempotencyKey":%s,"outcome":%s,"resource":{%s}' % (
                action,
                actor,
                canonical(self.details),
                key,
                outcome,
                members,
            )
            return head, b'"tenant":' + tenant
        return canonical(fields)[:-1], canonical({"tenant": self.tenant})[1:-1]


def _string(value: str) -> bytes:
    """A JSON string as JCS writes it; a lone surrogate is refused as ``rfc8785`` refuses it."""
    try:
        return _jcs(value)
    except _NotPlain:
        return bytes(rfc8785.dumps(value))


def timestamp(time: datetime) -> str:
    """A record's time as written in it: ISO 8601 with ``Z``."""
    return time.isoformat().replace("+00:00", "Z")


def canonical_time(time: datetime) -> bytes:
    """The JCS form of a record's time, for :meth:`Event.canonical`."""
    return canonical({"t": timestamp(time)})[5:-1]


try:
    from privatevault.ledger._append import jcs as _jcs_c  # type: ignore[import-not-found]
except ImportError:  # not built: the pure-Python path, the same bytes
    _jcs_c = None

#: JSON's safe integers (RFC 8785 §3.2.2.3, as ``rfc8785`` enforces them).
_INT_MAX = 2**53 - 1


class _NotPlain(Exception):
    """A value :func:`_jcs` leaves to ``rfc8785``."""


def _jcs(value: Any) -> bytes:
    """:func:`_jcs_py`, compiled when the writer's C extension is built (``_append.jcs``, held to
    the same bytes by ``tests/unit/test_appendrows.py``); what it does not take, this does."""
    made = _jcs_c(value) if _jcs_c is not None else None
    return made if made is not None else _jcs_py(value)


def _jcs_py(value: Any) -> bytes:
    """JCS of a plain value: strings, safe integers, booleans, null, lists, objects with ASCII keys.

    For those, JCS is simple: keys sorted (by UTF-16 code units; for ASCII keys, as Python sorts
    them), strings escaped as ``json`` escapes them without ``ensure_ascii``, integers in
    decimal. Anything else (a float, which JCS writes as ECMAScript does; another key; an integer
    outside JSON's safe range; a lone surrogate) raises :class:`_NotPlain`.
    """
    kind = type(value)
    if kind is str:
        try:
            return encode_basestring(value).encode()
        except UnicodeEncodeError as exc:
            raise _NotPlain from exc
    if kind is dict:
        items = []
        for key in sorted(value):
            if type(key) is not str or not key.isascii():
                raise _NotPlain
            items.append(b"%s:%s" % (encode_basestring(key).encode(), _jcs_py(value[key])))
        return b"{%s}" % b",".join(items)
    if kind is int:
        if not -_INT_MAX <= value <= _INT_MAX:
            raise _NotPlain
        return b"%d" % value
    if value is None:
        return b"null"
    if kind is bool:
        return b"true" if value else b"false"
    if kind is list or kind is tuple:
        return b"[%s]" % b",".join(map(_jcs_py, value))
    raise _NotPlain  # subclasses too (enums, OrderedDict): rfc8785 knows them


def canonical(body: dict[str, Any]) -> bytes:
    """RFC 8785 (JCS) bytes: the only form that is hashed and stored.

    Events hold plain values, whose JCS form :func:`_jcs` writes several times faster than
    ``rfc8785`` (on the writer's path, its largest cost per record); anything else goes through
    ``rfc8785``, which also raises its errors. ``tests/unit/test_chain.py`` holds the two to the same bytes.
    """
    try:
        return _jcs(body)
    except _NotPlain:
        return bytes(rfc8785.dumps(body))


class Record(NamedTuple):
    """A stored ledger record, as read back from the table (a tuple: the verifier reads millions)."""

    seq: int
    canonical: bytes
    prev_hash: bytes
    record_hash: bytes
    idempotency_key: str = ""
