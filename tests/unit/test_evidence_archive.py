"""The bundle's archive: its tar stream is tarfile's for the same files, whether a file comes from
disk or as a segment compressed while it was written; the gzip stream is one standard member
(its CRC-32 combined from the pieces' is zlib's for the whole), and the same inputs give the
same bytes however the segments' writes were cut."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zlib
from pathlib import Path

import pytest

from privatevault.evidence import archive


@pytest.mark.parametrize(("first", "second"), [(b"", b""), (b"a", b""), (b"", b"b"), (b"abc", os.urandom(70_001))])
def test_crc32_combine_is_zlibs(first: bytes, second: bytes) -> None:
    combined = archive.crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second))
    assert combined == zlib.crc32(first + second)


def segment(path: Path, data: bytes, cut: int) -> archive.Segment:
    deflater = archive.Deflater(path)
    for at in range(0, len(data), cut):
        deflater.write(data[at : at + cut])
    return deflater.close()


def tarfiles(entries: dict[str, bytes]) -> bytes:
    """What tarfile writes for the same entries, normalised as the archive normalises them."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(entries, key=str.encode):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uname, info.gname = len(entries[name]), archive.MODE, "", ""
            tar.addfile(info, io.BytesIO(entries[name]))
    return out.getvalue()


def test_files_and_segments_give_tarfiles_stream_and_the_same_bytes(tmp_path: Path) -> None:
    big = b"".join(b'{"proof":["%d"],"seq":%d}\n' % (n // 7, n) for n in range(40_000))
    entries = {"README.md": b"read me\n", "a/proofs.jsonl": big, "a/records.jsonl": b"", "z.json": b"{}" * 300}
    (tmp_path / "README.md").write_bytes(entries["README.md"])
    (tmp_path / "z.json").write_bytes(entries["z.json"])
    bundles = []
    for cut in (1000, 65_536):
        segments = {
            "a/proofs.jsonl": segment(tmp_path / f"p{cut}", big, cut),
            "a/records.jsonl": segment(tmp_path / f"r{cut}", b"", cut),
        }
        assert segments["a/proofs.jsonl"].size == len(big)
        out = io.BytesIO()
        archive.write(out, [("z.json", tmp_path / "z.json"), ("README.md", tmp_path / "README.md")], segments)
        bundles.append(out.getvalue())
    assert bundles[0] == bundles[1]
    assert gzip.decompress(bundles[0]) == tarfiles(entries)  # gzip checks the CRC-32 and the size
    with pytest.raises(ValueError, match="two files of the same name"):
        archive.write(io.BytesIO(), [("a/proofs.jsonl", tmp_path / "z.json")], segments)
