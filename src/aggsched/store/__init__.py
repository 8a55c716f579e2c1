"""The metadata store: the only code that talks to the metadata DB.

``Store.open(url)`` migrates and connects; ``store.session()`` is one transaction; query
functions live in ``catalog``, ``batches``, ``schedules``, ``org_settings`` and ``leases``
and take that session as their first argument, so callers never write SQL.
"""

from aggsched.store.db import Store, normalize_url, upgrade
from aggsched.store.errors import ConflictError, InvalidValueError, NotFoundError, StoreError
from aggsched.store.types import utcnow

__all__ = [
    "ConflictError",
    "InvalidValueError",
    "NotFoundError",
    "Store",
    "StoreError",
    "normalize_url",
    "upgrade",
    "utcnow",
]
