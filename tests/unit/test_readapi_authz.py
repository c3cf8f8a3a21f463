"""Read API authorisation: TokenReview identity, SubjectAccessReview attributes, and the decision
cache (allowed answers kept 10 s, denials 2 s, as controller-runtime's filter), on a virtual clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from privatevault.readapi.authz import (
    ALLOW_TTL,
    DENY_TTL,
    Attributes,
    Authorizer,
    DecisionCache,
    Unauthenticated,
    User,
    user_of,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Reviews:
    """The API server's answers: tokens named ``token-<user>`` are valid; grants by (user, resource, name)."""

    def __init__(self) -> None:
        self.grants: set[tuple[str, str, str]] = set()
        self.token_reviews = 0
        self.access_reviews: list[Mapping[str, Any]] = []

    def review_token(self, token: str) -> Mapping[str, Any]:
        self.token_reviews += 1
        if not token.startswith("token-"):
            return {"authenticated": False, "error": "invalid bearer token"}
        name = token.removeprefix("token-")
        return {"authenticated": True, "user": {"username": name, "uid": f"uid-{name}", "groups": ["g"]}}

    def review_access(self, spec: Mapping[str, Any]) -> Mapping[str, Any]:
        self.access_reviews.append(spec)
        attrs = spec["resourceAttributes"]
        return {"allowed": (spec["user"], attrs["resource"], attrs.get("name", "")) in self.grants}


async def _now(call: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
    return call()


def authorizer() -> tuple[Authorizer, Reviews, Clock]:
    reviews, clock = Reviews(), Clock()
    return Authorizer(reviews, _now, DecisionCache(clock=clock)), reviews, clock


def test_attributes_are_resource_attributes_in_the_group() -> None:
    user = User("system:serviceaccount:acme:reader", "u1", ("system:serviceaccounts",), (("k", ("v",)),))
    assert Attributes("get", "audit", "acme").spec(user) == {
        "user": "system:serviceaccount:acme:reader",
        "uid": "u1",
        "groups": ["system:serviceaccounts"],
        "extra": {"k": ["v"]},
        "resourceAttributes": {"group": "privatevault.io", "resource": "audit", "verb": "get", "name": "acme"},
    }
    assert "name" not in Attributes("list", "audit").spec(user)["resourceAttributes"]


def test_user_of() -> None:
    assert user_of({"authenticated": False}) is None
    assert user_of({"authenticated": True, "user": {"username": "bob", "extra": {"a": ["1"]}}}) == User(
        "bob", extra=(("a", ("1",)),)
    )


def test_no_token_and_bad_token_are_unauthenticated() -> None:
    auth, reviews, _ = authorizer()
    with pytest.raises(Unauthenticated):
        asyncio.run(auth.authenticate(None))
    assert reviews.token_reviews == 0
    with pytest.raises(Unauthenticated):
        asyncio.run(auth.authenticate("forged"))


def test_allowed_answers_kept_ten_seconds() -> None:
    auth, reviews, clock = authorizer()
    reviews.grants.add(("alice", "audit", "acme"))
    user = asyncio.run(auth.authenticate("token-alice"))
    assert asyncio.run(auth.allowed(user, Attributes("get", "audit", "acme")))
    reviews.grants.clear()  # revoked; the cached allow stands until it expires
    clock.now += ALLOW_TTL - 0.1
    assert asyncio.run(auth.allowed(user, Attributes("get", "audit", "acme")))
    assert len(reviews.access_reviews) == 1
    clock.now += 0.2
    assert not asyncio.run(auth.allowed(user, Attributes("get", "audit", "acme")))
    assert len(reviews.access_reviews) == 2


def test_denials_kept_two_seconds() -> None:
    auth, reviews, clock = authorizer()
    user = asyncio.run(auth.authenticate("token-bob"))
    assert not asyncio.run(auth.allowed(user, Attributes("get", "audit", "acme")))
    reviews.grants.add(("bob", "audit", "acme"))  # granted: takes effect once the denial expires
    clock.now += DENY_TTL - 0.1
    assert not asyncio.run(auth.allowed(user, Attributes("get", "audit", "acme")))
    clock.now += 0.2
    assert asyncio.run(auth.allowed(user, Attributes("get", "audit", "acme")))


def test_decisions_are_per_user_and_attributes() -> None:
    auth, reviews, _ = authorizer()
    reviews.grants.add(("alice", "audit", "acme"))
    alice = asyncio.run(auth.authenticate("token-alice"))
    bob = asyncio.run(auth.authenticate("token-bob"))
    assert asyncio.run(auth.allowed(alice, Attributes("get", "audit", "acme")))
    assert not asyncio.run(auth.allowed(alice, Attributes("get", "audit", "globex")))
    assert not asyncio.run(auth.allowed(alice, Attributes("get", "proofs", "acme")))
    assert not asyncio.run(auth.allowed(bob, Attributes("get", "audit", "acme")))


def test_tokens_cached_by_digest_not_kept_in_clear() -> None:
    auth, reviews, clock = authorizer()
    asyncio.run(auth.authenticate("token-alice"))
    asyncio.run(auth.authenticate("token-alice"))
    assert reviews.token_reviews == 1
    assert not any("token-alice" in repr(key) for key in auth.cache._entries)
    clock.now += ALLOW_TTL + 1
    asyncio.run(auth.authenticate("token-alice"))
    assert reviews.token_reviews == 2
    # A rejected token is asked about again after the short denial time.
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            asyncio.run(auth.authenticate("forged"))
    assert reviews.token_reviews == 3
    clock.now += DENY_TTL + 0.1
    with pytest.raises(Unauthenticated):
        asyncio.run(auth.authenticate("forged"))
    assert reviews.token_reviews == 4
