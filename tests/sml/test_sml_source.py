"""Folders, zip and tar.gz archives of the same repository load identically."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from aggsched.sml import LoadResult, SourceError, load_path, read_source
from sml.helpers import add_aggregates, attr, copy_repo

AGG = {
    "unique_name": "ship_year",
    "label": "Ship year",
    "metrics": ["m_Revenue_sum"],
    "attributes": [attr("Year", "Date Dimension", "lineitem_Date_Dimension_ItemShip")],
}


@pytest.fixture(scope="module")
def repo(sml_tpch: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = copy_repo(sml_tpch, tmp_path_factory.mktemp("src") / "sml-tpch")
    add_aggregates(target, [AGG])
    return target


def make_zip(repo: Path, target: Path, prefix: str) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(repo.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(repo).as_posix())
    return target


def make_tar(repo: Path, target: Path, prefix: str) -> Path:
    with tarfile.open(target, "w:gz") as archive:
        for path in sorted(repo.rglob("*")):
            if path.is_file():
                archive.add(path, prefix + path.relative_to(repo).as_posix())
    return target


def assert_same(a: LoadResult, b: LoadResult) -> None:
    assert a.errors == b.errors == []
    assert a.unwrap() == b.unwrap()
    specs_a = a.models["Retail TPCH"].aggregates
    specs_b = b.models["Retail TPCH"].aggregates
    assert specs_a == specs_b and len(specs_a) == 1


@pytest.mark.parametrize("prefix", ["", "sml-tpch/", "./"])
def test_zip_loads_like_the_folder(repo: Path, tmp_path: Path, prefix: str) -> None:
    archive = make_zip(repo, tmp_path / "repo.zip", prefix)
    assert read_source(archive) == read_source(repo)
    assert_same(load_path(repo, env={}), load_path(archive, env={}))


@pytest.mark.parametrize("prefix", ["", "sml-tpch/"])
def test_tar_gz_loads_like_the_folder(repo: Path, tmp_path: Path, prefix: str) -> None:
    archive = make_tar(repo, tmp_path / "repo.tar.gz", prefix)
    assert read_source(archive) == read_source(repo)
    assert_same(load_path(repo, env={}), load_path(archive, env={}))


def test_folder_reads_dotenv_and_skips_nothing(repo: Path) -> None:
    files = read_source(repo)
    assert ".env" in files and "catalog.yml" in files
    assert files["datasets/lineitem.yml"] == (repo / "datasets/lineitem.yml").read_bytes()


def test_unsafe_archive_members_are_skipped(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("catalog.yml", "unique_name: c\nobject_type: catalog\n")
        archive.writestr("../evil.yml", "x: 1\n")
        archive.writestr("/abs.yml", "x: 1\n")
    path = tmp_path / "bad.zip"
    path.write_bytes(buffer.getvalue())
    assert set(read_source(path)) == {"catalog.yml"}


def test_unreadable_sources(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        read_source(tmp_path / "missing")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not an archive")
    with pytest.raises(SourceError, match="not a folder, zip or tar"):
        read_source(junk)
