"""The advisor on real DuckDB and PostgreSQL: it learns aggregates from the queries users
ran, builds them, answers the same queries from them (equal to the base tables), keeps
to its budgets, records its runs and retires what nobody uses. Learning, answering and
sizing also run on Spark (the rest is warehouse-independent bookkeeping)."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from aggsched.engine.advisor import Advisor, AdvisorOptions
from aggsched.engine.builds import BatchRunner, build_now
from aggsched.engine.publish import Change, publish_path
from aggsched.engine.queries import QueryService
from aggsched.examples import TPCH_DUCKDB
from aggsched.planning.plan import BatchType
from aggsched.planning.query import AttributeRef, Condition, Query
from aggsched.store import Store, aggregates, batches, catalog, org_settings
from aggsched.store.models import (
    BatchStatus,
    BuildBatch,
    DefinitionSubtype,
    DefinitionType,
    InstanceStatus,
)
from aggsched.warehouse import open_warehouse
from engine.test_engine_builds import WAREHOUSES

NOW = datetime.now(UTC)
HEAVY = Query(("revenue", "quantity"), (AttributeRef("Supplier Region"), AttributeRef("Ship Year")))
OTHER = Query(("revenue",), (AttributeRef("Return Flag"),),
              Condition(AttributeRef("Ship Mode"), "=", ("AIR",)))  # fmt: skip
ORDERS = Query(("order_total",), (AttributeRef("Order Priority"),))


def plain_example(target: Path) -> Path:
    """The example project without its user-defined aggregates."""
    repo = Path(shutil.copytree(TPCH_DUCKDB, target))
    model = repo / "models" / "sales.yml"
    doc = yaml.safe_load(model.read_text())
    doc.pop("aggregates")
    model.write_text(yaml.safe_dump(doc, sort_keys=False))
    return repo


class Env:
    def __init__(self, tmp_path: Path, url: str) -> None:
        self.store = Store.open(f"sqlite:///{tmp_path / 'meta.db'}")
        self.url = url
        self.schema = f"as_agg_{uuid.uuid4().hex[:8]}"
        with self.store.session() as s:
            for name in ("tpch", "calendar"):
                catalog.upsert_connection(s, "default", name, url, aggregate_schema=self.schema)
            org_settings.set_setting(s, "default", "aggregates.instance.drop.graceSeconds", "0")
        self.repo = plain_example(tmp_path / "repo")
        self.cube = publish_path(self.store, self.repo).cubes["Sales"]
        self.runner = BatchRunner(self.store, heartbeat_seconds=0.2)
        self.build(BatchType.MATERIALIZE_PENDING)
        self.queries = QueryService(self.store)

    def build(self, kind: BatchType = BatchType.MATERIALIZE_PENDING):
        report = build_now(self.store, self.runner, "default", self.cube, kind)
        assert report.status is BatchStatus.DONE, report.message
        return report

    def workload(self, times: dict[Query, int]) -> None:
        for query, n in times.items():
            for _ in range(n):
                self.queries.run("default", self.cube, query)

    def definitions(self) -> dict[str, object]:
        with self.store.session() as s:
            found = {d.unique_name: d for d in aggregates.cube_definitions(s, self.cube)}
            s.expunge_all()
        return found

    def close(self) -> None:
        self.queries.close()
        self.store.dispose()


@pytest.fixture(params=["duckdb", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path):
    url = request.getfixturevalue(f"tpch_{request.param}")
    e = Env(tmp_path, url)
    yield e
    e.close()


# DuckDB and PostgreSQL: on Spark the same engine code builds and answers (the build and
# query tests run there) and its size estimates are checked below; this whole loop would
# cost the suite over a minute on Spark.
@pytest.mark.parametrize("env", ["duckdb", "postgres"], indirect=True)
def test_learns_builds_and_answers_from_demand_defined_aggregates(env: Env) -> None:
    env.workload({HEAVY: 8, OTHER: 4, ORDERS: 2})
    advisor = Advisor(env.store)
    dry, dry_batch = advisor.advise_and_record("default", env.cube, apply=False)
    assert dry.proposals and not dry.applied
    assert all(p.definition_id is None for p in dry.proposals)
    assert not any(n.startswith("demand_") for n in env.definitions())  # a dry run
    heavy_grain = {("Supplier Region", ("lineitem_supplier", "supplier_geography")),
                   ("Ship Year", ("lineitem_ship_date",))}  # fmt: skip
    covering = [p for p in dry.proposals if heavy_grain <= set(p.attributes)]
    assert covering and covering[0].benefit > 0 and len(covering[0].queries) >= 8

    report, batch_id = advisor.advise_and_record("default", env.cube, apply=True)
    assert report.queued_batch is not None
    made = {n: d for n, d in env.definitions().items() if n.startswith("demand_")}
    assert set(made) == {p.name for p in report.proposals}
    for d in made.values():
        assert d.type == DefinitionType.SYSTEM_DEFINED.value
        assert d.subtype == DefinitionSubtype.DEMAND_DEFINED.value
        assert d.justification["query_count"] >= 1 and d.justification["benefit"] > 0
    with env.store.session() as s:
        run = batches.get_batch(s, batch_id)
        assert run.batch_type == BatchType.ADVISOR.value and run.status == "done"
        assert {p["name"] for p in run.details["proposals"]} == set(made)
        assert batches.get_batch(s, dry_batch).details["applied"] is False
    # the queued batch builds them; the same queries are now answered from them, equally
    with env.store.session() as s:
        assert batches.get_batch(s, report.queued_batch).status == "pending"
    env.build()
    for query in (HEAVY, OTHER, ORDERS):
        ours = env.queries.run("default", env.cube, query)
        base = env.queries.run("default", env.cube, query, use_aggregates=False)
        assert sorted(ours.rows, key=repr) == sorted(base.rows, key=repr)
    served = env.queries.run("default", env.cube, HEAVY).served_by[0]
    assert served.kind == "aggregate" and served.definition.startswith("demand_")


def test_budgets_existing_aggregates_count(env: Env) -> None:
    env.workload({HEAVY: 5, OTHER: 5, ORDERS: 5})
    existing = len([d for d in env.definitions().values() if not d.removed_at])
    options = AdvisorOptions(max_per_cube=existing + 1)
    report = Advisor(env.store).advise("default", env.cube, options=options)
    assert len(report.proposals) == 1  # the system aggregates already use the rest
    none = Advisor(env.store).advise("default", env.cube, options=AdvisorOptions(max_rows=1))
    assert none.proposals == []


@pytest.mark.parametrize("env", WAREHOUSES, indirect=True)
def test_size_estimates_are_close_to_the_truth(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Candidates are sized without building them: HyperLogLog on DuckDB (here first over
    a sample of ~10,000 of the 60,000 line items, the grains it cannot settle counted again
    over all), a sample (~15,000) scaled by the GEE estimator on PostgreSQL; within a
    factor of 2 of the real row counts."""
    from aggsched.planning import estimate

    monkeypatch.setattr(estimate, "SAMPLE_ROWS", 15_000)
    monkeypatch.setattr(estimate, "APPROX_SAMPLE_ROWS", 10_000)
    env.workload({HEAVY: 3, OTHER: 3})
    advisor = Advisor(env.store)
    report = advisor.advise("default", env.cube, apply=True)
    env.build()
    with env.store.session() as s:
        for proposal in report.proposals:
            (d,) = [
                x
                for x in aggregates.cube_definitions(s, env.cube)
                if x.unique_name == proposal.name
            ]
            actual = aggregates.active_instance(s, d.id).number_of_rows
            assert actual / 2 <= proposal.rows <= actual * 2, (proposal.name, proposal.rows, actual)


