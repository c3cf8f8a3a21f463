"""The length check every public entry point makes before bytes reach a primitive.

The primitives underneath raise their own errors for a wrong-sized key, but in their words and
sometimes only deep inside OpenSSL. Checking here first gives one clear ``ValueError`` that names
the algorithm, the argument and both lengths, and never the bytes themselves.
"""

from __future__ import annotations


def expect_length(data: bytes, size: int, what: str) -> None:
    """Raise ``ValueError`` unless ``data`` is exactly ``size`` bytes; ``what`` names it for the message."""
    if not isinstance(data, bytes):
        raise TypeError(f"{what} must be bytes, got {type(data).__name__}")
    if len(data) != size:
        raise ValueError(f"{what} must be {size} bytes, got {len(data)}")
