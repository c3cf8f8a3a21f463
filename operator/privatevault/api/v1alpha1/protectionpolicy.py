"""ProtectionPolicy: how a tenant's workloads are protected (KEM, signatures, rotation, SELinux).

A policy's mode is a promise about every algorithm it names, so each algorithm belongs to exactly
one mode and may be named only in that mode:

    mode        KEMs                      signatures
    Classical   X25519                    Ed25519, ECDSA-P384
    PQC         ML-KEM-768, ML-KEM-1024   ML-DSA-44/65/87, SLH-DSA-SHA2-128s, SLH-DSA-SHAKE-256s
    Hybrid      X-Wing                    Ed25519+ML-DSA-65, ECDSA-P384+ML-DSA-87

``PQC`` is pure post-quantum (the CNSA 2.0 reading: no classical half kept alive); ``Hybrid``
means every algorithm has a classical and a post-quantum half, so an attacker must break both;
``Classical`` is not quantum-safe and says so, rather than passing off a post-quantum algorithm
under a classical label. The symmetric cipher (AES-256-GCM or ChaCha20-Poly1305) fits every mode.

A profile is a named set of algorithms and fixes the mode; ``kem``, ``signature`` and
``symmetric`` override it only within that mode. A policy without a profile takes the algorithms
of its mode's default profile, and a policy naming neither mode nor profile is ``Hybrid``.

The rules are written once, as data (:data:`MODE_KEMS`, :data:`MODE_SIGNATURES`,
:data:`REFUSALS`, :data:`PROFILES`), and enforced twice from it: as CEL rules in the generated
CRD, so that the API server refuses a bad spec with a message a person can act on, and by the
model validators, so that a spec the operator parses obeys the same rules. Unit tests hold the
refusals equal to the table above; integration tests prove the API server agrees.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import ClassVar, Final, Literal

from pydantic import Field, field_validator, model_validator

from privatevault.api.v1alpha1.common import (
    AGE,
    DNS_LABEL,
    DURATION,
    LABEL_VALUE,
    Model,
    PrintColumn,
    Resource,
    Status,
    cel,
    labels_problem,
    qualified_name_cel,
    ready_columns,
    validations,
)
from privatevault.api.v1alpha1.pending import PendingAction

Mode = Literal["Classical", "PQC", "Hybrid"]
ProfileName = Literal["hybrid-default", "cnsa-2.0", "classical-legacy"]
Kem = Literal["X25519", "ML-KEM-768", "ML-KEM-1024", "X-Wing"]
Signature = Literal[
    "Ed25519",
    "ECDSA-P384",
    "ML-DSA-44",
    "ML-DSA-65",
    "ML-DSA-87",
    "SLH-DSA-SHA2-128s",
    "SLH-DSA-SHAKE-256s",
    "Ed25519+ML-DSA-65",
    "ECDSA-P384+ML-DSA-87",
]
Symmetric = Literal["AES-256-GCM", "ChaCha20-Poly1305"]
SpecField = Literal["kem", "signature"]

#: The KEMs each mode may name; every KEM is in exactly one mode.
MODE_KEMS: Final[Mapping[Mode, tuple[Kem, ...]]] = MappingProxyType(
    {
        "Classical": ("X25519",),
        "PQC": ("ML-KEM-768", "ML-KEM-1024"),
        "Hybrid": ("X-Wing",),
    }
)
#: The signatures each mode may name; every signature is in exactly one mode.
MODE_SIGNATURES: Final[Mapping[Mode, tuple[Signature, ...]]] = MappingProxyType(
    {
        "Classical": ("Ed25519", "ECDSA-P384"),
        "PQC": ("ML-DSA-44", "ML-DSA-65", "ML-DSA-87", "SLH-DSA-SHA2-128s", "SLH-DSA-SHAKE-256s"),
        "Hybrid": ("Ed25519+ML-DSA-65", "ECDSA-P384+ML-DSA-87"),
    }
)

#: Algorithms with no post-quantum part: refused in modes PQC and Hybrid.
CLASSICAL_KEMS: Final[tuple[str, ...]] = MODE_KEMS["Classical"]
CLASSICAL_SIGNATURES: Final[tuple[str, ...]] = MODE_SIGNATURES["Classical"]
QUANTUM_SAFE_MODES: Final[tuple[Mode, ...]] = ("PQC", "Hybrid")

#: A policy that names neither a mode nor a profile.
DEFAULT_MODE: Final[Mode] = "Hybrid"

#: Rotation rolls every protected workload out, so not more often than hourly; and a key kept
#: in use for more than a year is no longer rotated in any useful sense.
MIN_ROTATION: Final = "1h"
MAX_ROTATION: Final = "8760h"


@dataclass(frozen=True)
class Profile:
    """A named, complete set of algorithms; it fixes the policy's mode."""

    mode: Mode
    kem: Kem
    signature: Signature
    symmetric: Symmetric


