"""The deterministic ``tar.gz``: the same files give the same bytes, whoever builds them and when.

Entries are regular files only, in byte order of their names, each with mtime 0, uid and gid 0,
no user or group name, mode 0644, in the POSIX ustar format; the gzip member has no file name
and mtime 0, and is compressed by zlib at a fixed level (1: proofs are hashes, which do not
compress, so a higher level costs time for little). What still depends on the toolchain is
zlib's output for that level, which has not changed in decades of zlib releases; the tests hold a
golden digest so a change would be seen.

Unpacking (:func:`unpack`) refuses anything but regular files with plain relative names, so a
hostile bundle cannot write outside the folder it is unpacked into.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tarfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from privatevault.errors import PrivateVaultError

LEVEL = 1
MODE = 0o644
_CHUNK = 1 << 20


class BundleError(PrivateVaultError):
    """A bundle that cannot be read as one: not a tar.gz, or holding entries other than plain files."""


def write(out: BinaryIO, files: Iterable[tuple[str, Path]]) -> None:
    """Write the ``(name in the bundle, file on disk)`` pairs to ``out`` as a deterministic tar.gz."""
    entries = sorted(files, key=lambda pair: pair[0].encode())
    names = [name for name, _ in entries]
    if len(set(names)) != len(names):
        raise ValueError("a bundle cannot hold two files of the same name")
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=LEVEL, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        # Files are copied in chunks of a mebibyte (tarfile's 16 KiB, or its stream mode's 10 KiB
        # records, cost a Python call per chunk in gzip, the CRC and the digest): the same bytes.
        tar.copybufsize = _CHUNK  # type: ignore[attr-defined]  # tarfile has it, typeshed not
        for name, path in entries:
            check_name(name)
            info = tarfile.TarInfo(name)
            info.size = path.stat().st_size
            info.mtime = 0
            info.mode = MODE
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            with path.open("rb") as data:
                tar.addfile(info, data)


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
