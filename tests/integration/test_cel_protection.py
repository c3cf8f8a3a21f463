"""The real API server accepts and refuses ProtectionPolicies exactly as the model validator does, with
the same messages: every mode against every KEM and every signature, profiles against modes, the
rotation and retention bounds; and it refuses an SELinux type or a selector exactly when Pod Security
would refuse the protected pods or no workload could carry the labels."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from privatevault.api.v1alpha1.protectionpolicy import (
    MODE_KEMS,
    MODE_SIGNATURES,
    PROFILE_MODE_MESSAGE,
    PROFILES,
    REFUSALS,
    RESTRICTED_SELINUX_TYPES,
    ROTATION_MESSAGE,
    SELECTOR_KEY_MESSAGE,
    SELINUX_TYPE_MESSAGE,
    Kem,
    Mode,
    ProfileName,
    ProtectionPolicySpec,
    Signature,
)
from tests import builders
from tests.support import Kubectl

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("crds")]


def name_of(*parts: str | None) -> str:
    """A unique, valid object name for one case."""
    words = ["ppm", *(part or "unset" for part in parts)]
    return "-".join(words).lower().replace("+", "-").replace(".", "-")


def expected_messages(spec: dict[str, Any]) -> list[str]:
    """What the model validator refuses ``spec`` with: the messages the API server must give too."""
    try:
        ProtectionPolicySpec.model_validate(spec)
    except ValidationError:
        pass
    else:
        return []
    unchecked = ProtectionPolicySpec.model_construct(
        profile=spec.get("profile"), mode=spec.get("mode"), kem=spec.get("kem"), signature=spec.get("signature")
    )
    mode = unchecked.effective_mode
    messages = [r.message for r in REFUSALS if r.refuses(mode, getattr(unchecked, r.spec_field))]
    if unchecked.profile and unchecked.mode and PROFILES[unchecked.profile].mode != unchecked.mode:
        messages.insert(0, PROFILE_MODE_MESSAGE)
    assert messages, f"the validator refused {spec} for a reason the CRD does not state"
    return messages


def check(kubectl: Kubectl, name: str, spec: dict[str, Any]) -> None:
    messages = expected_messages(spec)
    done = kubectl.apply(builders.protection_policy(name, spec=spec), check=False)
    if not messages:
        assert done.returncode == 0, f"{spec} was refused: {done.stderr}"
        assert kubectl.get("protectionpolicy", name) is not None
        return
    assert done.returncode != 0, f"{spec} was accepted"
    for message in messages:
        assert message in done.stderr, done.stderr
    assert kubectl.get("protectionpolicy", name) is None


# A signature and a KEM each mode accepts, to vary the other field against.
SIGNATURE_FOR = {mode: MODE_SIGNATURES[mode][0] for mode in get_args(Mode)}
KEM_FOR = {mode: MODE_KEMS[mode][0] for mode in get_args(Mode)}


@pytest.mark.parametrize(("mode", "kem"), list(itertools.product(get_args(Mode), get_args(Kem))))
def test_every_mode_against_every_kem(kubectl: Kubectl, mode: Mode, kem: Kem) -> None:
    check(kubectl, name_of("kem", mode, kem), {"mode": mode, "kem": kem, "signature": SIGNATURE_FOR[mode]})


@pytest.mark.parametrize(("mode", "signature"), list(itertools.product(get_args(Mode), get_args(Signature))))
def test_every_mode_against_every_signature(kubectl: Kubectl, mode: Mode, signature: Signature) -> None:
    check(kubectl, name_of("sig", mode, signature), {"mode": mode, "kem": KEM_FOR[mode], "signature": signature})


@pytest.mark.parametrize(("profile", "mode"), list(itertools.product(get_args(ProfileName), (None, *get_args(Mode)))))
def test_a_profile_fixes_the_mode(kubectl: Kubectl, profile: ProfileName, mode: Mode | None) -> None:
    spec: dict[str, Any] = {"profile": profile} | ({"mode": mode} if mode else {})
    check(kubectl, name_of("profile", profile, mode), spec)


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"kem": "X25519"},
        {"kem": "ML-KEM-768"},
        {"signature": "Ed25519+ML-DSA-65"},
        {"profile": "cnsa-2.0", "kem": "ML-KEM-768", "signature": "SLH-DSA-SHAKE-256s"},
        {"profile": "cnsa-2.0", "kem": "X-Wing"},
        {"profile": "hybrid-default", "signature": "ML-DSA-87"},
        {"profile": "classical-legacy", "signature": "ECDSA-P384", "symmetric": "ChaCha20-Poly1305"},
        {"profile": "classical-legacy", "kem": "ML-KEM-1024"},
    ],
    ids=repr,
)
def test_overrides_stay_within_the_mode(kubectl: Kubectl, spec: dict[str, Any]) -> None:
    check(kubectl, name_of("override", *(str(value) for value in spec.values())), spec)


def test_a_null_mode_is_unset(kubectl: Kubectl) -> None:
    check(kubectl, "ppm-null-mode", {"profile": "cnsa-2.0", "mode": None, "kem": "ML-KEM-768"})
    refused = kubectl.apply(
        builders.protection_policy("ppm-null-mode-bad", spec={"profile": "cnsa-2.0", "mode": None, "kem": "X-Wing"}),
        check=False,
    )
    assert refused.returncode != 0
    assert "mode PQC is pure post-quantum" in refused.stderr, refused.stderr


@pytest.mark.parametrize(
    ("interval", "accepted"),
    [("1h", True), ("3600s", True), ("8760h", True), ("59m", False), ("8760h1ms", False), ("0h", False)],
)
def test_rotation_interval_bounds(kubectl: Kubectl, interval: str, accepted: bool) -> None:
    name = name_of("rotation", interval)
    done = kubectl.apply(builders.protection_policy(name, rotation_interval=interval), check=False)
    if accepted:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode != 0
        assert ROTATION_MESSAGE in done.stderr, done.stderr


def test_an_overflowing_rotation_interval_is_refused(kubectl: Kubectl) -> None:
    done = kubectl.apply(
        builders.protection_policy("ppm-rotation-overflow", rotation_interval="9999999999999h"), check=False
    )
    assert done.returncode != 0
    assert ROTATION_MESSAGE in done.stderr, done.stderr


@pytest.mark.parametrize(("versions", "accepted"), [(0, False), (1, True), (100, True), (101, False)])
def test_retain_versions_bounds(kubectl: Kubectl, versions: int, accepted: bool) -> None:
    done = kubectl.apply(builders.protection_policy(f"ppm-retain-{versions}", retain_versions=versions), check=False)
    assert (done.returncode == 0) is accepted, done.stderr
    if not accepted:
        assert "spec.retainVersions" in done.stderr


def restricted_namespace(kubectl: Kubectl) -> str:
    """A namespace enforcing Pod Security restricted, as every tenant namespace does."""
    name = "ppm-restricted"
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
        }
    )
    return name


def restricted_pod(namespace: str, selinux_type: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "parity", "namespace": namespace},
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
                "seLinuxOptions": {"type": selinux_type, "level": "s0:c1,c2"},
            },
            "containers": [
                {
                    "name": "app",
                    "image": "app",
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
        },
    }


@pytest.mark.parametrize(
    "selinux_type", ["container_t", "container_init_t", "container_kvm_t", "container_engine_t", "spc_t", "my_app_t"]
)
def test_selinux_type_is_refused_exactly_when_pod_security_would_refuse_its_pods(
    kubectl: Kubectl, selinux_type: str
) -> None:
    namespace = restricted_namespace(kubectl)
    pod = kubectl.run(
        "apply", "--dry-run=server", "-f", "-", stdin=json.dumps(restricted_pod(namespace, selinux_type)), check=False
    )
    runs = selinux_type in RESTRICTED_SELINUX_TYPES
    assert (pod.returncode == 0) is runs, pod.stderr
    spec = {"selinuxType": selinux_type}
    done = kubectl.apply(
        builders.protection_policy(name_of("selinux", selinux_type.replace("_", "-")), spec=spec), check=False
    )
    if runs:
        assert done.returncode == 0, done.stderr
        ProtectionPolicySpec.model_validate(spec)
    else:
        assert done.returncode != 0
        assert SELINUX_TYPE_MESSAGE in done.stderr, done.stderr
        with pytest.raises(ValidationError, match=re.escape(SELINUX_TYPE_MESSAGE)):
            ProtectionPolicySpec.model_validate(spec)


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ({"app": "web", "example.com/tier": "front", "privatevault.io/protect": "true", "empty": ""}, None),
        ({"app": "web ui"}, "spec.workloadSelector.app: Invalid value"),
        ({"app": "x" * 64}, "spec.workloadSelector.app: Too long"),
        ({"not a key": "web"}, SELECTOR_KEY_MESSAGE),
        ({"a/b/c": "web"}, SELECTOR_KEY_MESSAGE),
        ({"x" * 64: "web"}, SELECTOR_KEY_MESSAGE),
    ],
    ids=lambda v: json.dumps(v)[:40] if isinstance(v, dict) else None,
)
def test_workload_selector_holds_labels_a_workload_can_have(
    kubectl: Kubectl, selector: dict[str, str], message: str | None
) -> None:
    labelled = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "parity", "namespace": "default", "labels": selector},
    }
    could_be_labelled = kubectl.run("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(labelled), check=False)
    assert (could_be_labelled.returncode == 0) is (message is None), could_be_labelled.stderr
    name = name_of("selector", hashlib.sha256(json.dumps(selector).encode()).hexdigest()[:8])
    spec = {"workloadSelector": selector}
    done = kubectl.apply(builders.protection_policy(name, spec=spec), check=False)
    if message is None:
        assert done.returncode == 0, done.stderr
        ProtectionPolicySpec.model_validate(spec)
    else:
        assert done.returncode != 0
        assert message in done.stderr, done.stderr
        with pytest.raises(ValidationError):
            ProtectionPolicySpec.model_validate(spec)
