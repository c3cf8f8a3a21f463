"""Rotating a tenant's Transit KEK on the real OpenBao: a workload key version rewrapped under the new
KEK version still opens to the same data key, and once older KEK versions are retired the old
ciphertexts no longer open."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from privatevault.crypto import KeyContext, unwrap_data_key
from privatevault.crypto.workload_keys import new_version, private_key_context
from privatevault.errors import KmsError
from privatevault.kms.tenants import VaultTenantKeys
from privatevault.kms.vault import VaultAdmin, vault_client
from privatevault.testbench import Bench

pytestmark = pytest.mark.integration


def test_rotate_rewrap_retire(bench: Bench) -> None:
    tenant = f"rot-{uuid.uuid4().hex[:6]}"
    admin = VaultAdmin(vault_client(bench.openbao.address, token=bench.openbao.root_token))
    admin.ensure_transit_mount()
    keys = VaultTenantKeys(admin, setup=lambda: None)
    admin.ensure_tenant_key(tenant)
    kek = keys.wrapper(tenant)
    before = new_version(1, tenant=tenant, workload="web", kem_name="ML-KEM-768", kek=kek, now=datetime.now(UTC))
    context = private_key_context(tenant, "web", 1)
    data_key = unwrap_data_key(
        before.data_key,
        kek.unwrap(before.private_key_wrapped, context=context),
        context=KeyContext(tenant, "web", 1),
        kek=kek,
    )

    rotated = keys.rotate(tenant)
    assert rotated is not None and rotated.latest_version == 2
    after = before.rewrapped(tenant=tenant, workload="web", kek=kek)
    assert after.private_key_wrapped.startswith(b"vault:v2:") and after.digest() == before.digest()
    keys.limit(tenant, 2)
    facts = keys.facts(tenant)
    assert facts is not None and facts.min_decryption_version == 2

    with pytest.raises(KmsError):
        kek.unwrap(before.private_key_wrapped, context=context)
    private_key = kek.unwrap(after.private_key_wrapped, context=context)
    assert unwrap_data_key(after.data_key, private_key, context=KeyContext(tenant, "web", 1), kek=kek) == data_key
