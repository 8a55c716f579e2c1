"""A cube: its aggregates and schedules, and the changes people make to them (create,
pause, resume, delete a schedule; build now; block or unblock an aggregate). Every change
is the API's own endpoint, called as the signed-in user."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from aggsched.store import utcnow
from aggsched.web import cronview
from aggsched.web.apiclient import ApiFailure, segment
from aggsched.web.context import Visitor, checked_form, error_page, redirect, render, visitor
from aggsched.web.routes.overview import DEFINITIONS_READ, aggregate_counts, cube_base

router = APIRouter(include_in_schema=False)
PATH = "aggregate/create"

VisitorDep = Annotated[Visitor, Depends(visitor)]


@cache
def zone_names() -> list[str]:
    return sorted(available_timezones())


def cube_page(project_id: str, cube_id: str) -> str:
    return f"/cubes/{segment(project_id)}/{segment(cube_id)}"


def failed(request: Request, failure: ApiFailure, back: str) -> Response:
    """The API refused a change: say why, with its status code; nothing changed."""
    return error_page(request, failure.status, "Not done", failure.message, back=back)


async def _page(
    request: Request, who: Visitor, project_id: str, cube_id: str, *,
    form: dict[str, Any] | None = None, status: int = 200,
) -> Response:  # fmt: skip
    base = cube_base(who, project_id, cube_id)
    cube = await who.api.get(base)
    project = await who.api.get(f"{who.org_path}/projects/{segment(project_id)}")
    definitions = await who.api.get(f"{base}/aggregates", limit=DEFINITIONS_READ)
    instances = await who.api.get(
        f"/aggregates/orgId/{segment(who.org)}/instances", cubeId=cube_id, status="active",
        limit=DEFINITIONS_READ,
    )  # fmt: skip
    active = {i["definition_id"]: i for i in instances["data"]}
    now = utcnow()
    schedules = [
        {**s, "check": cronview.describe(s["time_expression"], s["time_zone"], now)}
        for s in await who.api.get(f"{base}/aggregates-creation/scheduler")
    ]
    definitions_data = sorted(definitions["data"], key=lambda d: (d["type"] != "user_defined",
                                                                 d["name"].lower()))  # fmt: skip
    context = {
        "project": project, "cube": cube, "definitions": definitions_data,
        "definitions_total": definitions["total"], "active": active, "schedules": schedules,
        "counts": aggregate_counts(definitions["data"]), "nav": "overview",
        "form": form or {"time_expression": "", "time_zone": "UTC", "build": "full"},
        "zones": zone_names() if who.can_change else [],
        "page": cube_page(project_id, cube_id),
    }  # fmt: skip
    return render(request, "cube.html", context, status=status)


@router.get("/cubes/{project_id}/{cube_id}")
async def show_cube(request: Request, project_id: str, cube_id: str, who: VisitorDep) -> Response:
    return await _page(request, who, project_id, cube_id)


@router.get("/cron/check")
async def cron_check(
    request: Request, who: VisitorDep, time_expression: str = "", time_zone: str = "UTC"
) -> Response:
    """Live validation for the schedule form: the server's parser, as the API runs it."""
    result = cronview.check(time_expression, time_zone, utcnow())
    return render(request, "_cron_feedback.html", {"check": result}, visitor=who)


@router.post("/cubes/{project_id}/{cube_id}/schedules")
async def create_schedule(
    request: Request, project_id: str, cube_id: str, who: VisitorDep
) -> Response:
    form = await checked_form(request)
    values = {
        "time_expression": str(form.get("time_expression") or ""),
        "time_zone": str(form.get("time_zone") or "").strip() or "UTC",
        "build": "incremental" if form.get("build") == "incremental" else "full",
    }
    body = {"time_expression": values["time_expression"], "path": PATH,
            "time_zone": values["time_zone"], "full_build": values["build"] == "full"}  # fmt: skip
    base = cube_base(who, project_id, cube_id)
    try:
        created = await who.api.post(f"{base}/aggregates-creation/scheduler", json=body)
    except ApiFailure as failure:
        if failure.status != 400 or not failure.problems:
            return failed(request, failure, cube_page(project_id, cube_id))
        problem = failure.problems[0]
        values["check"] = cronview.failure(
            values["time_expression"], values["time_zone"], problem.get("problem", ""),
            problem.get("field", "time_expression"),
        )  # fmt: skip
        return await _page(request, who, project_id, cube_id, form=values, status=400)
    message = f"Schedule {created['job_id'][:8]} created: {created['time_expression']}"
    return redirect(request, cube_page(project_id, cube_id) + "#schedules", ("ok", message))


