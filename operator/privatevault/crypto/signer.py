"""The shape every signature algorithm here shares, so policy code can pick one by name.

Keys and signatures are plain bytes. ``verify`` answers ``True`` or ``False`` and does not raise
for a bad or malformed signature, because a forged signature is an expected input, not an
accident; it does raise ``ValueError`` for a public key of the wrong size, which is the caller's
own configuration going wrong.
"""

from __future__ import annotations

from typing import Protocol


class Signer(Protocol):
    """A signature algorithm named as in the ProtectionPolicy API (``"ML-DSA-65"``, ...)."""

    @property
    def name(self) -> str: ...

    def generate(self) -> tuple[bytes, bytes]:
        """Return a fresh ``(private_key, public_key)``."""
        ...

    def sign(self, private_key: bytes, message: bytes) -> bytes:
        """Return a signature over ``message``."""
        ...

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is a valid signature over ``message`` under ``public_key``."""
        ...
