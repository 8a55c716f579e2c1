"""The only I/O of ``aggsched.sml``: read a folder, ``.zip`` or ``.tar.gz`` into memory.

Archives often wrap the repository in one top folder (``sml-tpch/catalog.yml``); that
folder is stripped so paths are always relative to the repository root.
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from aggsched.sml.loader import LoadResult, load_repository

MAX_FILE_BYTES = 20 * 1024 * 1024
"""Refuse absurdly large members (a repository is YAML, not data)."""


class SourceError(Exception):
    """The path cannot be read as an SML repository (missing, unsafe or bad archive)."""


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


def read_zip(data: bytes) -> dict[str, bytes]:
    """Members of a zip archive (directories and unsafe paths skipped)."""
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            name = _safe_member(info.filename)
            if info.is_dir() or name is None:
                continue
            if info.file_size > MAX_FILE_BYTES:
                raise SourceError(f"{info.filename}: member larger than {MAX_FILE_BYTES} bytes")
            files[name] = archive.read(info)
    return files


def read_tar(data: bytes) -> dict[str, bytes]:
    """Regular-file members of a (possibly compressed) tar archive."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
        for member in archive.getmembers():
            name = _safe_member(member.name)
            if not member.isfile() or name is None:
                continue
            if member.size > MAX_FILE_BYTES:
                raise SourceError(f"{member.name}: member larger than {MAX_FILE_BYTES} bytes")
            extracted = archive.extractfile(member)
            if extracted is not None:
                files[name] = extracted.read()
    return files


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
    data = path.read_bytes()
    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            return strip_common_root(read_zip(data))
        return strip_common_root(read_tar(data))
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise SourceError(f"{path}: not a folder, zip or tar archive ({exc})") from exc


def load_path(path: Path, env: Mapping[str, str] | None = None) -> LoadResult:
    """Read and load an SML repository; ``env`` defaults to ``os.environ``."""
    return load_repository(read_source(Path(path)), os.environ if env is None else env)
