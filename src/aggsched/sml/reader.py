"""Typed, error-collecting access to parsed YAML mappings.

Every getter checks the YAML type and, on a mismatch, records an error with file, YAML
path and line and returns a neutral value, so loading continues and *all* problems are
reported together.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aggsched.sml.errors import Diagnostics, SmlError
from aggsched.sml.yamlio import YamlDoc, child_path, substitute


def type_name(value: object) -> str:
    """YAML-ish name of a Python value's type, for messages."""
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


@dataclass
class LoadContext:
    """State shared by the whole load: variables, diagnostics, pending ``${var}`` issues.

    ``owner`` is the (object kind, unique_name) currently being read; unresolved
    variables are filed under it and judged later ("an error only where it matters").
    """

    variables: Mapping[str, str]
    diags: Diagnostics = field(default_factory=Diagnostics)
    owner: tuple[str, str] = ("", "")
    unresolved: list[tuple[tuple[str, str], SmlError]] = field(default_factory=list)


class MapReader:
    """One YAML mapping of one document, read field by field."""

    def __init__(self, ctx: LoadContext, doc: YamlDoc, data: Mapping[str, Any], path: str):
        self.ctx = ctx
        self.doc = doc
        self.data = data
        self.path = path

    # -- locations and errors ---------------------------------------------------------
    def sub(self, key: str | int) -> str:
        """The YAML path of ``key`` below this mapping."""
        return child_path(self.path, key)

    def line(self, key: str | int | None = None) -> int | None:
        """Line of ``key`` (or of this mapping)."""
        return self.doc.line(self.path if key is None else self.sub(key))

    def error(self, key: str | int | None, message: str) -> None:
        """Record an error located at ``key`` of this mapping."""
        path = self.path if key is None else self.sub(key)
        self.ctx.diags.error(self.doc.file, path, self.doc.line(path), message)

    def warn(self, key: str | int | None, message: str) -> None:
        """Record a warning located at ``key`` of this mapping."""
        path = self.path if key is None else self.sub(key)
        self.ctx.diags.warn(self.doc.file, path, self.doc.line(path), message)

    # -- scalars -----------------------------------------------------------------------
    def str(self, key: str, required: bool = False, subst: bool = True) -> str | None:
        """A string (numbers are accepted as their text); ``${var}`` substituted."""
        value = self.data.get(key)
        if value is None:
            if required:
                self.error(None, f'missing required field "{key}"')
            return None
        if isinstance(value, (bool, dict, list)):
            self.error(key, f"expected a string, got {type_name(value)}")
            return None
        text = value if isinstance(value, str) else str(value)
        return self._substitute(key, text) if subst else text

    def _substitute(self, key: str | int, text: str) -> str:
        result, missing = substitute(text, self.ctx.variables)
        if missing:
            names = ", ".join(f"${{{m}}}" for m in missing)
            err = SmlError(
                self.doc.file, self.sub(key), self.line(key), f"unresolved variable {names}"
            )
            self.ctx.unresolved.append((self.ctx.owner, err))
        return result

    def bool(self, key: str, default: bool = False) -> bool:
        """A boolean; ``'true'``/``'yes'`` strings are accepted as AtScale does."""
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no"}:
            return value.lower() in {"true", "yes"}
        self.error(key, f"expected true or false, got {type_name(value)}")
        return default

    # -- containers --------------------------------------------------------------------
    def items(self, key: str, required: bool = False) -> list[tuple[int, Any]]:
        """The (index, item) pairs of a list field; a missing field is an empty list."""
        value = self.data.get(key)
        if value is None:
            if required:
                self.error(None, f'missing required field "{key}"')
            return []
        if not isinstance(value, list):
            self.error(key, f"expected a list, got {type_name(value)}")
            return []
        return list(enumerate(value))

    def maps(self, key: str, required: bool = False) -> Iterator[MapReader]:
        """Each item of a list of mappings (non-mapping items are errors)."""
        for index, item in self.items(key, required):
            path = self.sub(key)
            if isinstance(item, dict):
                yield MapReader(self.ctx, self.doc, item, child_path(path, index))
            else:
                self.ctx.diags.error(
                    self.doc.file,
                    child_path(path, index),
                    self.doc.line(child_path(path, index)),
                    f"expected a mapping, got {type_name(item)}",
                )

    def strs(self, key: str, required: bool = False) -> tuple[str, ...]:
        """A list of strings (numbers accepted); other items are errors."""
        result: list[str] = []
        reader = MapReader(self.ctx, self.doc, {}, self.sub(key))
        for index, item in self.items(key, required):
            if isinstance(item, (bool, dict, list)) or item is None:
                reader.error(index, f"expected a string, got {type_name(item)}")
            else:
                result.append(reader._substitute(index, str(item)))
        return tuple(result)

    def map(self, key: str, required: bool = False) -> MapReader | None:
        """A nested mapping, or None when absent (or of the wrong type, with an error)."""
        value = self.data.get(key)
        if value is None:
            if required:
                self.error(None, f'missing required field "{key}"')
            return None
        if not isinstance(value, dict):
            self.error(key, f"expected a mapping, got {type_name(value)}")
            return None
        return MapReader(self.ctx, self.doc, value, self.sub(key))
