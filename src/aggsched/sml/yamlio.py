"""YAML with line numbers, the quirks AtScale tolerates, ``.env`` files and ``${var}``.

Pure: text in, data out. Errors found here carry a 1-based line and column so the loader
can point the user at the exact character.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

# A run of trailing blanks that contains a tab: PyYAML refuses a tab after a value, AtScale
# does not. Blanks without a tab are left alone (they can matter inside block scalars).
_TRAILING_TAB = re.compile(r"[ \t]*\t[ \t]*$", re.MULTILINE)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.\-]*)\}")
_SNIFF = re.compile(r"^(unique_name|object_type)\s*:\s*(.+?)\s*$", re.MULTILINE)


class YamlSyntaxError(Exception):
    """A document that is not YAML; ``line``/``column`` are 1-based."""

    def __init__(self, message: str, line: int | None, column: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass(frozen=True)
class YamlDoc:
    """A parsed document plus the line of every YAML path in it."""

    file: str
    data: Any
    lines: Mapping[str, int] = field(default_factory=dict)

    def line(self, yaml_path: str) -> int | None:
        """Line of ``yaml_path``, or of its nearest ancestor that has one (1 for the root)."""
        path = yaml_path
        while path:
            if path in self.lines:
                return self.lines[path]
            path = parent_path(path)
        return 1


def child_path(parent: str, key: str | int) -> str:
    """``aggregates`` + 0 -> ``aggregates[0]``; ``aggregates[0]`` + ``name`` -> dotted."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else str(key)


def parent_path(path: str) -> str:
    """Inverse of :func:`child_path` (for line look-ups of missing keys)."""
    if path.endswith("]"):
        return path[: path.rindex("[")]
    return path.rpartition(".")[0]


def clean_text(text: str) -> str:
    """Remove trailing whitespace runs containing a tab; line numbers stay the same."""
    return _TRAILING_TAB.sub("", text)


def decode(raw: bytes) -> str:
    """UTF-8 (with or without BOM); raises :class:`YamlSyntaxError` on bad bytes."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlSyntaxError(f"file is not UTF-8 ({exc.reason})", line, None) from exc


def parse_yaml(file: str, raw: bytes) -> YamlDoc:
    """Parse one document, recording the line of every mapping key and list item."""
    text = clean_text(decode(raw))
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        if mark is None:
            raise YamlSyntaxError(message, None, None) from exc
        raise YamlSyntaxError(message, mark.line + 1, mark.column + 1) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(str(exc), None, None) from exc
    finally:
        loader.dispose()
    lines: dict[str, int] = {}
    if node is not None:
        _record_lines(node, "", lines)
    return YamlDoc(file, data, lines)


def _record_lines(node: yaml.Node, path: str, lines: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            sub = child_path(path, key_node.value)
            lines.setdefault(sub, key_node.start_mark.line + 1)
            _record_lines(value_node, sub, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            sub = child_path(path, index)
            lines.setdefault(sub, item.start_mark.line + 1)
            _record_lines(item, sub, lines)


def sniff_identity(raw: bytes) -> tuple[str | None, str | None]:
    """Best-effort ``(unique_name, object_type)`` of a document that does not parse."""
    text = raw.decode("utf-8", errors="replace")
    found: dict[str, str] = {}
    for match in _SNIFF.finditer(text):
        found.setdefault(match.group(1), match.group(2).strip("'\""))
    return found.get("unique_name"), found.get("object_type")


def parse_dotenv(text: str) -> dict[str, str]:
    """``KEY=value`` lines (``export``, comments, blank lines and quotes allowed)."""
    result: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        result[key] = value
    return result


def substitute(value: str, variables: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace ``${name}``; returns the new text and the names that had no value."""
    missing: list[str] = []

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in variables:
            return variables[name]
        missing.append(name)
        return match.group(0)

    return _VAR.sub(repl, value), missing
