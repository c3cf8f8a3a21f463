"""Vault tenant keys: an unchanged tenant's key, policy and role are checked once per recheck
interval (idle resyncs cost OpenBao nothing), and checked again when namespaces change, after a
rotation, or when the interval has passed; Kubernetes auth is configured on first use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from privatevault.kms.facts import KeyFacts
from privatevault.kms.tenants import VaultTenantKeys


class CountingAdmin:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if name == "healthy":
                return True
            if name == "ensure_transit_mount":
                return False
            return KeyFacts("tenant-acme", 1, 1, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", False)

        return call


def keys(now: list[float]) -> tuple[VaultTenantKeys, CountingAdmin, list[str]]:
    admin, setups = CountingAdmin(), []
    made = VaultTenantKeys(admin, setup=lambda: setups.append("setup"), recheck_seconds=600, clock=lambda: now[0])  # type: ignore[arg-type]
    return made, admin, setups


def ensure(made: VaultTenantKeys, namespaces: Sequence[str] = ("acme",)) -> None:
    made.ensure("acme", namespaces)


def test_an_unchanged_tenant_is_checked_once_per_interval() -> None:
    now = [0.0]
    made, admin, setups = keys(now)
    ensure(made)
    first = len(admin.calls)
    assert first == 5 and setups == ["setup"]  # health, mount, key, policy, role; auth configured once
    now[0] = 599.0
    ensure(made)
    assert len(admin.calls) == first
    now[0] = 601.0
    ensure(made)
    assert len(admin.calls) == 2 * first and setups == ["setup"]


def test_new_namespaces_or_a_rotation_check_again() -> None:
    now = [0.0]
    made, admin, _ = keys(now)
    ensure(made)
    ensure(made, ("acme", "acme-b"))
    assert admin.calls.count("ensure_tenant_role") == 2
    made.rotate("acme")
    ensure(made, ("acme", "acme-b"))
    assert admin.calls.count("ensure_tenant_role") == 3
