"""The operator's evidence signing keys: made once, kept wrapped by the KMS, unwrapped in memory.

Kept like the checkpoint keys (``ledger.keyring``): a 32-byte seed per algorithm (the Ed25519
private key; the ML-DSA-65 seed of FIPS 204) wrapped by the KMS under a context naming its
purpose, in a Secret of the operator's namespace that holds ciphertext only. They are other keys
than the checkpoint keys: a manifest signature and a checkpoint signature can never stand in for
each other. Their public halves are published as signed-note verifier keys named
``<ledger origin>/evidence`` (:func:`verifier_keys`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey

from privatevault.kms import KeyProvider, SecretStore
from privatevault.ledger.checkpoint import ED25519, MLDSA65, KeyVerifier
from privatevault.quorum import dsse

SECRET = "privatevault-evidence-signing-keys"  # noqa: S105 - a Secret's name
_ALGORITHMS: Mapping[dsse.Algorithm, str] = {"Ed25519": "ed25519", "ML-DSA-65": "ml-dsa-65"}


def _context(algorithm: str, origin: str) -> bytes:
    return f"privatevault/evidence/manifest-key/v1\n{algorithm}\n{origin}".encode()


def key_name(origin: str) -> str:
    return f"{origin}/evidence"


@dataclass(frozen=True)
class EvidenceKeys:
    """Seeds and public keys by algorithm, as ``quorum.dsse.sign`` takes them, and their name."""

    name: str
    pairs: Mapping[dsse.Algorithm, tuple[bytes, bytes]]

    def verifiers(self) -> list[KeyVerifier]:
        return [
            KeyVerifier(self.name, ED25519 if algorithm == "Ed25519" else MLDSA65, public)
            for algorithm, (_, public) in self.pairs.items()
        ]

    def verifier_keys(self) -> list[str]:
        return [verifier.verifier_key for verifier in self.verifiers()]

    def only(self, *algorithms: dsse.Algorithm) -> EvidenceKeys:
        return EvidenceKeys(self.name, {a: pair for a, pair in self.pairs.items() if a in algorithms})


def from_seeds(name: str, seeds: Mapping[dsse.Algorithm, bytes]) -> EvidenceKeys:
    pairs: dict[dsse.Algorithm, tuple[bytes, bytes]] = {}
    for algorithm, seed in seeds.items():
        if algorithm == "Ed25519":
            public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
        else:
            public = MLDSA65PrivateKey.from_seed_bytes(seed).public_key().public_bytes_raw()
        pairs[algorithm] = (seed, public)
    return EvidenceKeys(name, pairs)


def generate(name: str) -> EvidenceKeys:
    return from_seeds(name, {algorithm: os.urandom(32) for algorithm in _ALGORITHMS})


def load(store: SecretStore, kms: KeyProvider, *, origin: str) -> EvidenceKeys:
    """The Ed25519 and ML-DSA-65 evidence keys for ``origin``, created on first use."""
    wrapped = store.read_or_create(
        SECRET,
        lambda: {label: kms.wrap(os.urandom(32), context=_context(label, origin)) for label in _ALGORITHMS.values()},
    ).data
    seeds = {
        algorithm: kms.unwrap(wrapped[label], context=_context(label, origin))
        for algorithm, label in _ALGORITHMS.items()
    }
    return from_seeds(key_name(origin), seeds)
