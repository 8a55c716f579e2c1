"""Semantic queries (extension): answered from the best aggregate, and the query log."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from aggsched.api import schemas
from aggsched.api.deps import CubeId, Limit, Offset, OrgRead, ProjectId, StoreDep
from aggsched.api.envelope import Envelope, ok, timestamp
from aggsched.api.errors import ApiError, bad_request
from aggsched.api.query_schemas import ColumnOut, QueryIn, QueryLogOut, QueryOut, ServedByOut
from aggsched.api.validation import IsoDateTime, Name
from aggsched.engine.queries import QueryFailed, QueryRefused, QueryResult, QueryService
from aggsched.store import queries as query_log
from aggsched.store.models import QueryLog

router = APIRouter(tags=["queries"])


def _service(request: Request) -> QueryService:
    return request.app.state.queries  # type: ignore[no-any-return]


def _out(result: QueryResult) -> QueryOut:
    served = [
        ServedByOut(
            fact=p.fact,
            kind=p.kind,  # type: ignore[arg-type]
            definition_id=str(p.definition_id) if p.definition_id else None,
            definition=p.definition,
            instance_id=str(p.instance_id) if p.instance_id else None,
            table=p.table,
        )
        for p in result.served_by
    ]
    return QueryOut(
        columns=[ColumnOut(name=n, type=t) for n, t in result.columns],
        rows=[list(r) for r in result.rows], served_by=served,
        served_from=result.served_from,  # type: ignore[arg-type]
        sql=result.sql, duration_ms=round(result.duration_ms, 3),
        planning_ms=round(result.planning_ms, 3), rows_returned=result.rows_returned,
        query_id=str(result.query_id) if result.query_id else None, explain=result.explain,
    )  # fmt: skip


@router.post(
    "/org/{orgId}/project/{projectId}/cube/{cubeId}/query",
    response_model=Envelope[QueryOut],
    responses={502: {"description": "warehouse error"}, 504: {"description": "query timeout"}},
)
def run_query(
    request: Request,
    org: OrgRead,
    projectId: ProjectId,
    cubeId: CubeId,
    body: QueryIn,
) -> dict[str, object]:
    """Answer a semantic query from the cheapest active aggregate that covers it (else the
    base tables); ``served_by`` says which, per fact. Every query is logged."""
    try:
        result = _service(request).run(
            org.org_id, cubeId, body.query(), project_id=projectId, username=org.username,
            explain=body.explain, use_aggregates=body.use_aggregates,
        )  # fmt: skip
    except QueryRefused as exc:
        raise bad_request(exc.field, str(exc)) from exc
    except QueryFailed as exc:
        code = 504 if exc.timed_out else 502
        raise ApiError(code, f"the warehouse failed the query: {exc}") from exc
    return ok(_out(result))


def _log_out(row: QueryLog) -> QueryLogOut:
    return QueryLogOut(
        id=str(row.id), organization_id=row.org_id, project_id=str(row.project_id),
        cube_id=str(row.cube_id), user=row.username, created_at=timestamp(row.created_at),
        metrics=list(row.metrics.get("names", [])),
        attributes=list(row.attributes.get("names", [])),
        filter_attributes=list(row.filter_attributes.get("names", [])),
        grain=list(row.grain.get("parts", [])), served_by=row.served_by,
        duration_ms=row.duration_ms, rows=row.rows, error=row.error,
    )  # fmt: skip


@router.get("/org/{orgId}/queries", response_model=Envelope[schemas.Page[QueryLogOut]])
def list_queries(
    org: OrgRead,
    store: StoreDep,
    cubeId: uuid.UUID | None = None,
    user: Annotated[Name | None, Query()] = None,
    servedBy: Annotated[
        str | None, Query(pattern="^(base|aggregate|mixed|error)$", description="what answered")
    ] = None,
    since: Annotated[IsoDateTime | None, Query()] = None,
    until: Annotated[IsoDateTime | None, Query()] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, object]:
    """The query log, newest first."""
    with store.session() as session:
        rows, total = query_log.list_queries(
            session, org.org_id, cube_id=cubeId, username=user, served_by=servedBy,
            since=since, until=until, limit=limit, offset=offset,
        )  # fmt: skip
        data = [_log_out(r) for r in rows]
    return ok(schemas.Page(data=data, limit=limit, offset=offset, total=total))
