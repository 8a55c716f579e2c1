"""Issue 12 items 7 and 8 at the SML level: bounded YAML (depth, alias expansion) with a
line walk that never expands aliases, linear clean-up, and archives read as a stream
within member, size and count limits."""

from __future__ import annotations

import io
import tarfile
import time
import zipfile

import pytest

from aggsched.sml.objects import parse_grace_period
from aggsched.sml.source import ArchiveLimits, SourceError, read_archive, read_tar, read_zip
from aggsched.sml.yamlio import (
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    YamlSyntaxError,
    clean_text,
    parse_yaml,
    sniff_identity,
)


def _bomb(levels: int, fan: int = 9) -> str:
    lines = ["a0: &a0 [" + ", ".join(["x"] * fan) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]")
    return "\n".join(lines)


def _error(text: str) -> YamlSyntaxError:
    started = time.monotonic()
    with pytest.raises(YamlSyntaxError) as caught:
        parse_yaml("x.yml", text.encode())
    assert time.monotonic() - started < 1.0
    return caught.value


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("a: 1\nb: " + "[" * 20_000 + "]" * 20_000, 2, "nested deeper than"),
        ("a: 1\nb: " + "{c: " * 20_000, 2, "nested deeper than"),
        ("".join("  " * i + "k:\n" for i in range(MAX_DEPTH + 5)), MAX_DEPTH + 1, "nested deeper"),
        (_bomb(9), 6, f"expand to more than {MAX_ALIAS_NODES}"),
        ("a: &a [1, *a]", 1, "refers to itself"),
        ("a: &a {b: {c: *a}}", 1, "refers to itself"),
        ("x: &x " + "[" * 60 + "1" + "]" * 60 + "\ny: " + "[" * 50 + "*x" + "]" * 50, 2, "deeper"),
    ],
)
def test_item07_yaml_bounds_are_errors_at_their_line(text: str, line: int, words: str) -> None:
    error = _error(text)
    assert error.line == line, error.message
    assert words in error.message


def test_item07_nesting_at_the_bound_still_parses() -> None:
    doc = parse_yaml("x.yml", ("a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)).encode())
    assert isinstance(doc.data["a"], list)


def test_item07_line_walk_does_not_expand_aliases() -> None:
    """Five levels of nine aliases (59,049 nodes when expanded, within the bound) parse at
    once, and the line table holds the written paths only."""
    started = time.monotonic()
    doc = parse_yaml("x.yml", _bomb(5).encode())
    assert time.monotonic() - started < 1.0
    assert len(doc.lines) < 60
    assert doc.line("a4") == 5
    assert doc.line("a4[3][2][1]") == 4  # through an alias: the line of its anchor


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('a: "x\\0y"', "U+0000"),
        ('a: "\\ud800"', "U+D800"),
        ("a: 2024-02-30", "invalid timestamp"),
        ("a: " + "1" * 5000, "invalid int"),
        ("a: !!int x", "invalid int"),
    ],
)
def test_item07_unstorable_or_invalid_scalars_are_errors(text: str, words: str) -> None:
    error = _error(text)
    assert error.line == 1 and words in error.message


def test_item07_control_character_in_the_text_is_an_error_at_its_line() -> None:
    error = _error("a: 1\nb: x\x00y\n")
    assert (error.line, error.column) == (2, 5)


def test_slow_paths_are_linear() -> None:
    """Inputs that used to take minutes: a long run of blanks and tabs that does not end
    its line (cubic regex), a long blank tail in an unparsable file and in a grace period
    (quadratic)."""
    started = time.monotonic()
    assert clean_text("a: b" + " \t" * 200_000 + " x\nc: d\t \n") == (
        "a: b" + " \t" * 200_000 + " x\nc: d\n"
    )
    assert sniff_identity(b"object_type: catalog" + b" " * 200_000 + b"x\n")[1] is not None
    with pytest.raises(ValueError, match="invalid grace_period"):
        parse_grace_period("1" + " " * 200_000 + "x")
    with pytest.raises(ValueError, match="longer than"):
        parse_grace_period("999999999999w")
    assert time.monotonic() - started < 1.0


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _tgz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


LIMITS = ArchiveLimits(max_member_bytes=1_000_000, max_total_bytes=1_500_000, max_members=20)


@pytest.mark.parametrize("pack", [_zip, _tgz])
def test_item08_archive_limits(pack) -> None:  # type: ignore[no-untyped-def]
    ok = pack({"catalog.yml": b"a: 1", "b/c.yml": b"b: 2"})
    assert read_archive(io.BytesIO(ok), LIMITS) == {"catalog.yml": b"a: 1", "b/c.yml": b"b: 2"}
    cases = {
        "more than 20 files": {f"f{i}.yml": b"" for i in range(21)},
        "member larger than 1000000": {"big.bin": b"\0" * 1_000_001},
        "expands to more than 1500000": {f"z{i}.bin": b"\0" * 600_000 for i in range(3)},
    }
    for words, files in cases.items():
        with pytest.raises(SourceError, match=words):
            read_archive(io.BytesIO(pack(files)), LIMITS)


def test_item08_zip_entry_count_is_checked_before_the_directory_is_read() -> None:
    many = _zip({f"f{i}": b"" for i in range(30)})
    with pytest.raises(SourceError, match="more than 20 files"):
        read_zip(many, LIMITS)


def test_item08_declared_sizes_are_not_trusted() -> None:
    """A zip member whose header understates its size is not extracted past it (and then
    fails its checksum): a clear error, not 2 MB, let alone gigabytes."""
    data = bytearray(_zip({"x.yml": b"\0" * 2_000_000}))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.infolist()[0]
    # rewrite the central directory's uncompressed size (offset 24 in the record) to 10
    at = data.rfind(b"PK\x01\x02")
    data[at + 24 : at + 28] = (10).to_bytes(4, "little")
    assert info.file_size == 2_000_000
    with pytest.raises(SourceError, match="CRC"):
        read_archive(io.BytesIO(bytes(data)), LIMITS)


def test_item08_tar_stream_is_read_member_by_member(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "repo.tgz"
    path.write_bytes(_tgz({"catalog.yml": b"a: 1"}))
    with path.open("rb") as stream:  # a file on disk, as an upload spooled there
        assert read_tar(stream, LIMITS) == {"catalog.yml": b"a: 1"}
