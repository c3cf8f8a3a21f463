"""The binary COPY parser of the evidence reads gives the rows whatever the block boundaries."""

from __future__ import annotations

import struct

import pytest

from privatevault.errors import LedgerUnavailable
from privatevault.evidence.store import binary_rows

ROWS = [(1, b'{"seq":1}', bytes(32), b"\x01" * 32), (70000, b"", b"\x02" * 32, b"\x03" * 32)]


def stream(rows: list[tuple[int, bytes, bytes, bytes]]) -> bytes:
    out = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
    for seq, *fields in rows:
        out += struct.pack("!hiq", 4, 8, seq)
        out += b"".join(struct.pack("!i", len(f)) + f for f in fields)
    return out + struct.pack("!h", -1)


@pytest.mark.parametrize("size", [1, 2, 7, 19, 64, 4096])
def test_rows_whatever_the_blocks(size: int) -> None:
    data = stream(ROWS)
    assert list(binary_rows(data[i : i + size] for i in range(0, len(data), size))) == ROWS


def test_not_a_binary_copy_stream() -> None:
    with pytest.raises(LedgerUnavailable):
        list(binary_rows([b"seq,canonical\n1,{}\n" * 2]))
