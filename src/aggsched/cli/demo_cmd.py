"""`aggsched demo`: set up the demo installation (or reuse it) and serve it."""

from __future__ import annotations

import typer

from aggsched.cli.common import console, styled
from aggsched.cli.server_cmd import run_server
from aggsched.config import Settings
from aggsched.demo import DEMO_SCALE, WAREHOUSES, curl_examples, prepare_demo


def demo(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on."),
    scale: float = typer.Option(DEMO_SCALE, "--scale", min=0.001, help="TPC-H scale factor."),
    setup_only: bool = typer.Option(False, "--setup-only", help="Prepare, print, do not serve."),
    warehouse: str = typer.Option(
        "duckdb",
        "--warehouse",
        help="duckdb (a file) or spark (in-process Spark: needs aggsched[spark] and Java 17).",
    ),
) -> None:
    """Set up the demo (TPC-H in DuckDB or Spark, example project, schedule, admin) and
    serve it.

    A second run reuses what exists.
    """
    if warehouse not in WAREHOUSES:
        raise typer.BadParameter(
            f"expected one of {', '.join(WAREHOUSES)}", param_hint="--warehouse"
        )
    settings = Settings()
    info = prepare_demo(
        settings, scale=scale, say=lambda text: console.print(text), warehouse=warehouse
    )
    base = f"http://{host}:{port}"

    def banner() -> None:
        where = f" on {base}  (data in {settings.home})"
        console.print(styled("\n", ("aggsched demo", "bold"), where))
        user, password = (info.username, "bold"), (info.password, "bold")
        console.print(styled("  user ", user, ", password ", password))
        console.print(f"  warehouse {info.warehouse_url}; cube Sales {info.cube_id}")
        console.print(f"  API docs: {base}/docs\n  try:")
        for line in curl_examples(info, base):
            console.print(f"    {line}", soft_wrap=True)
        console.print()

    if setup_only:
        banner()
        return
    run_server(settings, host, port, on_ready=banner)


def register(app: typer.Typer) -> None:
    app.command()(demo)
