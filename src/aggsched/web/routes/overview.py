"""The overview: every cube with its aggregates' state, what is building now, the next
fires and the failures of the last 24 hours."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from aggsched.store import console_views, utcnow
from aggsched.web.apiclient import segment
from aggsched.web.context import Visitor, render, visitor
from aggsched.web.format import parse_time
from aggsched.web.reads import in_store

router = APIRouter(include_in_schema=False)
DEFINITIONS_READ = 1000
NEXT_FIRES = 5
FAILURE_WINDOW = timedelta(hours=24)


def cube_base(who: Visitor, project_id: str, cube_id: str) -> str:
    """The API path of one cube."""
    return f"{who.org_path}/project/{segment(project_id)}/cube/{segment(cube_id)}"


def aggregate_counts(definitions: list[dict[str, Any]]) -> dict[str, int]:
    """Definitions by state: active, pending (building or waiting), failed (their newest
    build failed, none active) and invalid."""
    counts: Counter[str] = Counter()
    for d in definitions:
        latest = (d.get("latest_instance") or {}).get("status")
        if d["status"] == "pending" and latest == "failed":
            counts["failed"] += 1
        else:
            counts[d["status"]] += 1
    return {k: counts.get(k, 0) for k in ("active", "pending", "failed", "invalid")}


@router.get("/")
async def overview(request: Request, who: Annotated[Visitor, Depends(visitor)]) -> Response:
    projects = await who.api.get(f"{who.org_path}/projects")
    cubes, fires = [], []
    for project in projects:
        for cube in project["cubes"]:
            base = cube_base(who, project["id"], cube["id"])
            page = await who.api.get(f"{base}/aggregates", limit=DEFINITIONS_READ)
            schedules = await who.api.get(f"{base}/aggregates-creation/scheduler")
            cubes.append({"project": project, "cube": cube, "total": page["total"],
                          "counts": aggregate_counts(page["data"]),
                          "schedules": len(schedules)})  # fmt: skip
            for s in schedules:
                at = parse_time(s["next_fire_at"])
                if s["active"] and at is not None:
                    fires.append({"at": at, "schedule": s, "project": project, "cube": cube})
    fires.sort(key=lambda f: f["at"])
    since = utcnow() - FAILURE_WINDOW
    names = await in_store(request, console_views.cube_names, who.org)
    running, _ = await in_store(
        request, console_views.history_page,
        console_views.history_stmt(who.org, status="inprogress"), limit=20, offset=0,
    )  # fmt: skip
    queued, queued_total = await in_store(
        request, console_views.history_page,
        console_views.history_stmt(who.org, status="pending"), limit=20, offset=0,
    )  # fmt: skip
    failures, failure_total = await in_store(
        request, console_views.history_page,
        console_views.history_stmt(who.org, status="failed", since=since), limit=10, offset=0,
    )  # fmt: skip
    context = {
        "cubes": cubes, "fires": fires[:NEXT_FIRES], "running": running, "queued": queued,
        "queued_total": queued_total, "failures": failures, "failure_total": failure_total,
        "names": names, "nav": "overview",
    }  # fmt: skip
    return render(request, "overview.html", context)