def test_unused_demand_defined_aggregates_retire_user_defined_never(env: Env) -> None:
    env.workload({HEAVY: 5})
    Advisor(env.store).advise("default", env.cube, apply=True)
    env.build()
    made = [n for n in env.definitions() if n.startswith("demand_")]
    assert made
    later = Advisor(env.store, clock=lambda: NOW + timedelta(days=15))
    dry = later.advise("default", env.cube)
    assert {n for n, _ in dry.retired} == set(made)
    assert all(not env.definitions()[n].removed_at for n in made)  # a dry run
    report = later.advise("default", env.cube, apply=True)
    assert {n for n, _ in report.retired} == set(made)
    for name in made:
        d = env.definitions()[name]
        assert d.removed_at is not None
    with env.store.session() as s:
        for name in made:
            d = env.definitions()[name]
            statuses = {i.status for i in aggregates.definition_instances(s, d.id)}
            assert InstanceStatus.ACTIVE.value not in statuses
    env.build()  # the next batch drops their tables (grace 0) and their views
    with open_warehouse(env.url) as wh:
        views = {v.lower() for v in wh.list_views(env.schema)}
    assert not any(v.startswith("demand_") for v in views)
    # system prediction-defined aggregates are not the advisor's to retire
    assert all(not d.removed_at for n, d in env.definitions().items() if n.startswith("system_"))


