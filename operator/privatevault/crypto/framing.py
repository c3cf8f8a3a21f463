"""Length-prefixed framing: the one way this package joins byte strings that must not run together.

Concatenating variable-length fields (``tenant + workload``) is ambiguous: ``"ab" + "c"`` and
``"a" + "bc"`` give the same bytes, so a value meant for one field could be read as another's.
Every composite key, composite signature and associated-data string here is instead framed:
each part is preceded by its length as a 4-byte big-endian unsigned integer, and decoding
demands exactly the expected number of parts with nothing left over.
"""

from __future__ import annotations

from collections.abc import Sequence

_LENGTH_BYTES = 4
_MAX_PART = 2**32 - 1


def frame(parts: Sequence[bytes]) -> bytes:
    """Join ``parts`` so that they can be split again without ambiguity."""
    out = bytearray()
    for part in parts:
        if len(part) > _MAX_PART:
            raise ValueError(f"a framed part is limited to {_MAX_PART} bytes, got {len(part)}")
        out += len(part).to_bytes(_LENGTH_BYTES, "big")
        out += part
    return bytes(out)


def unframe(data: bytes, count: int) -> tuple[bytes, ...]:
    """Split what :func:`frame` joined; exactly ``count`` parts, nothing trailing, or ``ValueError``."""
    parts: list[bytes] = []
    offset = 0
    for index in range(count):
        if len(data) - offset < _LENGTH_BYTES:
            raise ValueError(f"framed data ends before part {index + 1} of {count}")
        length = int.from_bytes(data[offset : offset + _LENGTH_BYTES], "big")
        offset += _LENGTH_BYTES
        if len(data) - offset < length:
            raise ValueError(f"framed part {index + 1} of {count} is cut short")
        parts.append(data[offset : offset + length])
        offset += length
    if offset != len(data):
        raise ValueError(f"framed data has {len(data) - offset} bytes after its {count} parts")
    return tuple(parts)
