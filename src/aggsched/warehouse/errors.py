"""Errors raised by warehouse adapters.

The build engine records failures per step, so every error keeps the engine's own message
and the SQL that failed, and says whether a retry could help (``transient``).
"""

from __future__ import annotations


class WarehouseError(Exception):
    """A statement or connection failed in the warehouse.

    ``message`` is the engine's text, ``sql`` the statement (``None`` for connection
    problems), ``transient`` True when retrying the same work later may succeed.
    """

    def __init__(self, message: str, sql: str | None = None, *, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.sql = sql
        self.transient = transient

    def __str__(self) -> str:
        return self.message


class WarehouseConfigError(WarehouseError, ValueError):
    """A warehouse URL or setting is unusable (unknown scheme, unknown ``${VAR}``, ...).

    A ``WarehouseError`` too, so a build fails one aggregate for it, not the batch."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class QueryError(WarehouseError):
    """The engine rejected the SQL: syntax error, missing table, type error, constraint..."""


class WarehouseConnectionError(WarehouseError):
    """The connection could not be opened or was lost; always transient."""

    def __init__(self, message: str, sql: str | None = None) -> None:
        super().__init__(message, sql, transient=True)


class QueryCancelled(WarehouseError):
    """The running statement was interrupted by ``Warehouse.cancel()`` (or by an operator)."""


class QueryTimeout(WarehouseError):
    """The statement ran longer than the ``timeout`` given to ``execute``."""
