"""Dropping what replaced, failed and invalid instances left in the warehouses."""

from __future__ import annotations

from aggsched.engine.build_context import WarehouseOpener
from aggsched.engine.warehouse_pool import WarehousePool
from aggsched.store import Store, aggregates, catalog
from aggsched.warehouse import (
    WarehouseError,
)


def drop_expired_tables(
    store: Store, warehouses: WarehouseOpener | WarehousePool, limit: int = 500
) -> int:
    """Drop the tables of replaced, invalid and failed instances whose grace period is over,
    and the stable views of definitions a republish removed or made invalid.

    `warehouses` is an open batch's pool or an opener (a pool is made and closed here).
    Returns how many tables were dropped; an unreachable warehouse is tried again next time.
    """
    with store.session() as s:
        due = [
            (i.id, i.org_id, i.connection_id, i.table_schema, i.table_name)
            for i in aggregates.instances_to_drop(s, limit=limit)
        ]
        # a view must go before the table it selects from (PostgreSQL refuses otherwise)
        doomed = aggregates.views_to_drop(s, limit=limit)
        doomed += aggregates.views_on(s, [(d[3], d[4]) for d in due if d[3] and d[4]])
        views = list(
            dict.fromkeys(
                (d.id, d.org_id, d.connection_id, d.view_schema, d.view_name) for d in doomed
            )
        )
        urls = {
            (c.org_id, c.name): c.url
            for org in {d[1] for d in due} | {v[1] for v in views}
            for c in catalog.list_connections(s, org)
        }
    if not due and not views:
        return 0
    pool = warehouses if isinstance(warehouses, WarehousePool) else WarehousePool(warehouses)
    dropped = 0
    try:
        for definition_id, org_id, conn_name, schema, view in views:
            url = urls.get((org_id, conn_name or ""))
            if url is not None and schema and view:
                try:
                    pool.get(url).drop_view(schema, view)
                except WarehouseError:
                    continue
            with store.session() as s:
                aggregates.set_view(s, definition_id, None, None)
        for instance_id, org_id, conn_name, schema, table in due:
            url = urls.get((org_id, conn_name or ""))
            if table and schema:
                if url is None:
                    with store.session() as s:
                        aggregates.keep_table(
                            s, instance_id, f"table {schema}.{table} left in place: connection "
                            f"{conn_name!r} is no longer mapped",
                        )  # fmt: skip
                    continue
                try:
                    pool.get(url).drop_table(schema, table)
                except WarehouseError:
                    continue
                dropped += 1
            with store.session() as s:
                aggregates.mark_table_dropped(s, instance_id)
    finally:
        if pool is not warehouses:
            pool.close()
    return dropped
