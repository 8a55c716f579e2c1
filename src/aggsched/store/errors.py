"""Errors raised by the store, so callers (API, engine) can map them without knowing SQL.

The API turns ``NotFoundError`` into 404 and ``ConflictError``/``InvalidValueError`` into
400/409; database driver exceptions never leak past the store for the cases named here.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class NotFoundError(StoreError, LookupError):
    """The named object does not exist (or not in the organization asked about)."""


class ConflictError(StoreError):
    """The change breaks a uniqueness rule (duplicate name, double fire, second active)."""


class InvalidValueError(StoreError, ValueError):
    """A value is outside what the schema allows (unknown status, bad setting value)."""