PROFILES: Final[Mapping[ProfileName, Profile]] = MappingProxyType(
    {
        "hybrid-default": Profile("Hybrid", "X-Wing", "Ed25519+ML-DSA-65", "AES-256-GCM"),
        "cnsa-2.0": Profile("PQC", "ML-KEM-1024", "ML-DSA-87", "AES-256-GCM"),
        "classical-legacy": Profile("Classical", "X25519", "Ed25519", "AES-256-GCM"),
    }
)
#: The profile whose algorithms a policy gets when it names a mode but no profile.
MODE_PROFILE: Final[Mapping[Mode, ProfileName]] = MappingProxyType(
    {
        "Classical": "classical-legacy",
        "PQC": "cnsa-2.0",
        "Hybrid": "hybrid-default",
    }
)


def _cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def _either(names: tuple[str, ...]) -> str:
    """``A, B or C``: the choices a message offers."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _both(names: tuple[str, ...]) -> str:
    """``A, B and C``: the names a message refuses."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _are(names: tuple[str, ...]) -> str:
    return "is" if len(names) == 1 else "are"


#: Each profile's mode, as a CEL map literal.
_PROFILE_MODES_CEL: Final = "{" + ", ".join(f"'{name}': '{p.mode}'" for name, p in PROFILES.items()) + "}"
#: The mode a spec is in, in CEL: its own, else its profile's, else the default.
MODE_CEL: Final = (
    f"(has(self.mode) ? self.mode : has(self.profile) ? {_PROFILE_MODES_CEL}[self.profile] : '{DEFAULT_MODE}')"
)


@dataclass(frozen=True)
class Refusal:
    """Algorithms that ``spec_field`` may not name while the policy is in one of ``modes``, and why."""

    spec_field: SpecField
    modes: tuple[Mode, ...]
    algorithms: tuple[str, ...]
    message: str

    def refuses(self, mode: Mode, algorithm: str | None) -> bool:
        return algorithm is not None and mode in self.modes and algorithm in self.algorithms

    def rule(self) -> dict[str, str]:
        """The same refusal as a CEL rule for the CRD."""
        return cel(
            f"!has(self.{self.spec_field}) || !({MODE_CEL} in {_cel_list(self.modes)})"
            f" || !(self.{self.spec_field} in {_cel_list(self.algorithms)})",
            self.message,
            field_path=f".{self.spec_field}",
        )


def _refusals() -> tuple[Refusal, ...]:
    kems, sigs = MODE_KEMS, MODE_SIGNATURES
    quantum_kems = kems["PQC"] + kems["Hybrid"]
    quantum_sigs = sigs["PQC"] + sigs["Hybrid"]
    return (
        Refusal(
            "kem",
            QUANTUM_SAFE_MODES,
            kems["Classical"],
            f"mode PQC or Hybrid needs a post-quantum KEM ({_either(kems['PQC'])} for PQC,"
            f" {_either(kems['Hybrid'])} for Hybrid); {_both(kems['Classical'])} alone {_are(kems['Classical'])}"
            " classical",
        ),
        Refusal(
            "signature",
            QUANTUM_SAFE_MODES,
            sigs["Classical"],
            f"mode PQC or Hybrid needs a post-quantum or composite signature ({_either(sigs['PQC'])} for PQC,"
            f" {_either(sigs['Hybrid'])} for Hybrid); {_both(sigs['Classical'])} alone {_are(sigs['Classical'])}"
            " classical",
        ),
        Refusal(
            "kem",
            ("PQC",),
            kems["Hybrid"],
            f"mode PQC is pure post-quantum and needs {_either(kems['PQC'])}; {_both(kems['Hybrid'])}"
            " keeps a classical half, so it needs mode Hybrid",
        ),
        Refusal(
            "signature",
            ("PQC",),
            sigs["Hybrid"],
            f"mode PQC is pure post-quantum and needs {_either(sigs['PQC'])}; composite signatures"
            f" ({_both(sigs['Hybrid'])}) keep a classical half, so they need mode Hybrid",
        ),
        Refusal(
            "kem",
            ("Hybrid",),
            kems["PQC"],
            f"mode Hybrid needs a hybrid KEM ({_either(kems['Hybrid'])}); {_both(kems['PQC'])}"
            f" alone {_are(kems['PQC'])} pure post-quantum, so they need mode PQC",
        ),
        Refusal(
            "signature",
            ("Hybrid",),
            sigs["PQC"],
            f"mode Hybrid needs a composite signature ({_either(sigs['Hybrid'])}); {_both(sigs['PQC'])}"
            f" alone {_are(sigs['PQC'])} pure post-quantum, so they need mode PQC",
        ),
        Refusal(
            "kem",
            ("Classical",),
            quantum_kems,
            f"mode Classical takes only a classical KEM ({_either(kems['Classical'])}); {_both(quantum_kems)}"
            " are quantum-safe, so they need mode PQC or Hybrid",
        ),
        Refusal(
            "signature",
            ("Classical",),
            quantum_sigs,
            f"mode Classical takes only a classical signature ({_either(sigs['Classical'])}); {_both(quantum_sigs)}"
            " are quantum-safe, so they need mode PQC or Hybrid",
        ),
    )


