"""Queries: run a semantic query against a cube (the API's query endpoint, as the
signed-in user) and read the query log (who, what grain, what answered, how long).

Running a query is a read, so its form is a GET: a result can be bookmarked and shared,
and a viewer's pages hold no form that changes anything.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from aggsched.planning.cube import CubeSpec
from aggsched.store import console_views
from aggsched.web.apiclient import ApiFailure
from aggsched.web.context import Visitor, render, visitor
from aggsched.web.reads import in_store
from aggsched.web.routes.overview import cube_base

router = APIRouter(include_in_schema=False)
LOG_PAGE = 25
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "not_in", "between", "is_null",
             "is_not_null")  # fmt: skip
LIST_OPERATORS = frozenset({"in", "not_in", "between"})
SERVED = ("aggregate", "mixed", "base", "error")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")

VisitorDep = Annotated[Visitor, Depends(visitor)]


@dataclass(frozen=True)
class Choices:
    """What a query on the cube may name: metrics (value, label) and attributes."""

    metrics: list[tuple[str, str]]
    attributes: list[str]


def choices(spec_json: str | None) -> Choices:
    if not spec_json:
        return Choices([], [])
    spec = CubeSpec.from_json(spec_json)
    metrics = [(m.name, m.label or m.name) for m in spec.metrics.values() if m.problem is None]
    metrics += [(c.name, c.label or c.name) for c in spec.calculations.values()]
    attributes = sorted({a.name for a in spec.attributes}, key=str.lower)
    return Choices(sorted(metrics, key=lambda m: m[1].lower()), attributes)


def _value(text: str, numeric: bool) -> str | int | float:
    if numeric and _NUMBER.match(text):
        return float(text) if "." in text else int(text)
    return text


def query_body(
    metrics: list[str], attributes: list[str], filter_member: str, filter_operator: str,
    filter_value: str, order_member: str, order_direction: str, limit: int,
    use_aggregates: bool, metric_names: set[str],
) -> dict[str, Any]:  # fmt: skip
    """The API's query body from the form's fields."""
    body: dict[str, Any] = {"metrics": metrics, "attributes": attributes, "limit": limit,
                            "use_aggregates": use_aggregates}  # fmt: skip
    if filter_member and filter_operator in OPERATORS:
        numeric = filter_member in metric_names
        key = "metric" if numeric else "attribute"
        condition: dict[str, Any] = {key: filter_member, "operator": filter_operator}
        if filter_operator in LIST_OPERATORS:
            parts = [p.strip() for p in filter_value.split(",") if p.strip()]
            condition["values"] = [_value(p, numeric) for p in parts]
        elif filter_operator not in ("is_null", "is_not_null"):
            condition["value"] = _value(filter_value.strip(), numeric)
        body["filters"] = [condition]
    if order_member:
        direction = "desc" if order_direction == "desc" else "asc"
        body["order_by"] = [{"member": order_member, "direction": direction}]
    return body


def _cube_key(text: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    try:
        project, cube = text.split("/", 1)
        return uuid.UUID(project), uuid.UUID(cube)
    except ValueError:
        return None


@router.get("/queries")
async def queries(
    request: Request,
    who: VisitorDep,
    cube: str = "",
    metric: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI reads the default)
    attribute: Annotated[list[str], Query()] = [],  # noqa: B006
    filter_member: str = "",
    filter_operator: str = "=",
    filter_value: str = "",
    order_member: str = "",
    order_direction: str = "asc",
    limit: str = str(DEFAULT_LIMIT),
    use_aggregates: str = "",
    run: str = "",
    served: str = "",
    user: str = "",
    page: str = "1",
) -> Response:
    names = await in_store(request, console_views.cube_names, who.org)
    cubes = [(f"{n.project_id}/{cube_id}", n) for cube_id, n in names.items()]
    chosen = _cube_key(cube) or (_cube_key(cubes[0][0]) if cubes else None)
    spec = (await in_store(request, console_views.cube_query_spec, who.org, chosen[1])
            if chosen else None)  # fmt: skip
    offered = choices(spec)
    rows = int(limit) if limit.isdigit() else DEFAULT_LIMIT
    rows = max(1, min(MAX_LIMIT, rows))
    ran = run == "1"
    form = {
        "cube": f"{chosen[0]}/{chosen[1]}" if chosen else "", "metric": metric,
        "attribute": attribute, "filter_member": filter_member,
        "filter_operator": filter_operator if filter_operator in OPERATORS else "=",
        "filter_value": filter_value, "order_member": order_member,
        "order_direction": order_direction, "limit": rows,
        "use_aggregates": use_aggregates == "on" or not ran,
    }  # fmt: skip
    result, error = None, None
    if ran and chosen:
        if not metric:
            error = "Choose at least one metric."
        else:
            body = query_body(
                metric, attribute, filter_member, form["filter_operator"], filter_value,
                order_member, order_direction, rows, form["use_aggregates"],
                {m for m, _label in offered.metrics},
            )  # fmt: skip
            try:
                result = await who.api.post(f"{cube_base(who, *map(str, chosen))}/query", json=body)
            except ApiFailure as failure:
                error = failure.message
    log = await _log(request, who, served, user, page)
    context = {"cubes": cubes, "names": names, "choices": offered, "form": form,
               "result": result, "error": error, "operators": OPERATORS, "ran": ran,
               "nav": "queries", **log}  # fmt: skip
    return render(request, "queries.html", context, status=400 if error and ran else 200)


async def _log(request: Request, who: Visitor, served: str, user: str, page: str) -> dict[str, Any]:
    """One page of the query log, with the aggregates that answered each query."""
    number = int(page) if page.isdigit() and 0 < int(page) < 10**9 else 1
    served_by = served if served in SERVED else None
    listing = await who.api.get(
        f"{who.org_path}/queries", servedBy=served_by, user=user.strip()[:255] or None,
        limit=LOG_PAGE, offset=(number - 1) * LOG_PAGE,
    )  # fmt: skip
    ids = [uuid.UUID(row["id"]) for row in listing["data"]]
    hits = await in_store(request, console_views.query_hit_names, ids)
    entries = [{**row, "answered_by": hits.get(uuid.UUID(row["id"]), [])}
               for row in listing["data"]]  # fmt: skip
    return {
        "log": entries,
        "log_total": listing["total"],
        "log_page": number,
        "log_pages": max(1, math.ceil(listing["total"] / LOG_PAGE)),
        "log_query": {"served": served_by or "", "user": user.strip()},
        "served_kinds": SERVED,
    }
