"""The unwrap helper for protected workloads: a pod's own way to its data key.

A protected pod has its key Secret mounted read-only (``/var/run/privatevault/keys``). With its
service-account token it logs in to Vault/OpenBao (Kubernetes auth, the tenant's role), which
lets it use its tenant's KEK and nothing else; it unwraps the KEM private key and then the data
key, in memory. Another tenant's token is refused by Vault, and the Secret alone opens nothing.

    from privatevault.sdk import unwrap_data_key
    key = unwrap_data_key(vault_addr="https://vault:8200", tenant="acme", workload="payments")
"""

from __future__ import annotations

from pathlib import Path

from privatevault.crypto import KeyContext
from privatevault.crypto import unwrap_data_key as _open
from privatevault.crypto.workload_keys import CURRENT, KeyVersion, file_name, private_key_context
from privatevault.kms.vault import DEFAULT_AUTH_MOUNT, DEFAULT_TRANSIT_MOUNT, VaultKms, kubernetes_login, role_name
from privatevault.kms.vault import vault_client as _client

KEY_DIR = Path("/var/run/privatevault/keys")
TOKEN_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

__all__ = ["KEY_DIR", "TOKEN_FILE", "unwrap_data_key"]


def unwrap_data_key(
    *,
    vault_addr: str,
    tenant: str,
    workload: str,
    version: int | None = None,
    key_dir: Path = KEY_DIR,
    token_file: Path = TOKEN_FILE,
    role: str | None = None,
    auth_mount: str = DEFAULT_AUTH_MOUNT,
    transit_mount: str = DEFAULT_TRANSIT_MOUNT,
    ca_file: str | None = None,
) -> bytes:
    """The workload's data key of ``version`` (default: the current one)."""
    client = _client(vault_addr, verify=ca_file or True)
    kubernetes_login(client, role=role or role_name(tenant), jwt=token_file.read_text().strip(), mount=auth_mount)
    kek = VaultKms.for_tenant(client, tenant, mount=transit_mount)
    number = version if version is not None else int((key_dir / CURRENT).read_text())
    stored = KeyVersion.from_json((key_dir / file_name(number)).read_text())
    private_key = kek.unwrap(stored.private_key_wrapped, context=private_key_context(tenant, workload, number))
    context = KeyContext(tenant=tenant, workload=workload, key_version=number)
    return _open(stored.data_key, private_key, context=context, kek=kek)
