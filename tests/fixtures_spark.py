"""A real Spark Connect server for the test session, started from the pyspark package.

The server is pyspark's own ``sbin/start-connect-server.sh --wait`` (Spark's
``SparkConnectServer`` on ``local[2]``), on a free loopback port, with its metastore in
memory and its tables in a temporary directory. It is started once, on first use, and
stopped at the end of the session. Without pyspark or Java the Spark tests are skipped,
except under ``CI=true``, where they must run. ``AGGSCHED_TEST_SPARK=sc://host:port``
points them at a server already running instead (saves its start-up when iterating).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT_S = 180
SERVER_CONF = {
    "spark.connect.grpc.binding.address": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.sql.catalogImplementation": "in-memory",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "4096",
}


def spark_home() -> Path | str:
    """The pyspark package directory (a Spark distribution: bin, sbin, jars), or why not."""
    try:
        import pyspark
    except ImportError as exc:
        return f"pyspark is not installed (pip install 'aggsched[spark]'): {exc}"
    home = Path(pyspark.__file__).parent
    if not (home / "sbin" / "start-connect-server.sh").exists():
        return f"{home} has no sbin/start-connect-server.sh"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "Java is not installed (Spark needs a JDK/JRE 17 or newer)"
    return home


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def spark_installed() -> Path:
    """The pyspark package directory; skips without pyspark or Java (fails under CI)."""
    home = spark_home()
    if isinstance(home, str):
        if os.environ.get("CI") == "true":
            pytest.fail(f"Spark is required under CI=true: {home}")
        pytest.skip(home)
    return home


@pytest.fixture(scope="session")
def spark_server(spark_installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``sc://127.0.0.1:<port>`` of the session's Spark Connect server."""
    if os.environ.get("AGGSCHED_TEST_SPARK"):
        yield os.environ["AGGSCHED_TEST_SPARK"]
        return
    home = spark_installed
    work = tmp_path_factory.mktemp("spark-connect")
    port = _free_port()
    conf = {**SERVER_CONF, "spark.connect.grpc.binding.port": str(port),
            "spark.sql.warehouse.dir": str(work / "warehouse")}  # fmt: skip
    args = [arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")]
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOG_DIR": str(work),
        "SPARK_PID_DIR": str(work),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    log = work / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            ["bash", str(home / "sbin" / "start-connect-server.sh"), "--wait",
             "--master", "local[2]", "--driver-memory", "2g", *args],
            cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(port):
            if server.poll() is not None:
                pytest.fail(f"the Spark Connect server exited ({server.returncode}):\n{_tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"the Spark Connect server did not listen within "
                            f"{START_TIMEOUT_S} s:\n{_tail(log)}")  # fmt: skip
            time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
    finally:
        _stop(server)


def _stop(server: subprocess.Popen[bytes]) -> None:
    """The server and everything it started (its own process group)."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