#: Every mode/algorithm combination a spec may not name: exactly the pairs outside
#: :data:`MODE_KEMS` and :data:`MODE_SIGNATURES`, grouped so that each has one readable message.
REFUSALS: Final[tuple[Refusal, ...]] = _refusals()

PROFILE_MODE_MESSAGE: Final = (
    "a profile fixes the mode ("
    + ", ".join(f"{name} is {profile.mode}" for name, profile in PROFILES.items())
    + "); leave mode out or give the profile's own mode"
)
PROFILE_MODE_RULE: Final = cel(
    f"!has(self.profile) || !has(self.mode) || self.mode == {_PROFILE_MODES_CEL}[self.profile]",
    PROFILE_MODE_MESSAGE,
    field_path=".mode",
)

ROTATION_MESSAGE: Final = (
    f"rotationInterval must be between {MIN_ROTATION} and {MAX_ROTATION} (a year): every rotation rolls the"
    " protected workloads out, and a key kept longer is not rotated in any useful sense"
)

#: The SELinux types Pod Security "restricted" (enforced on every tenant namespace) lets a pod run as.
RESTRICTED_SELINUX_TYPES: Final = ("container_t", "container_init_t", "container_kvm_t", "container_engine_t")
SELINUX_TYPE_MESSAGE: Final = (
    f"selinuxType must be {_either(RESTRICTED_SELINUX_TYPES)}: tenant namespaces enforce Pod Security"
    " restricted, which refuses every pod with another SELinux type, so the protected workloads would never run"
)
SELECTOR_KEY_MESSAGE: Final = (
    "workloadSelector keys must be label keys, a name of at most 63 characters with an optional DNS"
    " prefix (app, example.com/tier): a key no label can have selects no workload"
)

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS: Final[Mapping[str, Decimal]] = MappingProxyType(
    {
        "ms": Decimal("0.001"),
        "s": Decimal(1),
        "m": Decimal(60),
        "h": Decimal(3600),
    }
)


def duration_seconds(text: str) -> Decimal:
    """The seconds in a duration such as ``1h30m`` or ``1.5h``: what CEL's ``duration()`` reads."""
    if not re.fullmatch(DURATION, text):
        raise ValueError(f"{text!r} is not a duration such as 720h, 90m or 1h30m")
    return sum((Decimal(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text)), Decimal(0))


def _profiles_description() -> str:
    sets = "; ".join(f"{name}: {p.mode}, {p.kem}, {p.signature}, {p.symmetric}" for name, p in PROFILES.items())
    return f"A named set of algorithms ({sets}). It fixes the mode; kem, signature and symmetric override it."


