"""Test helpers for SML repositories (reusable by other test packages).

Import as ``from sml.helpers import copy_repo, add_aggregates`` (``tests/`` is on
``sys.path`` through the root conftest).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

MODEL_FILE = "models/Retail TPCH.yml"


def copy_repo(source: Path, target: Path) -> Path:
    """Copy an SML repository (e.g. the ``sml_tpch`` fixture) to ``target``; returns it."""
    shutil.copytree(source, target)
    return target


def add_aggregates(
    repo_dir: Path, aggregates: Sequence[Mapping[str, Any]], model_file: str = MODEL_FILE
) -> int:
    """Append an ``aggregates:`` list to a model file; returns the line it starts on.

    The original lines are untouched, so line numbers in error messages stay predictable.
    """
    path = repo_dir / model_file
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text += "\n"
    first_line = text.count("\n") + 1
    block = yaml.safe_dump({"aggregates": [dict(a) for a in aggregates]}, sort_keys=False)
    path.write_text(text + block, encoding="utf-8")
    return first_line


def attr(name: str, dimension: str, *path: str, **extra: Any) -> dict[str, Any]:
    """An aggregate attribute entry (``relationships_path`` only when given)."""
    entry: dict[str, Any] = {"name": name, "dimension": dimension}
    if path:
        entry["relationships_path"] = list(path)
    entry.update(extra)
    return entry


def replace_in(repo_dir: Path, rel_path: str, old: str, new: str) -> None:
    """Replace one exact occurrence of ``old`` in a repository file (fails if absent)."""
    path = repo_dir / rel_path
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {rel_path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
