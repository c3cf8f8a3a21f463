"""What may be said about a tenant key, whichever provider holds it: a value, no I/O.

The decisions read these facts through their ports; the providers (``kms.vault``,
``kms.tenants``) produce them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeyFacts:
    """What may be said about a tenant key: versions and times, never key material.

    ``created`` is when the oldest version still decryptable (``min_decryption_version``) was
    made, as OpenBao shows no older ones; ``rotated`` is when the latest was made (equal to
    ``created`` until the first rotation). Both are ISO 8601 in UTC.
    """

    name: str
    latest_version: int
    min_decryption_version: int
    created: str
    rotated: str
    deletion_allowed: bool
