"""A protected workload's key versions: a KEM key pair and a data key each, stored only wrapped.

Each version holds the KEM public key, the KEM private key wrapped by the tenant's KEK (context:
tenant, workload, version), and the data key wrapped for that public key by the envelope, whose
KEM layer is wrapped once more by the tenant's KEK. Opening a data key therefore needs the
tenant's KEK, which a workload reaches only through its own service-account login (Vault) — the
Secret alone is useless. Old versions are kept up to the policy's ``retainVersions`` so data
written under them stays readable after a rotation.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from privatevault.crypto import KeyContext, KeyWrapper, WrappedKey, generate_data_key, kem, wrap_data_key
from privatevault.crypto.envelope import rewrap_kek_layer

CURRENT = "current"


def private_key_context(tenant: str, workload: str, version: int) -> bytes:
    return f"privatevault/workload-private-key/v1\n{tenant}\n{workload}\n{version}".encode()


def file_name(version: int) -> str:
    return f"v{version}.json"


@dataclass(frozen=True)
class KeyVersion:
    number: int
    kem: str
    public_key: bytes
    private_key_wrapped: bytes
    data_key: WrappedKey
    created: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.number,
                "kem": self.kem,
                "publicKey": base64.b64encode(self.public_key).decode(),
                "privateKeyWrapped": base64.b64encode(self.private_key_wrapped).decode(),
                "dataKey": self.data_key.to_dict(),
                "created": self.created,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> KeyVersion:
        data = json.loads(text)
        return cls(
            number=int(data["version"]),
            kem=str(data["kem"]),
            public_key=base64.b64decode(data["publicKey"]),
            private_key_wrapped=base64.b64decode(data["privateKeyWrapped"]),
            data_key=WrappedKey.from_dict(data["dataKey"]),
            created=str(data["created"]),
        )

    def digest(self) -> str:
        """What the pod template's annotation carries: a new version rolls the pods.

        Only the public parts count, so rewrapping under a rotated KEK rolls nothing.
        """
        public = json.dumps(
            {
                "version": self.number,
                "kem": self.kem,
                "created": self.created,
                "publicKey": base64.b64encode(self.public_key).decode(),
            },
            sort_keys=True,
        )
        return "sha256:" + hashlib.sha256(public.encode()).hexdigest()

    def rewrapped(self, *, tenant: str, workload: str, kek: KeyWrapper) -> KeyVersion:
        """This version with both KEK-wrapped parts moved to the KEK's newest version."""
        context = private_key_context(tenant, workload, self.number)
        private_key = kek.wrap(kek.unwrap(self.private_key_wrapped, context=context), context=context)
        key_context = KeyContext(tenant=tenant, workload=workload, key_version=self.number)
        return replace(
            self,
            private_key_wrapped=private_key,
            data_key=rewrap_kek_layer(self.data_key, context=key_context, kek=kek),
        )


def new_version(
    number: int, *, tenant: str, workload: str, kem_name: str, kek: KeyWrapper, now: datetime
) -> KeyVersion:
    """A fresh key pair and data key; the plaintext private and data keys never leave this function."""
    scheme = kem(kem_name)
    private_key, public_key = scheme.generate_keypair()
    context = KeyContext(tenant=tenant, workload=workload, key_version=number)
    return KeyVersion(
        number=number,
        kem=kem_name,
        public_key=public_key,
        private_key_wrapped=kek.wrap(private_key, context=private_key_context(tenant, workload, number)),
        data_key=wrap_data_key(generate_data_key(), public_key, context=context, kem=kem_name, kek=kek),
        created=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def versions_of(secret: dict[str, Any] | None) -> list[KeyVersion]:
    """The versions a key Secret holds, oldest first."""
    data = (secret or {}).get("data") or {}
    out = [
        KeyVersion.from_json(base64.b64decode(value).decode())
        for name, value in data.items()
        if name.startswith("v") and name.endswith(".json")
    ]
    return sorted(out, key=lambda version: version.number)


def secret_files(versions: list[KeyVersion]) -> dict[str, str]:
    """The Secret's files: one per version, and ``current`` naming the newest."""
    files = {file_name(version.number): version.to_json() for version in versions}
    files[CURRENT] = str(versions[-1].number)
    return files
