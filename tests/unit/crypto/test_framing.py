"""Framing joins byte strings so that every split is unambiguous and any malformed input is refused."""

from __future__ import annotations

import pytest

from privatevault.crypto.framing import frame, unframe


@pytest.mark.parametrize("parts", [(), (b"",), (b"a", b"bc"), (b"", b"", b"x" * 300)])
def test_round_trip(parts: tuple[bytes, ...]) -> None:
    assert unframe(frame(parts), len(parts)) == parts


def test_shifted_boundaries_encode_differently() -> None:
    assert frame([b"ab", b"c"]) != frame([b"a", b"bc"])


@pytest.mark.parametrize(
    ("data", "count", "message"),
    [
        (b"\x00\x00\x00", 1, "ends before part 1 of 1"),
        (b"\x00\x00\x00\x05abc", 1, "part 1 of 1 is cut short"),
        (b"\x00\x00\x00\x01ab", 1, "1 bytes after its 1 parts"),
        (b"\x00\x00\x00\x01a", 2, "ends before part 2 of 2"),
    ],
)
def test_malformed_is_refused(data: bytes, count: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        unframe(data, count)
