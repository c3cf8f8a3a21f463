"""ProtectionPolicy: how a tenant's workloads are protected (KEM, signatures, rotation, SELinux)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from .common import AGE, DURATION, Model, PrintColumn, Resource, Status, cel, ready_columns, validations

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

#: Algorithms with no post-quantum part: refused in modes PQC and Hybrid.
CLASSICAL_KEMS: tuple[str, ...] = ("X25519",)
CLASSICAL_SIGNATURES: tuple[str, ...] = ("Ed25519", "ECDSA-P384")
QUANTUM_SAFE_MODES: tuple[str, ...] = ("PQC", "Hybrid")


def _cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


class ProtectionPolicySpec(Model):
    model_config = Model.model_config | {
        "json_schema_extra": validations(
            cel(
                f"!(self.mode in {_cel_list(QUANTUM_SAFE_MODES)}) || !has(self.kem)"
                f" || !(self.kem in {_cel_list(CLASSICAL_KEMS)})",
                "mode PQC or Hybrid needs a post-quantum KEM (ML-KEM-768, ML-KEM-1024 or X-Wing);"
                " X25519 alone is classical",
                field_path=".kem",
            ),
            cel(
                f"!(self.mode in {_cel_list(QUANTUM_SAFE_MODES)}) || !has(self.signature)"
                f" || !(self.signature in {_cel_list(CLASSICAL_SIGNATURES)})",
                "mode PQC or Hybrid needs a post-quantum or composite signature (ML-DSA-*, SLH-DSA-*,"
                " Ed25519+ML-DSA-65, ECDSA-P384+ML-DSA-87); Ed25519 and ECDSA-P384 alone are classical",
                field_path=".signature",
            ),
        )
    }

    profile: Literal["hybrid-default", "cnsa-2.0", "classical-legacy"] | None = Field(
        default=None, description="A named set of algorithms; explicit fields override it."
    )
    mode: Literal["Classical", "PQC", "Hybrid"] = "Hybrid"
    kem: Kem | None = None
    signature: Signature | None = None
    symmetric: Symmetric = "AES-256-GCM"
    rotation_interval: str = Field(default="720h", max_length=32, pattern=DURATION)
    retain_versions: int = Field(default=3, ge=1, le=100)
    workload_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Labels that pick the Deployments and StatefulSets to protect.",
        json_schema_extra={"maxProperties": 16},
    )
    selinux_type: str = Field(default="privatevault_workload_t", max_length=64, pattern=r"^[a-z][a-z0-9_]*_t$")

    @model_validator(mode="after")
    def _quantum_safe_algorithms(self) -> ProtectionPolicySpec:
        if self.mode in QUANTUM_SAFE_MODES:
            if self.kem in CLASSICAL_KEMS:
                raise ValueError(f"mode {self.mode} needs a post-quantum KEM; {self.kem} alone is classical")
            if self.signature in CLASSICAL_SIGNATURES:
                raise ValueError(
                    f"mode {self.mode} needs a post-quantum or composite signature; {self.signature} alone is classical"
                )
        return self


class ProtectionPolicyStatus(Status):
    security_level: int | None = None
    quantum_safe: bool | None = None
    workloads: int | None = None


class ProtectionPolicy(Resource):
    kind: ClassVar[str] = "ProtectionPolicy"
    plural: ClassVar[str] = "protectionpolicies"
    short_names: ClassVar[tuple[str, ...]] = ("pvpp",)
    description: ClassVar[str] = "How a tenant's workloads are protected: algorithms, rotation and SELinux type."
    columns: ClassVar[tuple[PrintColumn, ...]] = (
        *ready_columns(),
        PrintColumn(name="Mode", type="string", json_path=".spec.mode"),
        PrintColumn(name="Quantum-Safe", type="boolean", json_path=".status.quantumSafe"),
        PrintColumn(name="Workloads", type="integer", json_path=".status.workloads"),
        AGE,
    )

    spec: ProtectionPolicySpec
    status: ProtectionPolicyStatus | None = None
