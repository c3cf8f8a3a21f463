"""ProtectionPolicy semantics: every mode/profile/KEM/signature combination is accepted or refused
exactly as documented, the CRD's CEL rules carry the validator's own messages, profiles resolve to
their algorithms, levels and quantum safety, and weakening is detected both ways."""

from __future__ import annotations

import itertools
import re
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from privatevault.api import crdgen
from privatevault.api.v1alpha1 import ProtectionPolicy
from privatevault.api.v1alpha1.protectionpolicy import (
    MODE_KEMS,
    MODE_SIGNATURES,
    PROFILE_MODE_MESSAGE,
    PROFILES,
    REFUSALS,
    ROTATION_MESSAGE,
    Kem,
    Mode,
    ProfileName,
    ProtectionPolicySpec,
    Signature,
    Symmetric,
    duration_seconds,
)
from privatevault.crypto import KEMS, SIGNERS
from privatevault.reconcile.strength import (
    CLASSICAL_BITS,
    QUANTUM_LEVEL,
    Algorithms,
    classical_strength,
    effective,
    is_weakening,
    quantum_safe,
    security_level,
)

MODES: tuple[Mode, ...] = get_args(Mode)
PROFILE_NAMES: tuple[ProfileName, ...] = get_args(ProfileName)
KEM_NAMES: tuple[Kem, ...] = get_args(Kem)
SIGNATURE_NAMES: tuple[Signature, ...] = get_args(Signature)

# The documented table (module docstring of the model), written out again on purpose: the model's
# own constants are what is under test.
DOCUMENTED: dict[str, tuple[set[str], set[str]]] = {
    "Classical": ({"X25519"}, {"Ed25519", "ECDSA-P384"}),
    "PQC": (
        {"ML-KEM-768", "ML-KEM-1024"},
        {"ML-DSA-44", "ML-DSA-65", "ML-DSA-87", "SLH-DSA-SHA2-128s", "SLH-DSA-SHAKE-256s"},
    ),
    "Hybrid": ({"X-Wing"}, {"Ed25519+ML-DSA-65", "ECDSA-P384+ML-DSA-87"}),
}
DOCUMENTED_PROFILE_MODE = {"hybrid-default": "Hybrid", "cnsa-2.0": "PQC", "classical-legacy": "Classical"}


def documented_compatible(profile: str | None, mode: str | None, kem: str | None, signature: str | None) -> bool:
    if profile is not None and mode is not None and DOCUMENTED_PROFILE_MODE[profile] != mode:
        return False
    in_force = mode or (DOCUMENTED_PROFILE_MODE[profile] if profile else "Hybrid")
    kems, signatures = DOCUMENTED[in_force]
    return (kem is None or kem in kems) and (signature is None or signature in signatures)


def spec(**fields: Any) -> ProtectionPolicySpec:
    return ProtectionPolicySpec.model_validate({key: value for key, value in fields.items() if value is not None})


# -- the mode table -----------------------------------------------------------------------------


def test_every_algorithm_belongs_to_exactly_one_mode() -> None:
    for table, names in ((MODE_KEMS, KEM_NAMES), (MODE_SIGNATURES, SIGNATURE_NAMES)):
        listed = [name for mode in MODES for name in table[mode]]
        assert sorted(listed) == sorted(names)


def test_mode_table_is_the_documented_one() -> None:
    for mode in MODES:
        assert (set(MODE_KEMS[mode]), set(MODE_SIGNATURES[mode])) == DOCUMENTED[mode]


def test_every_combination_is_accepted_or_refused_as_documented() -> None:
    """The full product, unset fields included: the refused set is exactly the documented one."""
    refused, expected = set(), set()
    for combination in itertools.product(
        (None, *PROFILE_NAMES), (None, *MODES), (None, *KEM_NAMES), (None, *SIGNATURE_NAMES)
    ):
        profile, mode, kem, signature = combination
        if not documented_compatible(*combination):
            expected.add(combination)
        try:
            spec(profile=profile, mode=mode, kem=kem, signature=signature)
        except ValidationError:
            refused.add(combination)
    assert len(expected) > 0
    assert refused == expected


