"""Build batches: history paging, claiming (also under concurrency), lifecycle, recovery."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from aggsched.store import ConflictError, InvalidValueError, NotFoundError, Store
from aggsched.store import api_views as views
from aggsched.store import batches as b

T0 = datetime(2024, 6, 1, 8, tzinfo=UTC)


def _queue(store: Store, cube, n: int, **kw) -> list[uuid.UUID]:
    with store.session() as session:
        return [
            b.create_batch(
                session, org_id=cube.org_id, project_id=cube.project_id, cube_id=cube.cube_id,
                batch_type=kw.get("batch_type", "materialize-pending-instances"),
                now=kw.get("start", T0) + timedelta(minutes=i),
            ).id
            for i in range(n)
        ]  # fmt: skip


def test_history_is_newest_first_with_total_and_filters(store: Store, cube, cube_factory) -> None:
    other = cube_factory("orders")
    ids = _queue(store, cube, 15)
    other_ids = _queue(store, other, 10, batch_type="full-rebuild", start=T0 + timedelta(hours=1))
    with store.session() as session:

        def history(limit: int = 10, offset: int = 0, **filters):  # type: ignore[no-untyped-def]
            stmt = views.batch_history_stmt(filters.pop("org", "default"), **filters)
            rows = views.batch_history_page(session, stmt, limit, offset)
            return rows, views.count_rows(session, stmt)

        rows, total = history()
        assert total == 25
        assert [r.id for r in rows] == other_ids[::-1]
        rows, _ = history(offset=20)
        assert [r.id for r in rows] == ids[4::-1]
        rows, total = history(limit=3, cube_id=cube.cube_id)
        assert total == 15 and [r.id for r in rows] == ids[:-4:-1]
        _, total = history(batch_type="full-rebuild")
        assert total == 10
        b.cancel_or_request(session, ids[0])
        rows, total = history(status="cancelled")
        assert total == 1 and rows[0].id == ids[0]
        _, total = history(project_id=uuid.uuid4())
        assert total == 0
        assert history(org="elsewhere") == ([], 0)
        with pytest.raises(InvalidValueError, match="offset"):
            history(offset=-1)


def test_unknown_batch_type_is_refused(store: Store, cube) -> None:
    with pytest.raises(InvalidValueError, match="rebuild-everything"), store.session() as s:
        b.create_batch(
            s, org_id="default", project_id=cube.project_id, cube_id=cube.cube_id,
            batch_type="rebuild-everything",
        )  # fmt: skip


def test_claim_takes_oldest_and_skips_cubes_already_building(
    store: Store, cube, cube_factory
) -> None:
    first, second = _queue(store, cube, 2)
    other = _queue(store, cube_factory("orders"), 1, start=T0 + timedelta(hours=1))[0]
    with store.session() as session:
        assert b.find_pending_batch(session, cube.cube_id).id == first
        claimed = b.claim_next_batch(session, "w1", now=T0 + timedelta(hours=2))
        assert (claimed.id, claimed.status, claimed.worker_id) == (first, "inprogress", "w1")
        assert claimed.attempts == 1 and claimed.start_time == T0 + timedelta(hours=2)
    with store.session() as session:
        assert b.claim_next_batch(session, "w2").id == other  # `second` waits: cube busy
        assert b.claim_next_batch(session, "w3") is None
        b.finish_batch(session, first, "done", worker_id="w1", message="3 built")
        assert b.claim_next_batch(session, "w3").id == second


def test_heartbeat_finish_and_cancel(store: Store, cube) -> None:
    running, queued = _queue(store, cube, 2)
    with store.session() as session:
        b.claim_next_batch(session, "w1")
        assert b.heartbeat_batch(session, running, "intruder") is None
        beat = b.heartbeat_batch(session, running, "w1", now=T0 + timedelta(hours=1))
        assert beat.heartbeat_at == T0 + timedelta(hours=1) and not beat.cancel_requested
        assert b.cancel_or_request(session, queued).status == "cancelled"
        assert b.cancel_or_request(session, running).status == "inprogress"
        assert b.heartbeat_batch(session, running, "w1").cancel_requested
        with pytest.raises(ConflictError, match="not in progress"):
            b.finish_batch(session, queued, "done")
        with pytest.raises(InvalidValueError, match="pending"):
            b.finish_batch(session, running, "pending")
        with pytest.raises(ConflictError):
            b.finish_batch(session, running, "done", worker_id="intruder")
        done = b.finish_batch(session, running, "cancelled", worker_id="w1", now=T0)
        assert (done.status, done.end_time) == ("cancelled", T0)
        assert b.heartbeat_batch(session, running, "w1") is None
        with pytest.raises(NotFoundError):
            b.get_batch(session, running, org_id="elsewhere")


def test_stale_batches_are_requeued_then_failed(store: Store, cube) -> None:
    batch_id = _queue(store, cube, 1)[0]
    for attempt in (1, 2):
        with store.session() as session:
            assert b.claim_next_batch(session, f"w{attempt}", now=T0).attempts == attempt
        with store.session() as session:
            changed = b.recover_stale_batches(
                session, stale_before=T0 + timedelta(minutes=1), max_attempts=2
            )
            assert [c.id for c in changed] == [batch_id]
    with store.session() as session:
        batch = b.get_batch(session, batch_id)
        assert batch.status == "failed" and "w2" in batch.message
        assert (
            b.recover_stale_batches(session, stale_before=T0 + timedelta(days=1), max_attempts=2)
            == []
        )


def test_concurrent_claimers_never_share_a_batch(store: Store, cube_factory) -> None:
    cubes = [cube_factory(f"cube_{i}") for i in range(24)]
    expected = {bid for c in cubes for bid in _queue(store, c, 1)}
    claims: list[uuid.UUID] = []
    workers: set[str] = set()
    lock = threading.Lock()
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            start.wait()
            while True:
                with store.session() as session:
                    batch = b.claim_next_batch(session, name)
                    if batch is None:
                        return
                    time.sleep(0.005)  # hold the row lock while others claim
                with lock:
                    claims.append(batch.id)
                    workers.add(name)
                time.sleep(0.01)  # "build" outside the transaction, as a worker does
        except BaseException as exc:  # surfaced below: a thread must not fail silently
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(claims) == len(set(claims)) == 24
    assert set(claims) == expected
    assert len(workers) > 1  # the claims really interleaved
