"""The ledger's checkpoint signing keys: made once, kept wrapped by the KMS, unwrapped in memory.

Each key is a 32-byte seed (Ed25519 private key; ML-DSA-65 seed, FIPS 204) wrapped by the KMS
under a context naming its purpose, stored in a Secret in the operator's namespace. The
database never sees them, and the Secret holds only ciphertext: reading it is useless without
the KMS. Replicas racing on the first start agree, because an existing Secret always wins.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey

from privatevault.kms import KeyProvider, SecretStore
from privatevault.ledger.checkpoint import LocalSigner

SECRET = "privatevault-ledger-signing-keys"  # noqa: S105 - a Secret's name
ALGORITHMS = ("ed25519", "ml-dsa-65")


def _context(algorithm: str, origin: str) -> bytes:
    return f"privatevault/ledger/checkpoint-key/v1\n{algorithm}\n{origin}".encode()


def load_signers(store: SecretStore, kms: KeyProvider, *, origin: str) -> list[LocalSigner]:
    """The Ed25519 and ML-DSA-65 checkpoint signers for ``origin``, created on first use."""
    wrapped = store.read_or_create(
        SECRET,
        lambda: {algorithm: kms.wrap(os.urandom(32), context=_context(algorithm, origin)) for algorithm in ALGORITHMS},
    ).data
    ed_seed = kms.unwrap(wrapped["ed25519"], context=_context("ed25519", origin))
    ml_seed = kms.unwrap(wrapped["ml-dsa-65"], context=_context("ml-dsa-65", origin))
    return [
        LocalSigner(origin, Ed25519PrivateKey.from_private_bytes(ed_seed)),
        LocalSigner(origin, MLDSA65PrivateKey.from_seed_bytes(ml_seed)),
    ]
