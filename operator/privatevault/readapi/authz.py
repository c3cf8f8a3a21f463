"""Who may read what: TokenReview for the caller's identity, SubjectAccessReview for each view.

The API server decides, so ordinary RBAC rules (a ClusterRole on group ``privatevault.io`` with
``resourceNames`` naming tenants) grant reads. Decisions are cached the way controller-runtime's
authorizer filter does: allowed answers for :data:`ALLOW_TTL`, denials for the shorter
:data:`DENY_TTL` (a grant just made takes effect soon), keyed by a digest of the token (the token
itself is never kept as a key, nor logged) and the attributes. The reviews themselves are handed
in (:class:`Reviews`): the Kubernetes adapter in the operator, a fake in unit tests.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from privatevault.api.v1alpha1 import GROUP

ALLOW_TTL = 10.0
DENY_TTL = 2.0
#: Entries kept at most; the oldest half is dropped beyond it (many callers, each a few views).
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class User:
    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Attributes:
    """A resource attribute check: ``verb`` on ``resource`` (``audit``, ``proofs``, …) named ``name``
    (a tenant; empty: all of them) in group ``privatevault.io``."""

    verb: str
    resource: str
    name: str = ""
    subresource: str = ""

    def spec(self, user: User) -> dict[str, Any]:
        attrs = {"group": GROUP, "resource": self.resource, "verb": self.verb}
        if self.name:
            attrs["name"] = self.name
        if self.subresource:
            attrs["subresource"] = self.subresource
        return {
            "user": user.username,
            "uid": user.uid,
            "groups": list(user.groups),
            "extra": {key: list(values) for key, values in user.extra},
            "resourceAttributes": attrs,
        }


class Reviews(Protocol):
    """The API server's answers: the ``status`` of a TokenReview and of a SubjectAccessReview."""

    def review_token(self, token: str) -> Mapping[str, Any]: ...

    def review_access(self, spec: Mapping[str, Any]) -> Mapping[str, Any]: ...


class Unauthenticated(Exception):
    """No token, or one the API server does not accept (HTTP 401)."""


def user_of(status: Mapping[str, Any]) -> User | None:
    """The user a TokenReview status names; None unless authenticated."""
    if not status.get("authenticated"):
        return None
    found = status.get("user") or {}
    extra = found.get("extra") or {}
    return User(
        username=str(found.get("username") or ""),
        uid=str(found.get("uid") or ""),
        groups=tuple(found.get("groups") or ()),
        extra=tuple(sorted((str(k), tuple(v or ())) for k, v in extra.items())),
    )


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class DecisionCache:
    """Answers remembered for ``allow_ttl`` (allowed) or ``deny_ttl`` (denied) seconds."""

    allow_ttl: float = ALLOW_TTL
    deny_ttl: float = DENY_TTL
    clock: Callable[[], float] = time.monotonic
    _entries: dict[Any, tuple[float, Any]] = field(default_factory=dict)

    def get(self, key: Any) -> tuple[bool, Any]:
        """(found, value)."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, value = entry
        if self.clock() >= expires:
            del self._entries[key]
            return False, None
        return True, value

    def put(self, key: Any, value: Any, *, allowed: bool) -> None:
        if len(self._entries) >= MAX_ENTRIES:
            for old in list(self._entries)[: MAX_ENTRIES // 2]:
                del self._entries[old]
        self._entries[key] = (self.clock() + (self.allow_ttl if allowed else self.deny_ttl), value)


Run = Callable[[Callable[[], Mapping[str, Any]]], Awaitable[Mapping[str, Any]]]


@dataclass
class Authorizer:
    """Authenticates bearer tokens and asks whether their users may read a view; answers cached.

    ``run`` runs a blocking review off the event loop (``asyncio.to_thread`` in the server).
    """

    reviews: Reviews
    run: Run
    cache: DecisionCache = field(default_factory=DecisionCache)

    async def authenticate(self, token: str | None) -> User:
        if not token:
            raise Unauthenticated("no bearer token")
        key = ("token", token_key(token))
        found, user = self.cache.get(key)
        if not found:
            status = await self.run(lambda: self.reviews.review_token(token))
            user = user_of(status)
            self.cache.put(key, user, allowed=user is not None)
        if user is None:
            raise Unauthenticated("the token was not accepted")
        assert isinstance(user, User)
        return user

    async def allowed(self, user: User, attributes: Attributes) -> bool:
        key = ("access", user, attributes)
        found, answer = self.cache.get(key)
        if found:
            return bool(answer)
        spec = attributes.spec(user)
        status = await self.run(lambda: self.reviews.review_access(spec))
        answer = bool(status.get("allowed")) and not status.get("denied")
        self.cache.put(key, answer, allowed=answer)
        return answer
