"""Key management: one provider interface for key-encryption keys, whatever holds them.

Providers wrap and unwrap small secrets (data keys, signing-key seeds) under a key-encryption
key that never leaves the provider in the Vault case, and never leaves the operator's process
memory and its Secret in the local case. ``context`` is authenticated associated data: a
ciphertext made for one purpose (a tenant, a workload, a key version) does not open for another.
"""

from privatevault.kms.local import LocalKms, SecretStore
from privatevault.kms.provider import KeyProvider

__all__ = ["KeyProvider", "LocalKms", "SecretStore"]
