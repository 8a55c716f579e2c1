"""Charts: build durations over time per cube, and queries per day by what answered
them (aggregates or base tables); SVG drawn on the server, the numbers in tables too."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from aggsched.store import console_views, utcnow
from aggsched.web import charts
from aggsched.web.context import Visitor, render, visitor
from aggsched.web.reads import in_store

router = APIRouter(include_in_schema=False)
BUILD_DAYS = 30
QUERY_DAYS = 14

VisitorDep = Annotated[Visitor, Depends(visitor)]


def day_bounds(today: date, days: int) -> list[datetime]:
    """``days + 1`` UTC midnights: the last ``days`` days, today included."""
    first = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=days - 1)
    return [first + timedelta(days=i) for i in range(days + 1)]


async def build_chart(request: Request, who: Visitor) -> tuple[Any, dict[str, list[Any]]]:
    since = utcnow() - timedelta(days=BUILD_DAYS)
    builds = await in_store(request, console_views.finished_builds, who.org, since)
    names = await in_store(request, console_views.cube_names, who.org)
    series: dict[str, list[charts.Point]] = {}
    for b in builds:
        name = names.get(b.cube_id)
        label = f"{name.project} / {name.cube}" if name else str(b.cube_id)[:8]
        start = b.start_time if b.start_time.tzinfo else b.start_time.replace(tzinfo=UTC)
        end = b.end_time if b.end_time.tzinfo else b.end_time.replace(tzinfo=UTC)
        seconds = max(0.0, (end - start).total_seconds())
        point = charts.Point(start, seconds, f"{b.batch_type} {str(b.batch_id)[:8]}")
        series.setdefault(label, []).append(point)
    return charts.build_durations(series, days=BUILD_DAYS), series


async def query_chart(
    request: Request, who: Visitor
) -> tuple[Any, list[date], dict[str, list[int]]]:
    bounds = day_bounds(utcnow().date(), QUERY_DAYS)
    counted = await in_store(request, console_views.queries_per_bucket, who.org, bounds)
    days = [b.date() for b in bounds[:-1]]
    counts = {kind: [counted.get((i, kind), 0) for i in range(len(days))]
              for kind in ("aggregate", "mixed", "base", "error")}  # fmt: skip
    return charts.queries_per_day(days, counts), days, counts


@router.get("/charts")
async def chart_page(request: Request, who: VisitorDep) -> Response:
    builds_svg, series = await build_chart(request, who)
    queries_svg, days, counts = await query_chart(request, who)
    context = {
        "builds_svg": builds_svg, "series": series, "queries_svg": queries_svg, "days": days,
        "counts": counts, "build_days": BUILD_DAYS, "nav": "charts",
    }  # fmt: skip
    return render(request, "charts.html", context)


def _svg(markup: Any) -> Response:
    return Response(str(markup), media_type="image/svg+xml",
                    headers={"Cache-Control": "no-store"})  # fmt: skip


@router.get("/charts/builds.svg")
async def builds_svg(request: Request, who: VisitorDep) -> Response:
    return _svg((await build_chart(request, who))[0])


@router.get("/charts/queries.svg")
async def queries_svg(request: Request, who: VisitorDep) -> Response:
    return _svg((await query_chart(request, who))[0])
