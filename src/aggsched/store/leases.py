"""Named expiring leases: who is the single scheduler node (needed on SQLite, useful on PG).

Acquire is a guarded UPDATE (take it if free, expired or already ours) falling back to an
INSERT ... ON CONFLICT DO NOTHING, so two nodes racing for a new lease cannot both win.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from aggsched.store.models import Lease
from aggsched.store.types import utcnow


def acquire_lease(
    session: Session, name: str, holder: str, ttl: timedelta, now: datetime | None = None
) -> bool:
    """Take or renew lease ``name`` for ``holder`` until now + ``ttl``; True if held."""
    when = now or utcnow()
    expires = when + ttl
    taken = session.execute(
        update(Lease)
        .where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at <= when))
        .values(holder=holder, expires_at=expires)
        .returning(Lease.name)
        .execution_options(synchronize_session=False)
    )
    if taken.first() is not None:
        return True
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    created = session.execute(
        insert(Lease)
        .values(name=name, holder=holder, expires_at=expires)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(Lease.name)
    )
    return created.first() is not None


def release_lease(session: Session, name: str, holder: str) -> bool:
    """Give the lease up (only its holder can); True if it was held by ``holder``."""
    result = session.execute(
        delete(Lease)
        .where(Lease.name == name, Lease.holder == holder)
        .returning(Lease.name)
        .execution_options(synchronize_session=False)
    )
    return result.first() is not None


def lease_holder(session: Session, name: str, now: datetime | None = None) -> str | None:
    """Who holds the lease now (None when free or expired)."""
    lease = session.get(Lease, name, populate_existing=True)
    if lease is None or lease.expires_at <= (now or utcnow()):
        return None
    return lease.holder


def live_holders(session: Session, prefix: str, now: datetime | None = None) -> list[str]:
    """Holders of the unexpired leases whose name starts with ``prefix`` (compared
    literally: ``_`` and ``%`` are not wildcards)."""
    stmt = select(Lease.holder).where(
        Lease.name.startswith(prefix, autoescape=True), Lease.expires_at > (now or utcnow())
    )
    return sorted(session.scalars(stmt))