@pytest.mark.parametrize(("mode", "kem", "signature"), list(itertools.product(MODES, KEM_NAMES, SIGNATURE_NAMES)))
def test_a_refusal_names_each_misplaced_algorithm_once(mode: Mode, kem: Kem, signature: Signature) -> None:
    messages = [r.message for r in REFUSALS if r.refuses(mode, kem) or r.refuses(mode, signature)]
    misplaced = (kem not in DOCUMENTED[mode][0]) + (signature not in DOCUMENTED[mode][1])
    assert len(messages) == misplaced
    if not messages:
        spec(mode=mode, kem=kem, signature=signature)
        return
    with pytest.raises(ValidationError) as refused:
        spec(mode=mode, kem=kem, signature=signature)
    for message in messages:
        assert message in str(refused.value)
        assert f"mode {mode}" in message or "mode PQC or Hybrid" in message


@pytest.mark.parametrize(("profile", "mode"), list(itertools.product(PROFILE_NAMES, MODES)))
def test_a_profile_fixes_the_mode(profile: ProfileName, mode: Mode) -> None:
    if DOCUMENTED_PROFILE_MODE[profile] == mode:
        assert spec(profile=profile, mode=mode).effective_mode == mode
        return
    with pytest.raises(ValidationError, match=r"a profile fixes the mode"):
        spec(profile=profile, mode=mode)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"profile": "cnsa-2.0", "kem": "X-Wing"}, "mode PQC is pure post-quantum"),
        ({"profile": "cnsa-2.0", "signature": "Ed25519+ML-DSA-65"}, "composite signatures"),
        ({"profile": "hybrid-default", "kem": "ML-KEM-1024"}, "mode Hybrid needs a hybrid KEM (X-Wing)"),
        ({"profile": "classical-legacy", "signature": "ML-DSA-65"}, "mode Classical takes only a classical"),
        ({"kem": "X25519"}, "X25519 alone is classical"),
        ({"mode": "PQC", "signature": "ECDSA-P384"}, "Ed25519 and ECDSA-P384 alone are classical"),
    ],
)
def test_overrides_stay_within_the_mode(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        spec(**fields)


def test_the_crd_refuses_with_the_validators_messages() -> None:
    rules = crdgen.schema_of(ProtectionPolicy)["properties"]["spec"]["x-kubernetes-validations"]
    assert [rule["message"] for rule in rules] == [PROFILE_MODE_MESSAGE, *(r.message for r in REFUSALS)]
    for rule, refusal in zip(rules[1:], REFUSALS, strict=True):
        assert rule["fieldPath"] == f".{refusal.spec_field}"
        for name in refusal.algorithms:
            assert f"'{name}'" in rule["rule"]
    rotation = crdgen.schema_of(ProtectionPolicy)["properties"]["spec"]["properties"]["rotationInterval"]
    assert [rule["message"] for rule in rotation["x-kubernetes-validations"]] == [ROTATION_MESSAGE]


# -- rotation and retention ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "accepted"),
    [
        ("1h", True),
        ("3600s", True),
        ("60m", True),
        ("0.5h30m", True),
        ("720h", True),
        ("8760h", True),
        ("59m", False),
        ("59m59.999s", False),
        ("3599999ms", False),
        ("0h", False),
        ("8760h1ms", False),
        ("8761h", False),
        ("9999999999999h", False),
        ("30d", False),
        ("1 h", False),
    ],
)
def test_rotation_interval_is_sane(interval: str, accepted: bool) -> None:
    if accepted:
        assert spec(rotationInterval=interval).rotation_interval == interval
    else:
        with pytest.raises(ValidationError):
            spec(rotationInterval=interval)


def test_rotation_refusal_explains_itself() -> None:
    with pytest.raises(ValidationError, match=r"rotationInterval must be between 1h and 8760h"):
        spec(rotationInterval="30m")


@pytest.mark.parametrize(("text", "seconds"), [("1h30m", 5400), ("1.5h", 5400), ("90s", 90), ("250ms", 0.25)])
def test_durations_read_like_cel(text: str, seconds: float) -> None:
    assert float(duration_seconds(text)) == seconds


@pytest.mark.parametrize(("versions", "accepted"), [(0, False), (1, True), (100, True), (101, False)])
def test_retain_versions_bounds(versions: int, accepted: bool) -> None:
    if accepted:
        assert spec(retainVersions=versions).retain_versions == versions
    else:
        with pytest.raises(ValidationError):
            spec(retainVersions=versions)