class ProtectionPolicySpec(Model):
    model_config = Model.model_config | {
        "json_schema_extra": validations(PROFILE_MODE_RULE, *(refusal.rule() for refusal in REFUSALS))
    }

    profile: ProfileName | None = Field(default=None, description=_profiles_description())
    mode: Mode | None = Field(
        default=None,
        description=(
            "Classical, PQC (pure post-quantum) or Hybrid (classical and post-quantum halves in every"
            f" algorithm). Unset: the profile's mode, else {DEFAULT_MODE}."
        ),
    )
    kem: Kem | None = Field(default=None, description="The KEM, within the mode; unset: the profile's.")
    signature: Signature | None = Field(
        default=None, description="The signature, within the mode; unset: the profile's."
    )
    symmetric: Symmetric | None = Field(default=None, description="The symmetric cipher; unset: the profile's.")
    rotation_interval: str = Field(
        default="720h",
        max_length=32,
        pattern=DURATION,
        description=f"How often keys rotate, from {MIN_ROTATION} to {MAX_ROTATION}.",
        json_schema_extra=validations(
            cel(
                f"duration(self) >= duration('{MIN_ROTATION}') && duration(self) <= duration('{MAX_ROTATION}')",
                ROTATION_MESSAGE,
            )
        ),
    )
    retain_versions: int = Field(default=3, ge=1, le=100, description="Key versions kept to decrypt older data.")
    workload_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Labels that pick the Deployments and StatefulSets to protect. A change that is not provably"
        " as wide (a label added, a value changed) may deselect workloads: it is a weakening.",
        json_schema_extra={
            "maxProperties": 16,
            "additionalProperties": {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE},
            **validations(cel(f"self.all(k, {qualified_name_cel('k')})", SELECTOR_KEY_MESSAGE)),
        },
    )
    selinux_type: str = Field(
        default="container_t",
        max_length=64,
        pattern=r"^[a-z][a-z0-9_]*_t$",
        description="SELinux type of the protected pods. Pod Security 'restricted' (which tenant namespaces"
        f" enforce) allows only {_either(RESTRICTED_SELINUX_TYPES)}; the tenant's MCS level carries the isolation.",
        json_schema_extra=validations(cel(f"self in {_cel_list(RESTRICTED_SELINUX_TYPES)}", SELINUX_TYPE_MESSAGE)),
    )
    quorum_policy_ref: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_LABEL,
        description="The QuorumPolicy whose WeakenProtectionPolicy rule approves a weakening; until then the"
        " last approved generation stays in force. Removing or changing it is gated the same way.",
    )

    @property
    def effective_mode(self) -> Mode:
        """The mode the policy is in: its own, else its profile's, else :data:`DEFAULT_MODE`."""
        if self.mode is not None:
            return self.mode
        if self.profile is not None:
            return PROFILES[self.profile].mode
        return DEFAULT_MODE

    @property
    def effective_profile(self) -> Profile:
        """The profile whose algorithms fill the fields the spec leaves unset."""
        return PROFILES[self.profile or MODE_PROFILE[self.effective_mode]]

    @field_validator("workload_selector")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        problem = labels_problem(value, SELECTOR_KEY_MESSAGE)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("selinux_type")
    @classmethod
    def _runs_under_restricted(cls, value: str) -> str:
        if value not in RESTRICTED_SELINUX_TYPES:
            raise ValueError(SELINUX_TYPE_MESSAGE)
        return value

    @field_validator("rotation_interval")
    @classmethod
    def _sane_rotation(cls, value: str) -> str:
        if not duration_seconds(MIN_ROTATION) <= duration_seconds(value) <= duration_seconds(MAX_ROTATION):
            raise ValueError(ROTATION_MESSAGE)
        return value

    @model_validator(mode="after")
    def _algorithms_fit_the_mode(self) -> ProtectionPolicySpec:
        problems = []
        if self.profile is not None and self.mode is not None and self.mode != PROFILES[self.profile].mode:
            problems.append(PROFILE_MODE_MESSAGE)
        mode = self.effective_mode
        problems += [r.message for r in REFUSALS if r.refuses(mode, getattr(self, r.spec_field))]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ProtectionPolicyStatus(Status):
    security_level: int | None = Field(
        default=None, description="NIST security category (1-5) of the weakest algorithm; 0 when not quantum-safe."
    )
    quantum_safe: bool | None = None
    workloads: int | None = None
    in_force_generation: int | None = Field(
        default=None, description="The generation in force: a weakening waits for approval under the quorum policy."
    )
    pending: list[PendingAction] = Field(
        default_factory=list, max_length=4, description="Gated actions held until a quorum approves them."
    )


class ProtectionPolicy(Resource):
    kind: ClassVar[str] = "ProtectionPolicy"
    plural: ClassVar[str] = "protectionpolicies"
    short_names: ClassVar[tuple[str, ...]] = ("pvpp",)
    description: ClassVar[str] = "How a tenant's workloads are protected: algorithms, rotation and SELinux type."
    columns: ClassVar[tuple[PrintColumn, ...]] = (
        *ready_columns(),
        PrintColumn(name="Profile", type="string", json_path=".spec.profile"),
        PrintColumn(name="Mode", type="string", json_path=".spec.mode"),
        PrintColumn(name="Level", type="integer", json_path=".status.securityLevel"),
        PrintColumn(name="Quantum-Safe", type="boolean", json_path=".status.quantumSafe"),
        PrintColumn(name="Workloads", type="integer", json_path=".status.workloads"),
        AGE,
    )

    spec: ProtectionPolicySpec
    status: ProtectionPolicyStatus | None = None
