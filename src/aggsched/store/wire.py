"""Ids and times read as the API's text, without building Python objects per value.

A list endpoint that answers with a thousand rows spends more on turning each driver
value into ``uuid.UUID``/``datetime`` objects and back into strings than on the query
itself. ``uuid_text``/``utc_text`` select a column so that, after ``finish_uuid``/
``finish_utc`` of the same dialect, it is the final text: a UUID in its canonical dashed
form and a time as RFC 3339 UTC with microseconds and ``Z`` (the API's ``timestamp()``
format); NULL stays None.

PostgreSQL renders the text itself (``CAST(... AS TEXT)``, ``to_char``), in C, and the
finishing step is the identity. SQLite already stores both as text (32 hex digits and
naive UTC ``YYYY-MM-DD HH:MM:SS.ffffff``): its columns are read as stored and finished
by string slicing in Python, which measured faster than ``substr``/``||`` in SQLite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

Finish = Callable[[Any], str | None]


class uuid_text(FunctionElement[str]):
    """A UUID column as text (dashed after ``finish_uuid``)."""

    type = String()
    name = "uuid_text"
    inherit_cache = True


class utc_text(FunctionElement[str]):
    """A UTC timestamp column as text (``YYYY-MM-DDTHH:MM:SS.ffffffZ`` after
    ``finish_utc``)."""

    type = String()
    name = "utc_text"
    inherit_cache = True


def _arg(element: FunctionElement[str], compiler: Any, **kw: Any) -> str:
    return str(compiler.process(next(iter(element.clauses)), **kw))


@compiles(uuid_text, "postgresql")
def _uuid_text_pg(element: uuid_text, compiler: Any, **kw: Any) -> str:
    return f"CAST({_arg(element, compiler, **kw)} AS TEXT)"


@compiles(utc_text, "postgresql")
def _utc_text_pg(element: utc_text, compiler: Any, **kw: Any) -> str:
    x = _arg(element, compiler, **kw)
    return f"""to_char({x} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


@compiles(uuid_text)
@compiles(utc_text)
def _as_stored(element: FunctionElement[str], compiler: Any, **kw: Any) -> str:
    return _arg(element, compiler, **kw)  # SQLite: the stored text, finished in Python


def _identity(value: Any) -> str | None:
    return value  # type: ignore[no-any-return]


def _sqlite_uuid(value: str | None) -> str | None:
    if value is None:
        return None
    return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"


def _sqlite_utc(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) == 26:  # 'YYYY-MM-DD HH:MM:SS.ffffff', as SQLAlchemy writes it
        return f"{value[:10]}T{value[11:]}Z"
    fraction = value[20:26].ljust(6, "0")
    return f"{value[:10]}T{value[11:19]}.{fraction}Z"


def finish_uuid(dialect: str) -> Finish:
    """The Python step that completes ``uuid_text`` on ``dialect``."""
    return _sqlite_uuid if dialect == "sqlite" else _identity


def finish_utc(dialect: str) -> Finish:
    """The Python step that completes ``utc_text`` on ``dialect``."""
    return _sqlite_utc if dialect == "sqlite" else _identity