# -- effective algorithms, levels, quantum safety --------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "algorithms", "level", "safe", "bits"),
    [
        (
            {"profile": "hybrid-default"},
            Algorithms("X-Wing", "Ed25519+ML-DSA-65", "AES-256-GCM"),
            3,
            True,
            192,
        ),
        ({"profile": "cnsa-2.0"}, Algorithms("ML-KEM-1024", "ML-DSA-87", "AES-256-GCM"), 5, True, 256),
        ({"profile": "classical-legacy"}, Algorithms("X25519", "Ed25519", "AES-256-GCM"), 0, False, 128),
        ({}, Algorithms("X-Wing", "Ed25519+ML-DSA-65", "AES-256-GCM"), 3, True, 192),
        ({"mode": "Hybrid"}, Algorithms("X-Wing", "Ed25519+ML-DSA-65", "AES-256-GCM"), 3, True, 192),
        ({"mode": "PQC"}, Algorithms("ML-KEM-1024", "ML-DSA-87", "AES-256-GCM"), 5, True, 256),
        ({"mode": "Classical"}, Algorithms("X25519", "Ed25519", "AES-256-GCM"), 0, False, 128),
        (
            {"profile": "cnsa-2.0", "kem": "ML-KEM-768"},
            Algorithms("ML-KEM-768", "ML-DSA-87", "AES-256-GCM"),
            3,
            True,
            192,
        ),
        (
            {"mode": "PQC", "signature": "SLH-DSA-SHA2-128s"},
            Algorithms("ML-KEM-1024", "SLH-DSA-SHA2-128s", "AES-256-GCM"),
            1,
            True,
            128,
        ),
        (
            {"mode": "PQC", "kem": "ML-KEM-768", "signature": "ML-DSA-44"},
            Algorithms("ML-KEM-768", "ML-DSA-44", "AES-256-GCM"),
            2,
            True,
            128,
        ),
        (
            {"profile": "hybrid-default", "signature": "ECDSA-P384+ML-DSA-87", "symmetric": "ChaCha20-Poly1305"},
            Algorithms("X-Wing", "ECDSA-P384+ML-DSA-87", "ChaCha20-Poly1305"),
            3,
            True,
            192,
        ),
        (
            {"profile": "classical-legacy", "signature": "ECDSA-P384"},
            Algorithms("X25519", "ECDSA-P384", "AES-256-GCM"),
            0,
            False,
            128,
        ),
    ],
    ids=repr,
)
def test_effective_algorithms_and_strength(
    fields: dict[str, str], algorithms: Algorithms, level: int, safe: bool, bits: int
) -> None:
    resolved = effective(spec(**fields))
    assert resolved == algorithms
    assert security_level(resolved) == level
    assert quantum_safe(resolved) is safe
    assert classical_strength(resolved) == bits


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_profiles_name_algorithms_of_their_own_mode(name: ProfileName) -> None:
    profile = PROFILES[name]
    assert profile.mode == DOCUMENTED_PROFILE_MODE[name]
    assert profile.kem in DOCUMENTED[profile.mode][0]
    assert profile.signature in DOCUMENTED[profile.mode][1]
    assert effective(spec(profile=name)) == Algorithms(profile.kem, profile.signature, profile.symmetric)


def test_every_algorithm_has_a_strength_and_an_implementation() -> None:
    names = {*KEM_NAMES, *SIGNATURE_NAMES, *get_args(Symmetric)}
    assert set(QUANTUM_LEVEL) == names == set(CLASSICAL_BITS)
    assert set(KEMS) == set(KEM_NAMES)
    assert set(SIGNERS) == set(SIGNATURE_NAMES)


@pytest.mark.parametrize("mode", MODES)
def test_quantum_safety_follows_the_mode(mode: Mode) -> None:
    for kem, signature in itertools.product(MODE_KEMS[mode], MODE_SIGNATURES[mode]):
        algorithms = effective(spec(mode=mode, kem=kem, signature=signature))
        assert quantum_safe(algorithms) is (mode != "Classical")
        assert (security_level(algorithms) >= 1) is (mode != "Classical")