async def _schedule_action(
    request: Request, who: Visitor, project_id: str, cube_id: str, job_id: str, action: str
) -> Response:
    await checked_form(request)
    path = f"{cube_base(who, project_id, cube_id)}/aggregates-creation/scheduler/jobId/" \
           f"{segment(job_id)}"  # fmt: skip
    back = cube_page(project_id, cube_id)
    try:
        if action == "delete":
            await who.api.delete(path)
        else:
            await who.api.post(f"{path}/{action}")
    except ApiFailure as failure:
        return failed(request, failure, back)
    done = {"pause": "paused", "resume": "resumed", "delete": "deleted"}[action]
    return redirect(request, back + "#schedules", ("ok", f"Schedule {job_id[:8]} {done}."))


@router.post("/cubes/{project_id}/{cube_id}/schedules/{job_id}/pause")
async def pause(request: Request, project_id: str, cube_id: str, job_id: str,
                who: VisitorDep) -> Response:  # fmt: skip
    return await _schedule_action(request, who, project_id, cube_id, job_id, "pause")


@router.post("/cubes/{project_id}/{cube_id}/schedules/{job_id}/resume")
async def resume(request: Request, project_id: str, cube_id: str, job_id: str,
                 who: VisitorDep) -> Response:  # fmt: skip
    return await _schedule_action(request, who, project_id, cube_id, job_id, "resume")


@router.post("/cubes/{project_id}/{cube_id}/schedules/{job_id}/delete")
async def delete(request: Request, project_id: str, cube_id: str, job_id: str,
                 who: VisitorDep) -> Response:  # fmt: skip
    return await _schedule_action(request, who, project_id, cube_id, job_id, "delete")


@router.post("/cubes/{project_id}/{cube_id}/build")
async def build_now(request: Request, project_id: str, cube_id: str, who: VisitorDep) -> Response:
    form = await checked_form(request)
    full = form.get("mode") == "full"
    base = cube_base(who, project_id, cube_id)
    try:
        queued = await who.api.post(
            f"{base}/aggregates-creation/execute", json={"full_build": full}
        )
    except ApiFailure as failure:
        return failed(request, failure, cube_page(project_id, cube_id))
    kind = "full" if full else "incremental"
    note = " (joined the batch already waiting)" if queued.get("coalesced") else ""
    return redirect(request, f"/builds/{segment(queued['batch_id'])}",
                    ("ok", f"Build queued: {kind}{note}."))  # fmt: skip


@router.post("/cubes/{project_id}/{cube_id}/definitions/{definition_id}/block")
async def block(request: Request, project_id: str, cube_id: str, definition_id: str,
                who: VisitorDep) -> Response:  # fmt: skip
    form = await checked_form(request)
    instance_id = str(form.get("instance_id") or "")
    back = cube_page(project_id, cube_id)
    if not instance_id:
        return error_page(request, 400, "Not done", "No instance to deactivate was given.",
                          back=back)  # fmt: skip
    path = f"/aggregates/orgId/{segment(who.org)}/definitionId/{segment(definition_id)}" \
           f"/instanceId/{segment(instance_id)}"  # fmt: skip
    try:
        await who.api.delete(path, block="true")
    except ApiFailure as failure:
        return failed(request, failure, back)
    message = "Aggregate blocked: its table is retired and it is not built."
    return redirect(request, back + "#aggregates", ("ok", message))


@router.post("/cubes/{project_id}/{cube_id}/definitions/{definition_id}/unblock")
async def unblock(request: Request, project_id: str, cube_id: str, definition_id: str,
                  who: VisitorDep) -> Response:  # fmt: skip
    await checked_form(request)
    back = cube_page(project_id, cube_id)
    path = f"/aggregates/orgId/{segment(who.org)}/definitionId/{segment(definition_id)}"
    try:
        await who.api.put(path, unblock="true")
    except ApiFailure as failure:
        return failed(request, failure, back)
    return redirect(request, back + "#aggregates",
                    ("ok", "Aggregate unblocked: the next batch builds it."))  # fmt: skip
