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
