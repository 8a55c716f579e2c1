"""Typed organization settings and scheduler leases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aggsched.store import InvalidValueError, Store
from aggsched.store import org_settings as st
from aggsched.store.leases import acquire_lease, lease_holder, release_lease

T0 = datetime(2024, 6, 1, 8, tzinfo=UTC)
TTL = timedelta(seconds=30)


def test_settings_have_typed_defaults_and_validate(store: Store) -> None:
    with store.session() as session:
        assert st.get_bool_setting(session, "default", "aggregates.new.build.scheduled") is False
        assert st.get_int_setting(session, "default", "aggregates.batch.max.failures") == 0
        st.set_setting(session, "default", "aggregates.new.build.scheduled", True)
        st.set_setting(session, "default", "aggregates.batch.max.failures", "3")
        with pytest.raises(InvalidValueError, match="integer"):
            st.set_setting(session, "default", "aggregates.batch.max.failures", "many")
        with pytest.raises(InvalidValueError, match="true or false"):
            st.set_setting(session, "default", "aggregates.new.build.scheduled", "yes")
        with pytest.raises(InvalidValueError, match="unknown setting"):
            st.get_setting(session, "default", "aggregates.colour")
        with pytest.raises(InvalidValueError, match="not a true/false"):
            st.get_bool_setting(session, "default", "aggregates.batch.max.failures")
    with store.session() as session:
        assert st.get_setting(session, "default", "aggregates.new.build.scheduled") is True
        assert st.get_setting(session, "default", "aggregates.batch.max.failures") == 3
        everything = st.all_settings(session, "default")
        assert set(everything) == set(st.SETTINGS)
        assert everything["aggregates.batch.retry.maxAttemptsPerAggregate"] == 3


def test_lease_acquire_renew_expire_release(store: Store) -> None:
    with store.session() as session:
        assert acquire_lease(session, "scheduler", "node-a", TTL, now=T0)
    with store.session() as session:
        assert not acquire_lease(
            session, "scheduler", "node-b", TTL, now=T0 + timedelta(seconds=10)
        )
        assert acquire_lease(session, "scheduler", "node-a", TTL, now=T0 + timedelta(seconds=20))
        assert lease_holder(session, "scheduler", now=T0 + timedelta(seconds=45)) == "node-a"
    with store.session() as session:
        assert acquire_lease(session, "scheduler", "node-b", TTL, now=T0 + timedelta(seconds=51))
        assert lease_holder(session, "scheduler", now=T0 + timedelta(seconds=52)) == "node-b"
        assert not release_lease(session, "scheduler", "node-a")
        assert release_lease(session, "scheduler", "node-b")
        assert lease_holder(session, "scheduler", now=T0) is None
