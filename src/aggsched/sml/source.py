"""The only I/O of ``aggsched.sml``: read a folder, ``.zip`` or ``.tar.gz`` into memory.

Archives are read from a stream (an upload spooled to disk, a file), member by member,
within ``ArchiveLimits``: member count, bytes per member and bytes in all.

Archives often wrap the repository in one top folder (``sml-tpch/catalog.yml``); that
folder is stripped so paths are always relative to the repository root.
"""

from __future__ import annotations

import io
import lzma
import os
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from aggsched.sml.loader import LoadResult, load_repository

MAX_FILE_BYTES = 20 * 1024 * 1024
"""Refuse absurdly large members (a repository is YAML, not data)."""

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may expand to. A 50 MB zip of zeros expands to about 50 GB, so the
    declared sizes are not trusted: the bytes actually extracted are counted."""

    max_member_bytes: int = MAX_FILE_BYTES
    max_total_bytes: int = 200 * 1024 * 1024
    max_members: int = 10_000


class SourceError(Exception):
    """The path cannot be read as an SML repository (missing, unsafe or bad archive)."""


class ArchiveFormatError(SourceError):
    """The bytes are neither a zip nor a tar archive (or a damaged one)."""


def _safe_member(name: str) -> str | None:
    """Normalise an archive member name; None for unsafe or irrelevant entries."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        return None
    text = str(path)
    return None if text in ("", ".") else text.removeprefix("./")


def read_folder(root: Path) -> dict[str, bytes]:
    """Every regular file below ``root`` (symlinks are not followed out of it)."""
    files: dict[str, bytes] = {}
    base = root.resolve()
    for path in sorted(root.rglob("*")):
        if not path.is_file() or not path.resolve().is_relative_to(base):
            continue
        files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


class _Budget:
    """Counts members and extracted bytes against the limits while an archive is read."""

    def __init__(self, limits: ArchiveLimits) -> None:
        self.limits = limits
        self.members = 0
        self.total = 0

    def member(self, name: str, declared_size: int) -> None:
        """One more member, refused early when its header already declares too much."""
        self.members += 1
        if self.members > self.limits.max_members:
            raise SourceError(f"the archive holds more than {self.limits.max_members} files")
        if declared_size > self.limits.max_member_bytes:
            raise SourceError(f"{name}: member larger than {self.limits.max_member_bytes} bytes")

    def skip(self, size: int) -> None:
        """Count a member that is not kept but whose data a compressed stream must still
        decompress to get past it."""
        self.total += size
        self._check_total()

    def _check_total(self) -> None:
        if self.total > self.limits.max_total_bytes:
            raise SourceError(
                f"the archive expands to more than {self.limits.max_total_bytes} bytes"
            )

    def read(self, name: str, source: BinaryIO) -> bytes:
        """The member's bytes, read in chunks and refused as soon as a limit is passed."""
        limit = self.limits.max_member_bytes
        parts: list[bytes] = []
        size = 0
        while chunk := source.read(_CHUNK):
            size += len(chunk)
            self.total += len(chunk)
            if size > limit:
                raise SourceError(f"{name}: member larger than {limit} bytes")
            self._check_total()
            parts.append(chunk)
        return b"".join(parts)


_EOCD = b"PK\x05\x06"

# what a damaged or hostile archive makes tarfile, zipfile and the decompressors raise
_FORMAT_ERRORS = (
    tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error,
    lzma.LZMAError, NotImplementedError, RuntimeError,
)  # fmt: skip


def _zip_entry_count(stream: BinaryIO) -> int | None:
    """The entry count the zip's end record declares, read before ``zipfile`` parses (and
    keeps in memory) the whole central directory; None when it cannot tell (zip64)."""
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    tail_size = min(size, 22 + 65535)
    stream.seek(size - tail_size)
    tail = stream.read(tail_size)
    stream.seek(0)
    at = tail.rfind(_EOCD)
    if at < 0 or at + 22 > len(tail):
        return None
    count = struct.unpack("<H", tail[at + 10 : at + 12])[0]
    return None if count == 0xFFFF else int(count)


def read_zip(data: bytes | BinaryIO, limits: ArchiveLimits | None = None) -> dict[str, bytes]:
    """Members of a zip archive (directories and unsafe paths skipped), within ``limits``."""
    budget = _Budget(limits or ArchiveLimits())
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    declared = _zip_entry_count(stream)
    if declared is not None and declared > budget.limits.max_members:
        raise SourceError(f"the archive holds more than {budget.limits.max_members} files")
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(stream) as archive:
        for info in archive.infolist():
            budget.member(info.filename, info.file_size)
            name = _safe_member(info.filename)
            if info.is_dir() or name is None:
                continue
            with archive.open(info) as member:
                files[name] = budget.read(info.filename, member)
    return files


def read_tar(data: bytes | BinaryIO, limits: ArchiveLimits | None = None) -> dict[str, bytes]:
    """Regular-file members of a (possibly compressed) tar archive, within ``limits``.

    Members are visited as the archive streams (never listed up front), so an archive of
    millions of entries stops at the member limit; the data of members that are skipped
    counts too, since a compressed stream is decompressed to get past it."""
    budget = _Budget(limits or ArchiveLimits())
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=stream, mode="r:*") as archive:
        for member in archive:
            budget.member(member.name, member.size)
            name = _safe_member(member.name)
            extracted = archive.extractfile(member) if member.isfile() and name else None
            if extracted is None or name is None:
                budget.skip(member.size)
                continue
            files[name] = budget.read(member.name, extracted)
    return files


def read_archive(stream: BinaryIO, limits: ArchiveLimits | None = None) -> dict[str, bytes]:
    """A seekable ``.zip`` or ``.tar(.gz|.bz2|.xz)`` stream -> repository-relative files;
    ``SourceError`` when it is neither or passes a limit."""
    try:
        if zipfile.is_zipfile(stream):
            stream.seek(0)
            return strip_common_root(read_zip(stream, limits))
        stream.seek(0)
        return strip_common_root(read_tar(stream, limits))
    except _FORMAT_ERRORS as exc:
        raise ArchiveFormatError(f"not a zip or tar archive ({exc})") from exc


def strip_common_root(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """Re-root at the folder holding ``catalog.yml`` when it is not at the top."""
    if "catalog.yml" in files or "catalog.yaml" in files:
        return dict(files)
    catalogs = sorted(
        (p for p in files if PurePosixPath(p).name in ("catalog.yml", "catalog.yaml")),
        key=lambda p: p.count("/"),
    )
    if not catalogs:
        return dict(files)
    prefix = str(PurePosixPath(catalogs[0]).parent) + "/"
    return {p[len(prefix) :]: b for p, b in files.items() if p.startswith(prefix)}


def read_source(path: Path) -> dict[str, bytes]:
    """A folder, ``.zip``, ``.tar``, ``.tar.gz``/``.tgz`` -> {relative path: bytes}."""
    if path.is_dir():
        return strip_common_root(read_folder(path))
    if not path.is_file():
        raise SourceError(f"{path}: no such file or directory")
    with path.open("rb") as stream:
        try:
            return read_archive(stream)
        except ArchiveFormatError as exc:
            cause = exc.__cause__
            raise SourceError(f"{path}: not a folder, zip or tar archive ({cause})") from exc
        except SourceError as exc:
            raise SourceError(f"{path}: {exc}") from exc


def load_path(path: Path, env: Mapping[str, str] | None = None) -> LoadResult:
    """Read and load an SML repository; ``env`` defaults to ``os.environ``."""
    return load_repository(read_source(Path(path)), os.environ if env is None else env)
