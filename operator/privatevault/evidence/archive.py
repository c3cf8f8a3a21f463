"""The deterministic ``tar.gz``: the same files give the same bytes, whoever builds them and when.

Entries are regular files only, in byte order of their names, each with mtime 0, uid and gid 0,
no user or group name, mode 0644, in the POSIX ustar format; the gzip member has no file name
and mtime 0, and is compressed by zlib at a fixed level (1: proofs are hashes, which do not
compress, so a higher level costs time for little: level 6 makes a bundle 7 % smaller in 2.3
times the time), as pieces each flushed to a byte boundary: the big files while the bundle is
built (:class:`Deflater`), the rest when it is packed. What still depends on the toolchain is
zlib's output for that level, which has not changed in decades of zlib releases; the tests hold a
golden digest so a change would be seen.

Unpacking (:func:`unpack`) refuses anything but regular files with plain relative names, so a
hostile bundle cannot write outside the folder it is unpacked into.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import shutil
import struct
import tarfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from privatevault.errors import PrivateVaultError

LEVEL = 1
MODE = 0o644
_CHUNK = 1 << 20


class BundleError(PrivateVaultError):
    """A bundle that cannot be read as one: not a tar.gz, or holding entries other than plain files."""


@dataclass(frozen=True)
class Segment:
    """A file of the bundle compressed as it was written (:class:`Deflater`): raw deflate data
    that ends on a byte boundary with no final block, so :func:`write` puts it into the gzip
    stream as it is, with the file's size, CRC-32 and SHA-256 taken on the way."""

    path: Path
    size: int
    crc: int
    sha256: str


class Deflater:
    """Compresses a file's bytes as they are produced, into a :class:`Segment` (one compressor
    per file: its bytes do not depend on how the writes were cut)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._out = path.open("wb")
        self._zip = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._digest = hashlib.sha256()
        self._crc = self._size = 0

    def write(self, data: bytes) -> None:
        self._digest.update(data)
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._out.write(self._zip.compress(data))

    def close(self) -> Segment:
        self._out.write(self._zip.flush(zlib.Z_SYNC_FLUSH))
        self._out.close()
        return Segment(self._path, self._size, self._crc, self._digest.hexdigest())


# The gzip member's header (RFC 1952): deflate, no flags, mtime 0, XFL 4 (the fastest
# compression, as gzip writes for level 1), OS unknown.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"


def write(out: BinaryIO, files: Iterable[tuple[str, Path]], segments: Mapping[str, Segment] | None = None) -> None:
    """Write the ``(name in the bundle, file on disk)`` pairs and the ``segments`` (by name) to
    ``out`` as a deterministic tar.gz.

    The tar stream is tarfile's for the same entries (ustar headers, data padded to 512 bytes,
    two zero blocks, padded to 10 KiB); the gzip member holds it as independently compressed
    pieces, each ending on a byte boundary: the headers and small files compressed here, the
    segments copied as they are, so a section of a million records is not read or compressed
    again. Its CRC-32 is combined from the pieces' (:func:`crc32_combine`).
    """
    segments = dict(segments or {})
    entries: list[tuple[str, Path | Segment]] = [*files, *segments.items()]
    entries.sort(key=lambda pair: pair[0].encode())
    names = [name for name, _ in entries]
    if len(set(names)) != len(names):
        raise ValueError("a bundle cannot hold two files of the same name")
    crc = size = 0

    def piece(chunks: Iterable[bytes]) -> None:
        nonlocal crc, size
        deflate = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        for data in chunks:
            crc, size = zlib.crc32(data, crc), size + len(data)
            out.write(deflate.compress(data))
        out.write(deflate.flush(zlib.Z_SYNC_FLUSH))

    out.write(_GZIP_HEADER)
    for name, item in entries:
        check_name(name)
        info = tarfile.TarInfo(name)
        info.size = item.size if isinstance(item, Segment) else item.stat().st_size
        info.mtime = 0
        info.mode = MODE
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.type = tarfile.REGTYPE
        header = info.tobuf(tarfile.USTAR_FORMAT, tarfile.ENCODING, "surrogateescape")
        padding = b"\0" * (-info.size % tarfile.BLOCKSIZE)
        if isinstance(item, Segment):
            piece([header])
            with item.path.open("rb") as data:
                shutil.copyfileobj(data, out, _CHUNK)
            crc, size = crc32_combine(crc, item.crc, item.size), size + item.size
            if padding:
                piece([padding])
        else:
            with item.open("rb") as data:
                piece(itertools.chain([header], iter(lambda: data.read(_CHUNK), b""), [padding]))
    end = size + 2 * tarfile.BLOCKSIZE
    piece([b"\0" * (2 * tarfile.BLOCKSIZE + -end % tarfile.RECORDSIZE)])
    out.write(zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS).flush(zlib.Z_FINISH))  # the final block
    out.write(struct.pack("<II", crc, size & 0xFFFFFFFF))


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector, row = vector >> 1, row + 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, matrix[n]) for n in range(32)]


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC-32 of ``A + B`` from ``crc32(A)``, ``crc32(B)`` and ``len(B)``: zlib's
    ``crc32_combine``, which Python's zlib does not offer (shifting ``crc1`` over ``length2``
    zero bytes by squaring the CRC's GF(2) operator: O(log length2))."""
    operator = [0xEDB88320] + [1 << n for n in range(31)]  # the CRC over one more zero bit
    for _ in range(3):
        operator = _gf2_square(operator)  # … over one zero byte
    while length2 > 0:
        if length2 & 1:
            crc1 = _gf2_times(operator, crc1)
        length2 >>= 1
        if length2:
            operator = _gf2_square(operator)  # … over twice as many
    return crc1 ^ crc2


def check_name(name: str) -> None:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or str(path) != name or "\\" in name:
        raise BundleError(f"bundle entry {name!r} is not a plain relative path")


def unpack(bundle: Path, into: Path) -> list[str]:
    """Unpack ``bundle`` into the empty folder ``into``; the names, in the archive's order.

    The whole gzip stream is read (its CRC checked) and nothing but zero blocks may follow the
    last entry: no data hides where a tar reader stops looking.
    """
    names: list[str] = []
    try:
        with gzip.open(bundle, "rb") as stream, tarfile.open(fileobj=stream, mode="r:") as tar:
            for member in tar:
                check_name(member.name)
                if not member.isreg():
                    raise BundleError(f"bundle entry {member.name!r} is not a regular file")
                if member.name in names:
                    raise BundleError(f"bundle entry {member.name!r} appears twice")
                names.append(member.name)
                target = into / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None  # a regular file always has data
                with source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink, _CHUNK)
            stream.seek(tar.offset)
            while chunk := stream.read(_CHUNK):
                if chunk.count(0) != len(chunk):
                    raise BundleError(f"{bundle} holds data after its last entry")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise BundleError(f"{bundle} is not a readable tar.gz bundle: {exc}") from exc
    return names


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
