"""Post-quantum protection of a workload end to end (real control plane, PostgreSQL, OpenBao): a
tenant with the hybrid-default policy and a labelled Deployment → its pods carry the tenant's MCS
level, its key Secret holds only wrapped material, the workload's own token unwraps its data key
and another tenant's cannot; a rotation rolls the pods and keeps the old key readable; removing the
label gives the Deployment back as it was."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from privatevault.errors import KmsError
from privatevault.sdk import unwrap_data_key
from privatevault.testbench import Bench
from tests import builders
from tests.support import Kubectl, Operator, condition, eventually, wait_for_condition

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]


def key_files(kubectl: Kubectl, namespace: str, workload: str, into: Path) -> dict[str, Any]:
    """The Secret's files as the pod's read-only mount would show them."""
    secret = kubectl.get("secret", f"{workload}-privatevault-keys", namespace)
    assert secret is not None
    into.mkdir(parents=True, exist_ok=True)
    for name, value in secret["data"].items():
        (into / name).write_bytes(base64.b64decode(value))
    return secret


def template_annotations(kubectl: Kubectl, namespace: str, name: str) -> dict[str, str]:
    obj = kubectl.get("deployment", name, namespace) or {}
    return dict(obj.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {})


def test_hybrid_protection_end_to_end(kubectl: Kubectl, bench: Bench, vault_operator: Operator, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:6]
    tenant, other, policy = f"pa-{suffix}", f"pb-{suffix}", f"hybrid-{suffix}"
    kubectl.apply(
        builders.protection_policy(
            policy,
            profile="hybrid-default",
            workload_selector={"protect": "yes"},
            retain_versions=3,
            selinux_type="container_t",
        )
    )
    for name in (tenant, other):
        kubectl.apply(builders.tenant(name, owners=[builders.user("ops")], kms="vault", protection_policy_ref=policy))

    level = wait_for_condition(kubectl, "tenant", tenant, "Ready", timeout=90)["status"]["mcsLevel"]
    wait_for_condition(kubectl, "tenant", other, "Ready", timeout=90)
    for name, namespace in (("payments", tenant), ("intruder", other)):
        kubectl.run("create", "serviceaccount", name, "-n", namespace)
    kubectl.apply(
        builders.deployment(
            "payments",
            tenant,
            labels={"app": "payments", "protect": "yes"},
            service_account="payments",
            run_as_user=10001,
        )
    )

    # Pods come out of the protected template with the tenant's level (kube-controller-manager
    # makes the ReplicaSet and the Pod; no scheduler runs, so the Pod stays Pending).
    def labelled_pod() -> dict[str, Any] | None:
        pods = json.loads(kubectl.run("get", "pods", "-n", tenant, "-l", "app=payments", "-o", "json").stdout)
        for pod in pods["items"]:
            options = (pod["spec"].get("securityContext") or {}).get("seLinuxOptions") or {}
            if (
                options.get("level") == level
                and pod["metadata"]["annotations"].get("privatevault.io/key-version") == "1"
            ):
                return dict(pod)
        return None

    pod = eventually(labelled_pod, timeout=90, what="a pod labelled with the tenant's MCS level")
    assert pod["spec"]["securityContext"]["seLinuxOptions"]["type"] == "container_t"
    mounts = pod["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "privatevault-keys", "mountPath": "/var/run/privatevault/keys", "readOnly": True} in mounts

    # The Secret holds wrapped material only.
    keys_v1 = tmp_path / "v1"
    secret = key_files(kubectl, tenant, "payments", keys_v1)
    assert sorted(secret["data"]) == ["current", "v1.json"]
    stored = json.loads((keys_v1 / "v1.json").read_text())
    assert sorted(stored) == ["created", "dataKey", "kem", "privateKeyWrapped", "publicKey", "version"]
    assert stored["kem"] == "X-Wing" and stored["dataKey"]["kekWrapped"] is True
    assert base64.b64decode(stored["privateKeyWrapped"]).startswith(b"vault:v1:")

    # The workload's own token opens its data key; another tenant's token cannot.
    token = tmp_path / "token"
    token.write_text(kubectl.run("create", "token", "payments", "-n", tenant, "--duration=10m").stdout)
    common = {"vault_addr": bench.openbao.address, "tenant": tenant, "workload": "payments"}
    data_key_v1 = unwrap_data_key(**common, key_dir=keys_v1, token_file=token)
    assert len(data_key_v1) == 32
    intruder = tmp_path / "intruder-token"
    intruder.write_text(kubectl.run("create", "token", "intruder", "-n", other, "--duration=10m").stdout)
    with pytest.raises(KmsError):
        unwrap_data_key(**common, key_dir=keys_v1, token_file=intruder)

    # Rotation on request: a new version, the pods rolled, the old version still readable.
    kubectl.run("annotate", "deployment", "payments", "-n", tenant, "privatevault.io/rotate=r1")
    eventually(
        lambda: template_annotations(kubectl, tenant, "payments").get("privatevault.io/key-version") == "2",
        timeout=60,
        what="key version 2 in the pod template",
    )
    keys_v2 = tmp_path / "v2"
    key_files(kubectl, tenant, "payments", keys_v2)
    assert (keys_v2 / "current").read_text() == "2"
    assert unwrap_data_key(**common, key_dir=keys_v2, token_file=token) != data_key_v1
    assert unwrap_data_key(**common, key_dir=keys_v2, token_file=token, version=1) == data_key_v1
    replicasets = json.loads(kubectl.run("get", "rs", "-n", tenant, "-l", "app=payments", "-o", "json").stdout)
    versions = {
        (rs["spec"]["template"]["metadata"].get("annotations") or {}).get("privatevault.io/key-version")
        for rs in replicasets["items"]
    }
    assert {"1", "2"} <= versions  # the rotation rolled the pods: a ReplicaSet per key version

    # Unlabelled: the Deployment is as it was, and its key Secret is gone.
    kubectl.run("label", "deployment", "payments", "-n", tenant, "protect-")
    eventually(
        lambda: "privatevault.io/protection-policy" not in template_annotations(kubectl, tenant, "payments"),
        timeout=60,
        what="the workload released",
    )
    restored = kubectl.get("deployment", "payments", tenant)
    assert restored is not None
    assert "securityContext" not in restored["spec"]["template"]["spec"] or not restored["spec"]["template"]["spec"][
        "securityContext"
    ].get("seLinuxOptions")
    assert "volumes" not in restored["spec"]["template"]["spec"]
    eventually(lambda: kubectl.get("secret", "payments-privatevault-keys", tenant) is None, what="key Secret removed")

    status = kubectl.get("protectionpolicy", policy)
    assert status is not None and status["status"]["quantumSafe"] is True

    # Moving to the classical profile is a weakening: marked in status (the quorum gate comes later).
    kubectl.run("patch", "protectionpolicy", policy, "--type=merge", "-p", '{"spec":{"profile":"classical-legacy"}}')

    weakened = condition(wait_for_condition(kubectl, "protectionpolicy", policy, "Weakened"), "Weakened")
    assert weakened is not None and "quantum" in weakened["message"]
    kubectl.run("delete", "tenant", tenant, other, "--wait=true")


def test_selector_matching_nothing_is_ready_with_no_workloads(kubectl: Kubectl, vault_operator: Operator) -> None:
    name = f"nothing-{uuid.uuid4().hex[:6]}"
    kubectl.apply(builders.protection_policy(name, profile="cnsa-2.0", workload_selector={"no-such-label": "x"}))

    status = wait_for_condition(kubectl, "protectionpolicy", name, "Ready")["status"]
    assert (status["workloads"], status["quantumSafe"], status["securityLevel"]) == (0, True, 5)
