"""YAML with line numbers, the quirks AtScale tolerates, ``.env`` files and ``${var}``.

Pure: text in, data out. Errors found here carry a 1-based line and column so the loader
can point the user at the exact character.

Uploaded YAML is untrusted: a document nested thousands of levels deep exhausts Python's
recursion, and a kilobyte of anchors and aliases (``&a [*b, *b, ...]``, the "billion
laughs") expands to billions of nodes for anything that walks the data. So composing is
bounded: nesting (aliases included) beyond ``MAX_DEPTH`` levels, aliases that would add
more than ``MAX_ALIAS_NODES`` nodes, and an alias inside its own anchor are syntax errors at
the line where the bound is crossed, and the line-number walk visits each node once
instead of once per alias.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.\-]*)\}")
# linear: no nested quantifiers over the same characters (a line of spaces must not make
# the engine backtrack quadratically)
_SNIFF = re.compile(r"^(unique_name|object_type)[ \t]*:(.*)$", re.MULTILINE)

MAX_DEPTH = 100
"""Deepest nesting of mappings and sequences accepted (SML needs fewer than 10 levels)."""

MAX_ALIAS_NODES = 100_000
"""Most nodes that aliases may add to a document when expanded (SML rarely uses any)."""

# what a double-quoted scalar can smuggle in as an escape ("\0", "\ud800"): NUL fits in
# no metadata column and no warehouse SQL, and a lone surrogate cannot even be encoded
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


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
    """Remove trailing runs of blanks that contain a tab (PyYAML refuses a tab after a
    value, AtScale does not); blanks without a tab are left alone (they can matter inside
    block scalars). Line numbers stay the same.

    A loop, not a regular expression: ``[ \t]*\t[ \t]*$`` backtracks cubically on a long
    run of blanks that does not end its line (4,000 tabs took a minute).
    """
    lines = text.split("\n")
    for index, line in enumerate(lines):
        body = line.removesuffix("\r")
        kept = body.rstrip(" \t")
        if "\t" in body[len(kept) :]:
            lines[index] = kept + line[len(body) :]
    return "\n".join(lines)


def decode(raw: bytes) -> str:
    """UTF-8 (with or without BOM); raises :class:`YamlSyntaxError` on bad bytes."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlSyntaxError(f"file is not UTF-8 ({exc.reason})", line, None) from exc


class _BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` whose composer refuses deep nesting and alias expansion past the
    bounds, before anything recurses into or expands them.

    For each composed node it keeps the size and height of its *expanded* subtree, so an
    alias costs what its anchor would cost if it were written out.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._alias_nodes = 0
        self._size: dict[int, int] = {}
        self._height: dict[int, int] = {}

    def fetch_flow_collection_start(self, token_class: type[yaml.Token]) -> None:
        """Stop deep flow nesting (``[[[[...``) in the scanner already: its look-ahead for
        simple keys costs the nesting depth per token, quadratic before composing starts."""
        if self.flow_level >= MAX_DEPTH:
            raise _bound_error(f"nested deeper than {MAX_DEPTH} levels", self.get_mark())
        super().fetch_flow_collection_start(token_class)  # type: ignore[misc]

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            self._count_alias(node, event)
            return node
        nests = isinstance(event, yaml.CollectionStartEvent)
        if nests and self._depth >= MAX_DEPTH:
            raise _bound_error(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        self._depth += nests
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= nests
        self._measure(node)
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """Values PyYAML's constructors fail on with Python errors (``2024-02-30``, an
        integer of 5,000 digits, ``!!int x``) become errors at the value's line."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, TypeError) as exc:
            problem = f"invalid {node.tag.rpartition(':')[2]} value ({exc})"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from exc

    def _count_alias(self, node: yaml.Node, event: yaml.Event) -> None:
        size = self._size.get(id(node))
        if size is None:  # the anchor is still open: the alias is inside it
            raise _bound_error(f"alias *{event.anchor} refers to itself", event.start_mark)
        self._alias_nodes += size
        if self._alias_nodes > MAX_ALIAS_NODES:
            raise _bound_error(
                f"aliases expand to more than {MAX_ALIAS_NODES} nodes", event.start_mark
            )
        if self._depth + self._height[id(node)] > MAX_DEPTH:
            raise _bound_error(
                f"alias *{event.anchor} nests deeper than {MAX_DEPTH} levels", event.start_mark
            )

    def _measure(self, node: yaml.Node) -> None:
        if isinstance(node, yaml.ScalarNode):
            bad = _UNSTORABLE.search(node.value)
            if bad:
                problem = f"character U+{ord(bad.group()):04X} (from an escape) is not allowed"
                raise _bound_error(problem, node.start_mark)
            size, height = 1, 0
        else:
            children = _children(node)
            size = 1 + sum(self._size[id(child)] for child in children)
            height = 1 + max((self._height[id(child)] for child in children), default=0)
        self._size[id(node)] = size
        self._height[id(node)] = height


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _bound_error(problem: str, mark: yaml.Mark | None) -> yaml.MarkedYAMLError:
    return yaml.composer.ComposerError(None, None, problem, mark)


def parse_yaml(file: str, raw: bytes) -> YamlDoc:
    """Parse one document, recording the line of every mapping key and list item."""
    text = clean_text(decode(raw))
    try:
        loader = _BoundedLoader(text)
    except yaml.reader.ReaderError as exc:  # a control character (NUL...) in the text
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise YamlSyntaxError(
            f"character U+{exc.character:04X} is not allowed", line, column
        ) from exc
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
        _record_lines(node, "", lines, set())
    return YamlDoc(file, data, lines)


def _record_lines(node: yaml.Node, path: str, lines: dict[str, int], seen: set[int]) -> None:
    """Lines of the paths below ``node``. A node reached again through an alias is not
    walked again: the alias's path gets the line of its anchor, and paths below it fall
    back to that line (``YamlDoc.line``)."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            sub = child_path(path, key_node.value)
            lines.setdefault(sub, key_node.start_mark.line + 1)
            _record_lines(value_node, sub, lines, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            sub = child_path(path, index)
            lines.setdefault(sub, item.start_mark.line + 1)
            _record_lines(item, sub, lines, seen)


def sniff_identity(raw: bytes) -> tuple[str | None, str | None]:
    """Best-effort ``(unique_name, object_type)`` of a document that does not parse."""
    text = raw.decode("utf-8", errors="replace")
    found: dict[str, str] = {}
    for match in _SNIFF.finditer(text):
        value = match.group(2).strip()
        if value:
            found.setdefault(match.group(1), value.strip("'\""))
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
