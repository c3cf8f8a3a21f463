"""What a ProtectionPolicy amounts to: its effective algorithms, their strength, and whether a change weakens it.

These are pure decisions over the spec, with no I/O, so the status (``securityLevel``,
``quantumSafe``) and the quorum gate on weakening a policy read the same answers.

Strength is measured per component (KEM, signature, symmetric cipher) on two scales:

- the NIST post-quantum security category, 1 to 5 (1 ≈ AES-128 key search, 3 ≈ AES-192,
  5 ≈ AES-256), with 0 for an algorithm a quantum computer breaks (X25519, Ed25519, ECDSA-P384);
- the classical strength in bits, which still tells Classical policies apart (ECDSA-P384 is 192
  bits, Ed25519 128).

A hybrid counts as its stronger half on both scales: an attacker must break both halves. A
policy is as strong as its weakest component, and quantum-safe when that is category 1 or more.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from privatevault.api.v1alpha1.protectionpolicy import (
    Kem,
    ProtectionPolicySpec,
    Signature,
    Symmetric,
    duration_seconds,
)

__all__ = [
    "CLASSICAL_BITS",
    "QUANTUM_LEVEL",
    "Algorithms",
    "classical_strength",
    "effective",
    "is_weakening",
    "narrows",
    "quantum_safe",
    "security_level",
]

#: NIST post-quantum security category of each algorithm; 0 where Shor's algorithm breaks it.
QUANTUM_LEVEL: Final[Mapping[str, int]] = MappingProxyType(
    {
        "X25519": 0,
        "ML-KEM-768": 3,
        "ML-KEM-1024": 5,
        "X-Wing": 3,  # ML-KEM-768 and X25519
        "Ed25519": 0,
        "ECDSA-P384": 0,
        "ML-DSA-44": 2,
        "ML-DSA-65": 3,
        "ML-DSA-87": 5,
        "SLH-DSA-SHA2-128s": 1,
        "SLH-DSA-SHAKE-256s": 5,
        "Ed25519+ML-DSA-65": 3,
        "ECDSA-P384+ML-DSA-87": 5,
        "AES-256-GCM": 5,
        "ChaCha20-Poly1305": 5,
    }
)

#: Security against a classical attacker, in bits.
CLASSICAL_BITS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "X25519": 128,
        "ML-KEM-768": 192,
        "ML-KEM-1024": 256,
        "X-Wing": 192,
        "Ed25519": 128,
        "ECDSA-P384": 192,
        "ML-DSA-44": 128,
        "ML-DSA-65": 192,
        "ML-DSA-87": 256,
        "SLH-DSA-SHA2-128s": 128,
        "SLH-DSA-SHAKE-256s": 256,
        "Ed25519+ML-DSA-65": 192,
        "ECDSA-P384+ML-DSA-87": 256,
        "AES-256-GCM": 256,
        "ChaCha20-Poly1305": 256,
    }
)


@dataclass(frozen=True)
class Algorithms:
    """The algorithms a policy protects workloads with, once its profile is applied."""

    kem: Kem
    signature: Signature
    symmetric: Symmetric

    def components(self) -> tuple[tuple[str, str], ...]:
        """``(role, algorithm)`` pairs, in the order reasons name them."""
        return (("KEM", self.kem), ("signature", self.signature), ("symmetric cipher", self.symmetric))


def effective(spec: ProtectionPolicySpec) -> Algorithms:
    """The spec's own algorithms where it names them, its profile's (or its mode's default profile's) elsewhere."""
    profile = spec.effective_profile
    return Algorithms(
        kem=spec.kem or profile.kem,
        signature=spec.signature or profile.signature,
        symmetric=spec.symmetric or profile.symmetric,
    )


def security_level(algorithms: Algorithms) -> int:
    """The NIST security category (1-5) of the weakest component, 0 when any is not quantum-safe."""
    return min(QUANTUM_LEVEL[name] for _, name in algorithms.components())


def classical_strength(algorithms: Algorithms) -> int:
    """Bits of security of the weakest component against a classical attacker."""
    return min(CLASSICAL_BITS[name] for _, name in algorithms.components())


def quantum_safe(algorithms: Algorithms) -> bool:
    """Whether every component withstands a quantum attacker (category 1 or more)."""
    return security_level(algorithms) > 0


def narrows(old: Mapping[str, str], new: Mapping[str, str]) -> bool:
    """Whether a workload selected by ``old`` may not be selected by ``new``.

    Selectors are equality-only label sets, so ``new`` is provably as wide only when every label it
    asks for ``old`` asks for too (with the same value); any other change may deselect workloads.
    """
    return any(old.get(key) != value for key, value in new.items())


#: The SELinux type that confines protected pods the most; a change to any other may loosen them.
CONFINING_SELINUX_TYPE: Final = "container_t"


def is_weakening(old: ProtectionPolicySpec, new: ProtectionPolicySpec) -> tuple[bool, str]:
    """Whether going from ``old`` to ``new`` weakens the protection, and the reasons why (or why not).

    Weakening is: leaving quantum safety; lowering the overall security level; lowering any one
    component's category or, at the same category, its classical strength (the KEM guards
    confidentiality and the signature integrity, so a weaker KEM is not excused by a signature
    that was already the weakest part); rotating keys less often; a workload selector that is not
    provably as wide (workloads may fall out of protection, :func:`narrows`); or a SELinux type
    other than the most confining one (``container_t``) that the policy did not already have (no
    order among the other types can be proven). Keeping fewer versions is not weakening: it
    destroys old keys sooner, which the rotation reconcile guards on its own.
    """
    before, after = effective(old), effective(new)
    reasons: list[str] = []
    if quantum_safe(before) and not quantum_safe(after):
        reasons.append("leaves quantum safety")
    elif security_level(after) < security_level(before):
        reasons.append(f"lowers the security level from {security_level(before)} to {security_level(after)}")
    for (role, was), (_, now) in zip(before.components(), after.components(), strict=True):
        if QUANTUM_LEVEL[now] < QUANTUM_LEVEL[was]:
            reasons.append(
                f"the {role} {was} -> {now} lowers its category from {QUANTUM_LEVEL[was]} to {QUANTUM_LEVEL[now]}"
            )
        elif QUANTUM_LEVEL[now] == QUANTUM_LEVEL[was] and CLASSICAL_BITS[now] < CLASSICAL_BITS[was]:
            reasons.append(
                f"the {role} {was} -> {now} lowers its classical strength"
                f" from {CLASSICAL_BITS[was]} to {CLASSICAL_BITS[now]} bits"
            )
    if duration_seconds(new.rotation_interval) > duration_seconds(old.rotation_interval):
        reasons.append(f"keys rotate less often ({old.rotation_interval} -> {new.rotation_interval})")
    if narrows(old.workload_selector, new.workload_selector):
        reasons.append(
            f"the workload selector {_labels(old.workload_selector)} -> {_labels(new.workload_selector)}"
            " may deselect workloads"
        )
    if new.selinux_type not in (old.selinux_type, CONFINING_SELINUX_TYPE):
        reasons.append(f"the SELinux type {old.selinux_type} -> {new.selinux_type} may confine pods less")
    if reasons:
        return True, "; ".join(reasons)
    return False, (
        "not weaker: no algorithm loses strength, keys rotate at least as often and the policy selects"
        " at least the same workloads"
    )


def _labels(selector: Mapping[str, str]) -> str:
    return "{" + ",".join(f"{key}={value}" for key, value in sorted(selector.items())) + "}"