# -- weakening --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "weakening", "reason"),
    [
        ({"profile": "cnsa-2.0"}, {"profile": "hybrid-default"}, True, "lowers the security level from 5 to 3"),
        ({"profile": "hybrid-default"}, {"profile": "cnsa-2.0"}, False, "not weaker"),
        ({"profile": "hybrid-default"}, {"profile": "classical-legacy"}, True, "leaves quantum safety"),
        ({"profile": "classical-legacy"}, {"profile": "hybrid-default"}, False, "not weaker"),
        ({"mode": "PQC"}, {"mode": "Classical"}, True, "the KEM ML-KEM-1024 -> X25519 lowers its category from 5"),
        (
            {"mode": "PQC", "kem": "ML-KEM-1024", "signature": "ML-DSA-65"},
            {"mode": "PQC", "kem": "ML-KEM-768", "signature": "ML-DSA-65"},
            True,
            "the KEM ML-KEM-1024 -> ML-KEM-768 lowers its category from 5 to 3",
        ),
        (
            {"mode": "PQC", "kem": "ML-KEM-768", "signature": "ML-DSA-65"},
            {"mode": "PQC", "kem": "ML-KEM-1024", "signature": "ML-DSA-65"},
            False,
            "not weaker",
        ),
        (
            {"mode": "PQC", "signature": "ML-DSA-87"},
            {"mode": "PQC", "signature": "SLH-DSA-SHAKE-256s"},
            False,
            "not weaker",
        ),
        (
            {"mode": "PQC", "signature": "ML-DSA-65"},
            {"mode": "PQC", "signature": "SLH-DSA-SHA2-128s"},
            True,
            "the signature ML-DSA-65 -> SLH-DSA-SHA2-128s lowers its category from 3 to 1",
        ),
        (
            {"mode": "Classical", "signature": "ECDSA-P384"},
            {"mode": "Classical", "signature": "Ed25519"},
            True,
            "lowers its classical strength from 192 to 128 bits",
        ),
        (
            {"mode": "Classical", "signature": "Ed25519"},
            {"mode": "Classical", "signature": "ECDSA-P384"},
            False,
            "not weaker",
        ),
        (
            {"profile": "hybrid-default", "signature": "ECDSA-P384+ML-DSA-87"},
            {"profile": "hybrid-default"},
            True,
            "the signature ECDSA-P384+ML-DSA-87 -> Ed25519+ML-DSA-65 lowers its category from 5 to 3",
        ),
        ({"rotationInterval": "720h"}, {"rotationInterval": "2160h"}, True, "keys rotate less often (720h -> 2160h)"),
        ({"rotationInterval": "720h"}, {"rotationInterval": "24h"}, False, "not weaker"),
        ({"rotationInterval": "24h"}, {"rotationInterval": "1440m"}, False, "not weaker"),
        ({"symmetric": "AES-256-GCM"}, {"symmetric": "ChaCha20-Poly1305"}, False, "not weaker"),
        ({"retainVersions": 10}, {"retainVersions": 2}, False, "not weaker"),
        (
            {"profile": "hybrid-default"},
            {"mode": "PQC", "kem": "ML-KEM-768", "signature": "ML-DSA-65"},
            False,
            "not weaker",
        ),
        ({}, {}, False, "not weaker"),
        ({"workloadSelector": {"app": "db"}}, {"workloadSelector": {"app": "db", "tier": "1"}}, True, "deselect"),
        ({"workloadSelector": {"app": "db"}}, {"workloadSelector": {"app": "web"}}, True, "{app=db} -> {app=web}"),
        ({}, {"workloadSelector": {"app": "db"}}, True, "{} -> {app=db} may deselect"),
        ({"workloadSelector": {"app": "db", "tier": "1"}}, {"workloadSelector": {"app": "db"}}, False, "not weaker"),
        ({"workloadSelector": {"app": "db"}}, {}, False, "not weaker"),
        ({"selinuxType": "container_t"}, {"selinuxType": "container_kvm_t"}, True, "container_t -> container_kvm_t"),
        ({"selinuxType": "container_init_t"}, {"selinuxType": "container_t"}, False, "not weaker"),
        (
            {"profile": "cnsa-2.0", "rotationInterval": "24h"},
            {"profile": "classical-legacy", "rotationInterval": "48h"},
            True,
            "leaves quantum safety; the KEM ML-KEM-1024 -> X25519",
        ),
    ],
    ids=repr,
)
def test_weakening(old: dict[str, Any], new: dict[str, Any], weakening: bool, reason: str) -> None:
    assert reason, "each row names the part of the reason that sets it apart"
    weaker, why = is_weakening(spec(**old), spec(**new))
    assert weaker is weakening
    assert reason in why


def test_weakening_names_every_reason() -> None:
    _, why = is_weakening(
        spec(profile="cnsa-2.0", rotationInterval="24h"), spec(profile="classical-legacy", rotationInterval="48h")
    )
    assert why.split("; ") == [
        "leaves quantum safety",
        "the KEM ML-KEM-1024 -> X25519 lowers its category from 5 to 0",
        "the signature ML-DSA-87 -> Ed25519 lowers its category from 5 to 0",
        "keys rotate less often (24h -> 48h)",
    ]
