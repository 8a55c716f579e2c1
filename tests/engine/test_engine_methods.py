"""Every SML calculation method, built into an aggregate and answered from it, equals the
warehouse's own function over the base rows (DuckDB, PostgreSQL and Spark)."""

from __future__ import annotations

import math
import shutil
import uuid
from pathlib import Path

import pytest
import yaml

from aggsched.engine.builds import BatchRunner, build_now
from aggsched.engine.publish import publish_path
from aggsched.engine.queries import QueryService
from aggsched.examples import TPCH_DUCKDB
from aggsched.planning.plan import BatchType
from aggsched.planning.query import AttributeRef, Query
from aggsched.store import Store, catalog
from aggsched.store.models import BatchStatus
from aggsched.warehouse import open_warehouse
from engine.test_engine_builds import WAREHOUSES

METHODS = {  # metric -> (SML calculation method, the warehouse's function over the base)
    "q_sum": ("sum", "SUM(x)"),
    "q_count": ("count non-null", "COUNT(x)"),
    "q_min": ("minimum", "MIN(x)"),
    "q_max": ("maximum", "MAX(x)"),
    "q_avg": ("average", "AVG(x)"),
    "q_var_pop": ("var_pop", "VAR_POP(x)"),
    "q_var_samp": ("var_samp", "VAR_SAMP(x)"),
    "q_std_pop": ("stddev_pop", "STDDEV_POP(x)"),
    "q_std_samp": ("stddev_samp", "STDDEV_SAMP(x)"),
    "q_distinct": ("count distinct", "COUNT(DISTINCT x)"),
    "q_median": ("percentile", "PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY x)"),
    "q_estimated": ("estimated count distinct", None),  # below: per engine
}
DERIVABLE = [m for m in METHODS if m not in ("q_distinct", "q_median", "q_estimated")]


def repo_with_methods(target: Path) -> Path:
    repo = Path(shutil.copytree(TPCH_DUCKDB, target))
    for name, (method, _) in METHODS.items():
        doc = {
            "unique_name": name, "object_type": "metric", "label": name,
            "calculation_method": method, "dataset": "lineitem", "column": "L_QUANTITY",
        }  # fmt: skip
        if method == "percentile":
            doc["named_quantiles"] = "median"
        (repo / "metrics" / f"{name}.yml").write_text(yaml.safe_dump(doc))
    model = repo / "models" / "sales.yml"
    doc = yaml.safe_load(model.read_text())
    doc["metrics"] += [{"unique_name": n} for n in METHODS]
    doc["aggregates"] = [
        {
            "unique_name": "all_methods_by_flag_mode",
            "label": "x",
            "metrics": list(METHODS),
            "attributes": [
                {"name": "Return Flag", "dimension": "Return Flag"},
                {"name": "Ship Mode", "dimension": "Ship Mode"},
            ],
        },
    ]
    model.write_text(yaml.safe_dump(doc, sort_keys=False))
    return repo


@pytest.fixture(params=WAREHOUSES)
def warehouse_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"tpch_{request.param}")


def close(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)  # type: ignore[arg-type]


def test_every_calculation_method_is_built_and_answered_right(
    tmp_path: Path, warehouse_url: str
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'meta.db'}")
    with store.session() as s:
        for name in ("tpch", "calendar"):
            catalog.upsert_connection(
                s, "default", name, warehouse_url, aggregate_schema=f"as_agg_{uuid.uuid4().hex[:6]}"
            )
    cube = publish_path(store, repo_with_methods(tmp_path / "repo")).cubes["Sales"]
    runner = BatchRunner(store, heartbeat_seconds=0.2)
    report = build_now(store, runner, "default", cube, BatchType.MATERIALIZE_PENDING)
    assert report.status is BatchStatus.DONE, report.message
    estimated = (
        "COUNT(DISTINCT x)" if warehouse_url.startswith("postgres") else "APPROX_COUNT_DISTINCT(x)"
    )
    functions = {m: f or estimated for m, (_, f) in METHODS.items()}
    if warehouse_url.startswith("sc:"):
        # Spark's AVG of a DECIMAL(15,2) is a DECIMAL rounded to 6 places; aggsched
        # answers averages in DOUBLE, which Spark's AVG gives over DOUBLE values
        functions["q_avg"] = "AVG(CAST(x AS DOUBLE))"
    service = QueryService(store)
    try:
        with open_warehouse(warehouse_url) as wh:
            for attrs, names in (
                (["Return Flag", "Ship Mode"], list(METHODS)),  # the aggregate's own grain
                (["Return Flag"], DERIVABLE),  # rolled up from its partials
                ([], DERIVABLE),
            ):
                query = Query(tuple(names), tuple(AttributeRef(a) for a in attrs))
                ours = service.run("default", cube, query)
                assert {p.definition for p in ours.served_by} == {"all_methods_by_flag_mode"}
                keys = {"Return Flag": '"L_RETURNFLAG"', "Ship Mode": '"L_SHIPMODE"'}
                group = [keys[a] for a in attrs]
                cols = ", ".join(
                    [*group, *(functions[n].replace("x", '"L_QUANTITY"') for n in names)]
                )
                by = f" GROUP BY {', '.join(group)}" if group else ""
                hand = wh.fetch_all(f'SELECT {cols} FROM "TPCH_SF1"."LINEITEM"{by}')
                assert len(ours.rows) == len(hand)
                expected = {tuple(r[: len(attrs)]): r[len(attrs) :] for r in hand}
                for row in ours.rows:
                    want = expected[tuple(row[: len(attrs)])]
                    for name, got, exp in zip(names, row[len(attrs) :], want, strict=True):
                        assert close(got, exp), (name, attrs, got, exp)
    finally:
        service.close()
        store.dispose()
