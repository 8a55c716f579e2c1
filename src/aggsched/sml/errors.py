"""Diagnostics for SML loading: one error type, located by file, YAML path and line.

Every problem found in a repository becomes an :class:`SmlError` instead of an exception,
so a publish can report *all* problems of a repository at once and a user can fix them in
one pass rather than one per attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SmlError:
    """One problem in an SML repository.

    ``file`` is the repository-relative path, ``yaml_path`` the path inside the document
    (``aggregates[0].attributes[1].name``; empty for the whole file), ``line`` and
    ``column`` are 1-based (None when unknown).
    """

    file: str
    yaml_path: str
    line: int | None
    message: str
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.yaml_path:
            return f"{where}: {self.yaml_path}: {self.message}"
        return f"{where}: {self.message}"


class SmlLoadError(Exception):
    """Raised by callers that want an exception instead of a result (see ``LoadResult``)."""

    def __init__(self, errors: list[SmlError]) -> None:
        self.errors = list(errors)
        lines = "\n".join(f"  {e}" for e in self.errors)
        super().__init__(f"{len(self.errors)} SML error(s):\n{lines}")


@dataclass
class Diagnostics:
    """Collects errors and warnings while a repository is loaded (never raises)."""

    errors: list[SmlError] = field(default_factory=list)
    warnings: list[SmlError] = field(default_factory=list)

    def error(self, file: str, yaml_path: str, line: int | None, message: str) -> None:
        """Record a problem that makes the repository unpublishable."""
        self.errors.append(SmlError(file, yaml_path, line, message))

    def warn(self, file: str, yaml_path: str, line: int | None, message: str) -> None:
        """Record a problem that does not stop the repository from publishing."""
        self.warnings.append(SmlError(file, yaml_path, line, message))
