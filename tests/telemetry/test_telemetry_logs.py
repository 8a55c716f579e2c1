"""Structured logs: JSON lines that carry the ids in scope — request id, organization,
batch, schedule job, node — from a real uvicorn server (its access log included), a real
build and a real schedule fire."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from aggsched.engine.builds import BatchRunner
from aggsched.engine.scheduler import fire_due
from aggsched.store import catalog, queue, utcnow
from aggsched.telemetry import configure_logging, log_context
from aggsched.telemetry.logs import reset_logging
from api.api_helpers import build_env
from engine.tpch_project import AGGREGATES, make_repo, publish_tpch
from scheduler.sched_helpers import add_schedule


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("json", "INFO", node_id="node-7", stream=stream)
    yield stream
    reset_logging()


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_json_lines_carry_the_ids_in_scope(
    captured: io.StringIO, tmp_path: Path, sml_tpch: Path, tpch_duckdb: str
) -> None:
    env = build_env(f"sqlite:///{tmp_path / 'meta.db'}", tmp_path, sml_tpch)
    api = next(env)
    try:
        # a request through a real uvicorn server: the access line carries the ids
        port = _free_port()
        config = uvicorn.Config(api.client.app, host="127.0.0.1", port=port,
                                log_level="info", log_config=None)  # fmt: skip
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            reply = httpx.get(f"http://127.0.0.1:{port}/org/default/whoami",
                              headers={**api.headers(), "X-Request-ID": "req-42"})  # fmt: skip
            anonymous = httpx.get(f"http://127.0.0.1:{port}/healthz")
        finally:
            server.should_exit = True
            thread.join(20)
        assert reply.status_code == 200 and reply.headers["x-request-id"] == "req-42"
        generated = anonymous.headers["x-request-id"]
        assert len(generated) == 32

        # a build: its lines carry the batch and the organization
        schema = f"as_agg_{uuid.uuid4().hex[:8]}"
        aggregates = [a for a in AGGREGATES if a["unique_name"] == "customers_by_region"]
        published = publish_tpch(api.store, make_repo(sml_tpch, tmp_path / "repo", aggregates),
                                 tpch_duckdb, schema)  # fmt: skip
        batch_id = published.queued_batches[0]
        runner = BatchRunner(api.store, heartbeat_seconds=0.2)
        with api.store.session() as s:
            assert queue.claim_batch(s, batch_id, runner.worker_id) is not None
        assert runner.run(batch_id).status == "done"

        # a schedule fire whose cube is gone: the warning carries the job id
        cube_id = published.cubes["Retail TPCH"]
        job = add_schedule(api.store, cube_id, "0/5 * * * * ?",
                           after=utcnow() - timedelta(seconds=10))  # fmt: skip
        with api.store.session() as s:
            catalog.mark_cube_deleted(s, catalog.get_cube_by_id(s, "default", cube_id))
        with api.store.session() as s:
            assert fire_due(s, utcnow())[0] == []
        with log_context(batch_id="outer"):  # contexts nest and are restored
            with log_context(batch_id="inner", job_id=None):
                logging.getLogger("aggsched.test").info("inner line")
            logging.getLogger("aggsched.test").info("outer line")
        logging.getLogger("aggsched.test").info("no context")
    finally:
        next(env, None)

    lines = _lines(captured)
    assert all(line["node_id"] == "node-7" and "timestamp" in line for line in lines)
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    whoami = next(line for line in access if line.get("path") == "/org/default/whoami")
    assert whoami["request_id"] == "req-42" and whoami["org_id"] == "default"
    assert whoami["status"] == 200 and whoami["method"] == "GET"
    health = next(line for line in access if line.get("path") == "/healthz")
    assert health["request_id"] == generated and "org_id" not in health

    finished = next(line for line in lines if line["event"] == "batch finished")
    assert finished["batch_id"] == str(batch_id) and finished["org_id"] == "default"
    assert finished["status"] == "done" and finished["batch_type"] == (
        "materialize-pending-instances"
    )
    assert "request_id" not in finished  # nothing leaks from the requests before
    gone = next(line for line in lines if "is gone" in line["event"])
    assert gone["job_id"] == str(job) and gone["org_id"] == "default"
    assert gone["level"] == "warning"
    by_event = {line["event"]: line for line in lines if line["logger"] == "aggsched.test"}
    assert by_event["inner line"]["batch_id"] == "inner" and "job_id" not in by_event["inner line"]
    assert by_event["outer line"]["batch_id"] == "outer"
    assert "batch_id" not in by_event["no context"]


def test_console_format_is_readable(captured: io.StringIO) -> None:
    stream = io.StringIO()
    configure_logging("console", "INFO", node_id="node-8", stream=stream)
    with log_context(batch_id="b-1"):
        logging.getLogger("aggsched.test").warning("something %s", "happened")
    text = stream.getvalue()
    assert "something happened" in text and "batch_id=b-1" in text and "node-8" in text
    assert "\x1b[" not in text  # no colour codes when the stream is not a terminal
    assert not text.lstrip().startswith("{")
