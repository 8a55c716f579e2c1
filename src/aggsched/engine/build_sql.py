"""The SQL of one build step: from the base tables or finer aggregates (lattice), a full
CREATE TABLE AS or an incremental partition replacement."""

from __future__ import annotations

from sqlglot import exp

from aggsched.engine.build_context import Sources, Where
from aggsched.planning import naming, sqlgen, watermark
from aggsched.planning.plan import (
    ActiveInstance,
    StepMode,
)
from aggsched.planning.spec import DefinitionSpec
from aggsched.warehouse import (
    sqlbuild,
)


def build_query(
    spec: DefinitionSpec, where: Where, sources: Sources, since: exp.Expression | None
) -> exp.Select:
    """The SELECT that computes the aggregate: each fact's part from its source (a finer
    aggregate) or the base tables; a multi-fact aggregate joins the parts on the grain."""
    parts = spec.components()
    multi = len(parts) > 1
    names = naming.attribute_columns(spec) if multi else None
    queries = []
    for part, source in zip(parts, sources, strict=True):
        if source is None:
            queries.append(
                sqlgen.base_select(part, where.target, since, names=names, presence=multi)
            )
        else:
            table = sqlgen.table(source.key.table, source.key.schema)
            queries.append(
                sqlgen.derived_select(part, source, table, since, names=names, presence=multi)
            )
    return sqlgen.multi_fact_select(spec, queries) if multi else queries[0]


def step_query(
    spec: DefinitionSpec,
    where: Where,
    sources: Sources,
    previous: ActiveInstance | None,
    mode: StepMode,
) -> tuple[exp.Query, exp.Expression | None]:
    """The query of one step, and for an incremental step the first partition it
    recomputes (`watermark - grace`; None for a full build)."""
    since = None
    if mode is StepMode.INCREMENTAL:
        assert previous is not None and previous.watermark is not None and spec.incremental
        threshold = watermark.threshold(previous.watermark, spec.incremental.grace_seconds)
        since = sqlgen.since_expr(spec, threshold, where.target)
    return build_query(spec, where, sources, since), since


def partition_columns(spec: DefinitionSpec) -> list[str]:
    """The incremental partition column of an aggregate table (none if not incremental);
    engines that store partitions apart (Spark) partition the table by it."""
    return [naming.partition_column(spec.incremental)] if spec.incremental else []


def step_sql(
    spec: DefinitionSpec,
    where: Where,
    dest: exp.Table,
    sources: Sources,
    previous: ActiveInstance | None,
    mode: StepMode,
) -> list[str]:
    """The statements of one step, as the warehouse runs them (for dry runs).

    A full build is one CREATE TABLE ... AS into a new table. An incremental build
    replaces the partitions from `watermark - grace` on in the active table: DELETE +
    INSERT in one transaction, or one INSERT OVERWRITE on Spark (`Warehouse.replace_partitions`).
    """
    dialect = where.target.dialect
    query, since = step_query(spec, where, sources, previous, mode)
    if since is None:
        create = sqlbuild.create_table_as(
            dest, query, dialect=dialect, partition_by=partition_columns(spec)
        )
        return [sqlgen.render(create, dialect)]
    statements = sqlbuild.replace_partitions(
        dest, sqlgen.output_columns(spec), query,
        partition_column=partition_columns(spec)[0], since=since, dialect=dialect,
    )  # fmt: skip
    return [sqlgen.render(statement, dialect) for statement in statements]
