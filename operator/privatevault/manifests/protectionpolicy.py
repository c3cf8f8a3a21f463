"""What protecting a workload writes: its key Secret, and its pod template's SELinux label and mount.

The pod template is changed by server-side apply under the operator's field manager, so the
operator owns exactly the fields it added; applying an empty intent gives them back and the
workload is as it was before.
"""

from __future__ import annotations

import base64
from typing import Any

from privatevault.manifests import labels

KEY_MOUNT = "/var/run/privatevault/keys"
VOLUME = "privatevault-keys"
POLICY_ANNOTATION = "privatevault.io/protection-policy"
DIGEST_ANNOTATION = "privatevault.io/key-digest"
VERSION_ANNOTATION = "privatevault.io/key-version"
ROTATE_ANNOTATION = "privatevault.io/rotate"
ANSWERED_ANNOTATION = "privatevault.io/rotation-request"


def key_secret_name(workload: dict[str, Any]) -> str:
    return f"{workload['metadata']['name']}-privatevault-keys"


def _owner(workload: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": workload["apiVersion"],
        "kind": workload["kind"],
        "name": workload["metadata"]["name"],
        "uid": workload["metadata"]["uid"],
        "controller": False,
        "blockOwnerDeletion": False,
    }


def key_secret(
    workload: dict[str, Any], *, tenant: str, policy: str, files: dict[str, str], answered: str
) -> dict[str, Any]:
    """The workload's key Secret, owned by the workload: wrapped material only."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": key_secret_name(workload),
            "namespace": workload["metadata"]["namespace"],
            "labels": {labels.TENANT: tenant, labels.MANAGED_BY: labels.MANAGER},
            "annotations": {POLICY_ANNOTATION: policy, ANSWERED_ANNOTATION: answered},
            "ownerReferences": [_owner(workload)],
        },
        "data": {name: base64.b64encode(text.encode()).decode() for name, text in sorted(files.items())},
    }


def rewrapped(secret: dict[str, Any], files: dict[str, str]) -> dict[str, Any]:
    """A key Secret with new files and everything else as it was (all of it is the operator's intent)."""
    meta = secret["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": secret.get("type", "Opaque"),
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": meta.get("labels") or {},
            "annotations": meta.get("annotations") or {},
            "ownerReferences": meta.get("ownerReferences") or [],
        },
        "data": {name: base64.b64encode(text.encode()).decode() for name, text in sorted(files.items())},
    }


def protected(
    workload: dict[str, Any], *, policy: str, mcs_level: str, selinux_type: str, version: int, digest: str
) -> dict[str, Any]:
    """The operator's intent for the workload: label the pods, mount the keys, name the key version."""
    containers = workload["spec"]["template"]["spec"].get("containers") or []
    return {
        "apiVersion": workload["apiVersion"],
        "kind": workload["kind"],
        "metadata": {"name": workload["metadata"]["name"], "namespace": workload["metadata"]["namespace"]},
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {
                        POLICY_ANNOTATION: policy,
                        VERSION_ANNOTATION: str(version),
                        DIGEST_ANNOTATION: digest,
                    },
                },
                "spec": {
                    "securityContext": {"seLinuxOptions": {"level": mcs_level, "type": selinux_type}},
                    "volumes": [
                        {"name": VOLUME, "secret": {"secretName": key_secret_name(workload), "defaultMode": 0o440}}
                    ],
                    "containers": [
                        {
                            "name": c["name"],
                            "volumeMounts": [{"name": VOLUME, "mountPath": KEY_MOUNT, "readOnly": True}],
                        }
                        for c in containers
                    ],
                },
            }
        },
    }


def released(workload: dict[str, Any]) -> dict[str, Any]:
    """An empty intent: applying it removes every field the operator added."""
    return {
        "apiVersion": workload["apiVersion"],
        "kind": workload["kind"],
        "metadata": {"name": workload["metadata"]["name"], "namespace": workload["metadata"]["namespace"]},
    }


def protected_by(workload: dict[str, Any]) -> str | None:
    annotations = workload["spec"]["template"].get("metadata", {}).get("annotations") or {}
    policy = annotations.get(POLICY_ANNOTATION)
    return str(policy) if policy else None
