"""Builds: the organization's history (filters, paging), one batch live, and cancel."""

from __future__ import annotations

import math
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from aggsched.planning.plan import BatchType
from aggsched.store import console_views
from aggsched.store.models import BatchStatus
from aggsched.web.apiclient import ApiFailure, segment
from aggsched.web.context import Visitor, checked_form, error_page, redirect, render, visitor
from aggsched.web.progress import FINAL_BATCH, batch_progress
from aggsched.web.reads import in_store
from aggsched.web.routes.overview import DEFINITIONS_READ, cube_base

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 25
STATUSES = tuple(s.value for s in BatchStatus)
TYPES = tuple(t.value for t in BatchType)

VisitorDep = Annotated[Visitor, Depends(visitor)]


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


@router.get("/builds")
async def history(
    request: Request, who: VisitorDep, cube: str = "", status: str = "", type: str = "",
    trigger: str = "", page: str = "1",
) -> Response:  # fmt: skip
    problems = []
    cube_id = _uuid(cube) if cube else None
    if cube and cube_id is None:
        problems.append(f"cube: not a cube id ({cube[:40]!r}); showing every cube")
    filters: dict[str, Any] = {
        "cube_id": cube_id,
        "status": status if status in STATUSES else None,
        "batch_type": type if type in TYPES else None,
        "trigger": trigger if trigger in console_views.TRIGGERS else None,
    }
    for name, given, kept in (("status", status, filters["status"]),
                              ("type", type, filters["batch_type"]),
                              ("trigger", trigger, filters["trigger"])):  # fmt: skip
        if given and kept is None:
            problems.append(f"{name}: unknown value {given[:40]!r}; not filtered")
    number = int(page) if page.isdigit() and 0 < int(page) < 10**9 else 1
    stmt = console_views.history_stmt(who.org, **filters)
    rows, total = await in_store(request, console_views.history_page, stmt,
                                 limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)  # fmt: skip
    names = await in_store(request, console_views.cube_names, who.org)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    query = {"cube": cube if cube_id else "", "status": filters["status"] or "",
             "type": filters["batch_type"] or "", "trigger": filters["trigger"] or ""}  # fmt: skip
    context = {
        "rows": rows, "total": total, "page": number, "pages": pages, "query": query,
        "names": names, "statuses": STATUSES, "types": TYPES,
        "triggers": console_views.TRIGGERS, "problems": problems, "nav": "builds",
    }  # fmt: skip
    return render(request, "builds.html", context)


async def _batch(request: Request, who: Visitor, batch_id: str) -> dict[str, Any]:
    """The batch detail, its cube's definitions (for progress) and its cube's names."""
    path = f"{who.org_path}/aggregates-creation/builds/{segment(batch_id)}"
    batch = await who.api.get(path)
    definitions: list[dict[str, Any]] = []
    if batch["cubeId"] and batch["status"] not in FINAL_BATCH:
        base = cube_base(who, batch["projectId"], batch["cubeId"])
        page = await who.api.get(f"{base}/aggregates", limit=DEFINITIONS_READ)
        definitions = page["data"]
    names = await in_store(request, console_views.cube_names, who.org)
    cube = names.get(_uuid(batch["cubeId"])) if batch["cubeId"] else None
    return {"batch": batch, "progress": batch_progress(batch, definitions), "cube": cube,
            "live": batch["status"] not in FINAL_BATCH, "nav": "builds"}  # fmt: skip


@router.get("/builds/{batch_id}")
async def batch_page(request: Request, batch_id: str, who: VisitorDep) -> Response:
    return render(request, "batch.html", await _batch(request, who, batch_id))


@router.get("/builds/{batch_id}/panel")
async def batch_panel(request: Request, batch_id: str, who: VisitorDep) -> Response:
    """The live part of the batch page, polled while the batch runs."""
    return render(request, "_batch_panel.html", await _batch(request, who, batch_id))


@router.post("/builds/{batch_id}/cancel")
async def cancel(request: Request, batch_id: str, who: VisitorDep) -> Response:
    await checked_form(request)
    back = f"/builds/{segment(batch_id)}"
    path = f"{who.org_path}/aggregates-creation/builds/{segment(batch_id)}"
    try:
        before = await who.api.get(path)
        if before["status"] in FINAL_BATCH:
            return redirect(
                request, back, ("ok", f"The batch had already ended ({before['status']}).")
            )
        batch = await who.api.post(f"{path}/cancel")
    except ApiFailure as failure:
        return error_page(request, failure.status, "Not done", failure.message, back=back)
    if batch["status"] == "cancelled":
        message = "Batch cancelled."
    elif batch["cancelRequested"]:
        message = "Cancel requested: the worker stops at its next heartbeat."
    else:
        message = f"The batch had already ended ({batch['status']})."
    return redirect(request, back, ("ok", message))
