"""Metrics are multi-process safe: with ``PROMETHEUS_MULTIPROC_DIR`` set, what several
processes counted is merged into one exposition (as several uvicorn workers or nodes on
one host would share it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

COUNT = (
    "from aggsched import telemetry; "
    "telemetry.query_served('base', 0.2); "
    "telemetry.aggregate_finished('full', 'active', 1.5, 40)"
)
EXPOSE = (
    "import sys; from prometheus_client import generate_latest; "
    "from aggsched.telemetry import registry; "
    "sys.stdout.write(generate_latest(registry()).decode())"
)


def _python(code: str, directory: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_series_of_several_processes_are_merged(tmp_path: Path) -> None:
    for _ in range(3):
        _python(COUNT, tmp_path)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(_python(EXPOSE, tmp_path))
        for s in family.samples
    }
    assert samples[("aggsched_queries_total", (("served_by", "base"),))] == 3
    assert samples[("aggsched_query_duration_seconds_count", (("served_by", "base"),))] == 3
    assert samples[("aggsched_aggregate_rows_built_total", ())] == 120
    key = (
        "aggsched_aggregate_build_duration_seconds_sum",
        (("mode", "full"), ("status", "active")),
    )
    assert samples[key] == 4.5