def test_republish_keeps_demand_defined_that_resolve(env: Env, tmp_path: Path) -> None:
    env.workload({ORDERS: 4, HEAVY: 2})
    Advisor(env.store).advise("default", env.cube, apply=True)
    made = sorted(n for n in env.definitions() if n.startswith("demand_"))
    again = publish_path(env.store, env.repo)
    changes = {c.definition: c for c in again.changes}
    assert all(changes[n].change is Change.UNCHANGED for n in made)
    # a republish without the order's priority attribute: aggregates using it go, saying why
    dim = env.repo / "dimensions" / "order.yml"
    doc = yaml.safe_load(dim.read_text())
    doc["hierarchies"][0]["levels"][0].pop("secondary_attributes")
    dim.write_text(yaml.safe_dump(doc, sort_keys=False))
    third = publish_path(env.store, env.repo)
    gone = [c for c in third.changes if c.change is Change.REMOVED]
    assert gone and all("no longer resolves" in (c.reason or "") for c in gone)
    assert all("Order Priority" in (c.reason or "") for c in gone)
    kept = [c for c in third.changes if c.definition in made and c.change is Change.UNCHANGED]
    assert len(kept) + len(gone) == len(made)


def test_the_advisor_fires_on_its_schedule(env: Env) -> None:
    """Each organization's advisor fires on `aggregates.system.advise.schedule` (hourly)
    through the scheduler's upkeep jobs, applies its advice and records the run."""
    from aggsched.engine.maintenance import MaintenanceScheduler
    from aggsched.store import maintenance as records

    env.workload({HEAVY: 4})
    now = datetime.now(UTC).replace(microsecond=0)
    clock = {"now": now}
    upkeep = MaintenanceScheduler(env.store, node_id="n1", clock=lambda: clock["now"])
    upkeep.tick()
    with env.store.session() as s:
        due = records.schedule_rows(s)[("default", "advisor")].next_fire_at
    assert due == (now + timedelta(hours=1)).replace(minute=0, second=0)
    clock["now"] = due + timedelta(seconds=1)
    upkeep.tick()
    upkeep.wait(60)
    with env.store.session() as s:
        history = s.scalars(
            select(BuildBatch).where(BuildBatch.batch_type == BatchType.ADVISOR.value)
        ).all()
        s.expunge_all()
    (run,) = history
    assert run.status == "done" and run.details["applied"] is True
    assert run.requested_by == "advisor schedule '0 0 * * * ?' (UTC)"
    assert any(n.startswith("demand_") for n in env.definitions())
