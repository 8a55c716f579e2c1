"""The longest value each metadata column (and so each API field) accepts, in one place.

The SQLAlchemy models size their ``String`` columns from these constants and the API
validates its inputs against the same ones, so a value that passes the API always fits
the column: PostgreSQL refuses an over-long ``VARCHAR`` with an error (a 500 if it got that
far), SQLite silently stores it. Changing a number here changes the column type: it needs
a migration (``tests/store/test_store_db.py`` compares models with migrations).

Columns of type ``Text`` have no database limit; their constant is the API's own bound
(URLs and expressions are short; a megabyte of either is an attack or a mistake).

What characters a text column accepts is decided here too (``unsafe_character``):
PostgreSQL refuses NUL in text, no driver can encode a lone surrogate, and control
characters in a name are a mistake or an attack.
"""

from __future__ import annotations

import re

# C0 and C1 control characters, DEL, and lone surrogates (UTF-16 halves that no UTF-8
# encoder, so neither database driver nor JSON response, accepts)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_UNSAFE_BUT_TAB = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")


def unsafe_character(text: str, *, allow_tab: bool = False) -> str | None:
    """What is wrong with ``text`` if it holds a character no stored name may hold
    (``allow_tab`` for expressions: a tab separates Quartz fields)."""
    match = (_UNSAFE_BUT_TAB if allow_tab else _UNSAFE).search(text)
    if match is None:
        return None
    return (
        f"character U+{ord(match.group()):04X} at position {match.start()} is not allowed "
        "(control characters and lone surrogates are refused)"
    )


ORG_ID = 64
"""Organization ids (``orgId`` in every path)."""

NAME = 255
"""User names, connection names, schema names, SML unique names and labels, job paths."""

VERSION = 64
"""A project's SML ``version``."""

DIGEST = 128
"""Hex digests (source digests, definition fingerprints, token hashes)."""

ENUM = 32
"""Enumerated values stored as text (roles, statuses)."""

BATCH_TYPE = 64
"""A batch's ``batchType``."""

TIME_EXPRESSION = 255
"""A schedule's Quartz ``time_expression``."""

TIME_ZONE = 64
"""An IANA zone name (the longest in tzdata has 32 characters)."""

CONNECTION_URL = 4096
"""A warehouse URL (``Text`` column; the API's bound)."""
