"""Workload protection decisions: selection, when a rotation is due, the pod-template
intent and its release, and key versions that open only with the tenant's KEK and the right context."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from privatevault.api.v1alpha1 import ProtectionPolicy, Tenant
from privatevault.crypto import KeyContext, LocalAesGcmWrapper, UnwrapError, unwrap_data_key
from privatevault.crypto.workload_keys import KeyVersion, new_version, private_key_context, secret_files, versions_of
from privatevault.errors import KmsError
from privatevault.manifests import protectionpolicy as manifests
from privatevault.reconcile import protectionpolicy as protection
from privatevault.reconcile.ports import ProtectionPolicyPorts
from tests import builders
from tests.unit.fakes import FakeCluster, FakeKeys, FakeLedger

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        ({}, {}, True),
        ({"protect": "yes"}, {"protect": "yes", "app": "x"}, True),
        ({"protect": "yes"}, {}, False),
        ({"protect": "yes"}, {"protect": "no"}, False),
    ],
)
def test_selects(selector: dict[str, str], labels: dict[str, str], selected: bool) -> None:
    assert protection.selects(selector, {"metadata": {"labels": labels}}) is selected


def policy(**options: Any) -> ProtectionPolicy:
    """The policy ``p`` as the API server hands it over; hybrid-default unless told otherwise."""
    options.setdefault("profile", "hybrid-default")
    return ProtectionPolicy.model_validate(builders.protection_policy("p", uid="u", generation=1, **options))


def version(created: datetime, number: int = 1) -> KeyVersion:
    return new_version(
        number, tenant="acme", workload="web", kem_name="X-Wing", kek=LocalAesGcmWrapper.generate(), now=created
    )


def test_rotation_due() -> None:
    p = policy(rotation_interval="24h")
    fresh = [version(NOW - timedelta(hours=1))]
    old = [version(NOW - timedelta(hours=25))]

    def due(versions: list[KeyVersion], requested: str = "", answered: str = "", kem: str = "X-Wing") -> str | None:
        return protection.rotation_due(p, versions, kem_name=kem, requested=requested, answered=answered, now=NOW)

    assert due([]) == "first key"
    assert due(fresh) is None
    assert due(old) == "rotation interval 24h elapsed"
    assert due(fresh, "r1") == "rotation requested (r1)"
    assert due(fresh, "r1", "r1") is None
    assert due(fresh, kem="ML-KEM-1024") == "the policy's KEM changed from X-Wing to ML-KEM-1024"


def test_weakening_is_recorded_once_per_generation() -> None:
    ledger = FakeLedger()
    ports = ProtectionPolicyPorts(cluster=FakeCluster(), ledger=ledger, keys=FakeKeys())
    weaker = policy(profile="classical-legacy")
    assert protection.weakening(weaker, None, ports=ports, actor="t") is None
    verdict = protection.weakening(weaker, {"profile": "hybrid-default"}, ports=ports, actor="t")
    assert verdict is not None and verdict[0] is True
    protection.weakening(weaker, {"profile": "hybrid-default"}, ports=ports, actor="t")
    assert [e.action for e in ledger.events] == ["weaken-protection-policy"]
    stronger = policy(profile="cnsa-2.0")
    verdict = protection.weakening(stronger, {"profile": "classical-legacy"}, ports=ports, actor="t")
    assert verdict is not None and verdict[0] is False and len(ledger.events) == 1


def test_key_versions_open_only_with_the_kek_and_their_context() -> None:
    kek = LocalAesGcmWrapper.generate()
    stored = new_version(3, tenant="acme", workload="web", kem_name="X-Wing", kek=kek, now=NOW)
    files = secret_files([stored])
    assert files["current"] == "3" and "v3.json" in files
    secret = {"data": {name: base64.b64encode(text.encode()).decode() for name, text in files.items()}}
    [back] = versions_of(secret)
    assert back == stored and back.digest() == stored.digest()
    private_key = kek.unwrap(back.private_key_wrapped, context=private_key_context("acme", "web", 3))
    data_key = unwrap_data_key(back.data_key, private_key, context=KeyContext("acme", "web", 3), kek=kek)
    assert len(data_key) == 32
    assert data_key.hex() not in json.dumps(files) and private_key.hex() not in json.dumps(files)
    with pytest.raises(UnwrapError):
        unwrap_data_key(back.data_key, private_key, context=KeyContext("globex", "web", 3), kek=kek)
    with pytest.raises(UnwrapError):
        unwrap_data_key(
            back.data_key, private_key, context=KeyContext("acme", "web", 3), kek=LocalAesGcmWrapper.generate()
        )


def test_intent_labels_pods_and_mounts_keys_and_release_gives_it_back() -> None:
    workload = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "acme", "uid": "w-uid"},
        "spec": {"template": {"spec": {"containers": [{"name": "app"}, {"name": "sidecar"}]}}},
    }
    intent = manifests.protected(
        workload, policy="p", mcs_level="s0:c1,c2", selinux_type="container_t", version=2, digest="sha256:ab"
    )
    template = intent["spec"]["template"]
    assert template["spec"]["securityContext"]["seLinuxOptions"] == {"level": "s0:c1,c2", "type": "container_t"}
    assert [c["name"] for c in template["spec"]["containers"]] == ["app", "sidecar"]
    assert all(c["volumeMounts"][0]["readOnly"] for c in template["spec"]["containers"])
    assert template["metadata"]["annotations"][manifests.DIGEST_ANNOTATION] == "sha256:ab"
    assert manifests.released(workload) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "acme"},
    }
    secret = manifests.key_secret(workload, tenant="acme", policy="p", files={"current": "1"}, answered="")
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "w-uid"


def test_kek_rotation_rewraps_every_key_secret_then_retires_old_versions() -> None:
    keys, cluster, ledger = FakeKeys(), FakeCluster(), FakeLedger()
    ports = ProtectionPolicyPorts(cluster=cluster, ledger=ledger, keys=keys)
    p = policy(rotation_interval="24h", retain_versions=1)
    tenant = Tenant.model_validate(
        builders.tenant(
            "acme",
            owners=[builders.user("a")],
            kms="vault",
            uid="t-uid",
            status={"namespaces": ["acme"], "mcsLevel": "s0:c1,c2"},
        )
    )
    workload = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "acme", "uid": "w-uid"},
    }
    kek = keys.wrapper("acme")
    stored = new_version(1, tenant="acme", workload="web", kem_name="X-Wing", kek=kek, now=NOW)
    cluster.put(manifests.key_secret(workload, tenant="acme", policy="p", files=secret_files([stored]), answered=""))
    private_key = kek.unwrap(stored.private_key_wrapped, context=private_key_context("acme", "web", 1))
    data_key = unwrap_data_key(stored.data_key, private_key, context=KeyContext("acme", "web", 1), kek=kek)

    protection.rotate_kek_if_due(tenant, protection.run_for(p, ports, "t"), NOW)

    assert [e.action for e in ledger.events] == ["rotate-kek", "rewrap-workload-keys"]
    assert (len(kek.keys), kek.minimum) == (2, 2)  # old KEK version retired after the rewrap
    [moved] = versions_of(cluster.objects[("Secret", "acme", "web-privatevault-keys")])
    assert moved.private_key_wrapped[0] == 2 and moved.digest() == stored.digest()  # no rollout needed
    with pytest.raises(KmsError):
        kek.unwrap(stored.private_key_wrapped, context=private_key_context("acme", "web", 1))
    opened = kek.unwrap(moved.private_key_wrapped, context=private_key_context("acme", "web", 1))
    assert unwrap_data_key(moved.data_key, opened, context=KeyContext("acme", "web", 1), kek=kek) == data_key
    protection.rotate_kek_if_due(tenant, protection.run_for(p, ports, "t"), NOW)  # not due again
    assert len(kek.keys) == 2
