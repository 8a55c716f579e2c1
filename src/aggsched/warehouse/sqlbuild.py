"""sqlglot expressions for the adapters' own SQL (DDL, catalog queries). Pure: no I/O.

Identifiers are always quoted, literals always go through sqlglot, so a schema called
``Robert'); DROP TABLE x`` is just an odd name, never SQL.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp


def ident(name: str) -> exp.Identifier:
    """A quoted identifier (case kept where the engine keeps case)."""
    if not name:
        raise ValueError("empty SQL identifier")
    return exp.to_identifier(name, quoted=True)  # type: ignore[return-value]


def table(schema: str | None, name: str) -> exp.Table:
    """``"schema"."name"``, or ``"name"`` alone (a temporary table has no schema)."""
    return exp.Table(this=ident(name), db=ident(schema) if schema is not None else None)


def create_schema(schema: str) -> exp.Create:
    return exp.Create(kind="SCHEMA", this=exp.Table(db=ident(schema)), exists=True)


def drop_table(schema: str | None, name: str) -> exp.Drop:
    return exp.Drop(kind="TABLE", tables=[table(schema, name)], exists=True)


def create_view(schema: str, name: str, source: str, *, replace: bool) -> exp.Create:
    """CREATE [OR REPLACE] VIEW "schema"."name" AS SELECT * FROM "schema"."source"."""
    query = exp.select(exp.Star()).from_(table(schema, source))
    return exp.Create(this=table(schema, name), kind="VIEW", expression=query, replace=replace)


def drop_view(schema: str, name: str) -> exp.Drop:
    return exp.Drop(kind="VIEW", tables=[table(schema, name)], exists=True)


def count_rows(schema: str, name: str) -> exp.Select:
    return exp.select(exp.Count(this=exp.Star())).from_(table(schema, name))


def create_table(schema: str, name: str, columns: Sequence[tuple[str, str]]) -> exp.Create:
    """CREATE TABLE with typed columns; types are written in DuckDB spelling and
    transpiled by sqlglot for the target dialect (e.g. VARCHAR -> TEXT on PostgreSQL)."""
    defs = [
        exp.ColumnDef(this=ident(col), kind=exp.DataType.build(typ, dialect="duckdb"))
        for col, typ in columns
    ]
    return exp.Create(kind="TABLE", this=exp.Schema(this=table(schema, name), expressions=defs))


def copy_from(schema: str, name: str, columns: Sequence[str], source: exp.Expression) -> exp.Copy:
    """COPY "s"."t" (cols) FROM <source> WITH (FORMAT csv, HEADER false)."""
    return exp.Copy(
        this=exp.Schema(this=table(schema, name), expressions=[ident(c) for c in columns]),
        kind=True,
        files=[source],
        params=csv_params(),
    )


def copy_to_csv(query: exp.Select, path: str) -> exp.Copy:
    """COPY (query) TO 'path' WITH (FORMAT csv, HEADER false)."""
    return exp.Copy(
        this=query.subquery(), kind=False, files=[exp.Literal.string(path)], params=csv_params()
    )


def csv_params() -> list[exp.CopyParameter]:
    """Header-less CSV: the format both DuckDB and PostgreSQL COPY read and write."""
    return [
        exp.CopyParameter(this=exp.Var(this="FORMAT"), expression=exp.Var(this="csv")),
        exp.CopyParameter(this=exp.Var(this="HEADER"), expression=exp.false()),
    ]


def list_tables(schema: str, *, case_insensitive: bool, kind: str = "BASE TABLE") -> exp.Select:
    """Base tables (or, with ``kind="VIEW"``, views) of ``schema`` in the current database,
    sorted by name."""
    schema_col: exp.Expression = exp.column("table_schema")
    wanted: exp.Expression = exp.Literal.string(schema)
    if case_insensitive:
        schema_col, wanted = exp.Lower(this=schema_col), exp.Lower(this=wanted)
    return (
        exp.select(exp.column("table_name"))
        .from_(exp.table_("tables", db="information_schema"))
        .where(exp.column("table_catalog").eq(exp.func("current_database")))
        .where(schema_col.eq(wanted))
        .where(exp.column("table_type").eq(exp.Literal.string(kind)))
        .order_by(exp.column("table_name"))
    )


# ---------------------------------------------------------------------- build statements
# The statements that build aggregate tables, per dialect. Pure, so a dry run shows exactly
# what a build would run; `Warehouse` runs them (see its `create_table_as`, ...).
PARTITION_OVERWRITE_OPTION = "partitionOverwriteMode"


def create_table_as(
    dest: exp.Table, query: exp.Query, *, dialect: str, partition_by: Sequence[str] = ()
) -> exp.Create:
    """CREATE TABLE ``dest`` AS ``query``.

    On Spark the table is Parquet, partitioned by ``partition_by``, and its own options
    make every INSERT OVERWRITE replace only the partitions it writes (dynamic partition
    overwrite), whatever the session says. Other engines ignore ``partition_by``.
    """
    create = exp.Create(this=dest.copy(), kind="TABLE", expression=query)
    if dialect == "spark":
        props: list[exp.Expression] = [exp.FileFormatProperty(this=exp.Var(this="PARQUET"))]
        if partition_by:
            columns = exp.Schema(expressions=[ident(c) for c in partition_by])
            option = exp.Property(
                this=exp.Literal.string(PARTITION_OVERWRITE_OPTION),
                value=exp.Literal.string("dynamic"),
            )
            props += [
                exp.PartitionedByProperty(this=columns),
                exp.OptionsProperty(expressions=[option]),
            ]
        create.set("properties", exp.Properties(expressions=props))
    return create


def replace_partitions(
    dest: exp.Table,
    columns: Sequence[str],
    query: exp.Query,
    *,
    partition_column: str,
    since: exp.Expression,
    dialect: str,
) -> list[exp.Expression]:
    """Statements that replace the rows of ``dest`` whose ``partition_column >= since`` by
    ``query``'s rows (which all have ``partition_column >= since``).

    Transactional engines: DELETE then INSERT, to be run in one transaction. Spark: one
    ``INSERT OVERWRITE ... PARTITION (column)`` that swaps in only the partitions the query
    writes, after the whole job succeeded; a partition at or past ``since`` that the query
    no longer produces at all (every fact row of that value deleted) is left as it was by
    this statement (``SparkWarehouse.replace_partitions`` drops it afterwards).
    """
    target = exp.Schema(this=dest.copy(), expressions=[ident(c) for c in columns])
    if dialect == "spark":
        table = dest.copy()
        table.set("partition", exp.Partition(expressions=[exp.column(ident(partition_column))]))
        target = exp.Schema(this=table, expressions=[ident(c) for c in columns])
        return [exp.Insert(this=target, expression=query, overwrite=True)]
    where = exp.GTE(this=exp.column(ident(partition_column)), expression=since.copy())
    return [exp.delete(dest.copy(), where=where), exp.insert(query, target)]


def create_temporary_table_as(name: str, query: exp.Query, *, dialect: str) -> exp.Expression:
    """A table of this connection only, gone with it (a crash leaves nothing behind).

    Spark has no temporary tables: a session-scoped temporary view, cached eagerly
    (``CACHE TABLE name AS query``), is computed once and read many times the same way.
    """
    if dialect == "spark":
        return exp.Cache(this=table(None, name), expression=query)
    temporary = exp.Properties(expressions=[exp.TemporaryProperty()])
    return exp.Create(this=table(None, name), kind="TABLE", expression=query, properties=temporary)


# ---------------------------------------------------------------------- dialect fixes
def for_dialect(expression: exp.Expression, dialect: str) -> exp.Expression:
    """``expression`` rewritten where sqlglot's rendering for ``dialect`` would change its
    meaning or fail on the engine (a copy; the input is left alone).

    Spark: ``GROUPING(a, b, ...)`` takes one argument there, the bitmask of several is
    ``GROUPING_ID(a, b, ...)``; ``PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY x)`` would be
    rendered as the approximate ``PERCENTILE_APPROX``, the exact one is ``PERCENTILE(x, q)``.
    """
    if dialect != "spark":
        return expression

    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Grouping) and len(node.expressions) > 1:
            return exp.Anonymous(this="GROUPING_ID", expressions=node.expressions)
        if (
            isinstance(node, exp.WithinGroup)
            and isinstance(node.this, exp.PercentileCont)
            and isinstance(node.expression, exp.Order)
            and len(node.expression.expressions) == 1
            and not node.expression.expressions[0].args.get("desc")
        ):
            value = node.expression.expressions[0].this
            return exp.Anonymous(this="PERCENTILE", expressions=[value, node.this.this])
        return node

    return expression.copy().transform(fix, copy=False)
