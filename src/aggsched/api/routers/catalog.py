"""Catalog endpoints (extensions): publish projects, connections, projects, cubes and the
aggregates of one cube."""

from __future__ import annotations

from typing import Annotated, BinaryIO

from fastapi import APIRouter, File, Path, Query, UploadFile

from aggsched.api import present, schemas
from aggsched.api.deps import (
    CubeId,
    Limit,
    Offset,
    OrgAdmin,
    OrgRead,
    ProjectId,
    SettingsDep,
    StoreDep,
    find_cube,
)
from aggsched.api.envelope import Envelope, FieldProblem, ok
from aggsched.api.errors import ApiError, bad_request
from aggsched.api.routers.aggregates import definitions_page
from aggsched.config import Settings
from aggsched.engine.publish import PublishError, PublishResult, publish
from aggsched.planning.sqlgen import dialect_name
from aggsched.sml import SmlError
from aggsched.sml.source import ArchiveFormatError, ArchiveLimits, SourceError, read_archive
from aggsched.store import api_views, catalog, limits
from aggsched.warehouse import WarehouseConfigError, validate_url

router = APIRouter(prefix="/org/{orgId}", tags=["catalog"])


def archive_limits(settings: Settings) -> ArchiveLimits:
    return ArchiveLimits(
        max_member_bytes=settings.max_upload_member_bytes,
        max_total_bytes=settings.max_upload_expanded_bytes,
        max_members=settings.max_upload_members,
    )


def archive_files(stream: BinaryIO, settings: Settings) -> dict[str, bytes]:
    """An uploaded .zip or .tar(.gz), read from its spooled file member by member within
    the upload limits -> repository-relative files; 400 if neither or past a limit."""
    try:
        files = read_archive(stream, archive_limits(settings))
    except ArchiveFormatError as exc:
        raise bad_request("file", f"not a .zip or .tar.gz archive ({exc.__cause__})") from exc
    except SourceError as exc:
        raise bad_request("file", str(exc)) from exc
    if not files:
        raise bad_request("file", "the archive holds no files")
    return files


def _problem(error: SmlError) -> FieldProblem:
    where = error.file + (f":{error.line}" if error.line is not None else "")
    if error.yaml_path:
        where += f" {error.yaml_path}"
    return FieldProblem(field=where, problem=error.message)


def _published(result: PublishResult) -> schemas.PublishOut:
    return schemas.PublishOut(
        project_id=str(result.project_id), project=result.project,
        cubes={name: str(cid) for name, cid in result.cubes.items()},
        changes=[
            schemas.DefinitionChangeOut(
                cube=c.cube, definition=c.definition, change=c.change, reason=c.reason
            )
            for c in result.changes
        ],
        queued_batches=[str(b) for b in result.queued_batches],
        warnings=[str(w) for w in result.warnings],
    )  # fmt: skip


@router.post("/projects", response_model=Envelope[schemas.PublishOut])
def publish_project(
    org: OrgAdmin,
    store: StoreDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="the SML repository as .zip or .tar.gz")],
    strict: Annotated[
        bool, Query(description="refuse the whole repository when any aggregate is invalid")
    ] = False,
) -> dict[str, object]:
    """Publish (or republish) an SML repository; a broken model stores nothing and lists
    every error as ``<file>:<line> <yaml path>``. An aggregate that cannot be built as
    written is stored as an ``invalid`` definition with its reason (change ``invalid``),
    unless ``strict`` refuses the repository. The upload is spooled to disk as it arrives
    and read from there (``AGGSCHED_MAX_UPLOAD_*`` bound what it may expand to)."""
    files = archive_files(file.file, settings)
    try:
        # `${var}` comes from the repository's own .env only: the server's environment
        # (secrets, AGGSCHED_*) is never exposed to an uploaded project
        result = publish(
            store, files, org_id=org.org_id, env={}, published_by=org.username, strict=strict
        )
    except PublishError as exc:
        problems = [_problem(e) for e in exc.errors]
        raise ApiError(400, f"invalid SML repository: {exc}", errors=problems) from exc
    return ok(_published(result))


@router.get("/projects", response_model=Envelope[list[schemas.ProjectOut]])
def list_projects(org: OrgRead, store: StoreDep) -> dict[str, object]:
    with store.session() as session:
        rows = catalog.list_projects(session, org.org_id)
        return ok([present.project(p, catalog.list_cubes(session, p.id)) for p in rows])


@router.get("/projects/{projectId}", response_model=Envelope[schemas.ProjectOut])
def get_project(org: OrgRead, store: StoreDep, projectId: ProjectId) -> dict[str, object]:
    with store.session() as session:
        project = catalog.get_project(session, org.org_id, projectId)
        return ok(present.project(project, catalog.list_cubes(session, project.id)))


@router.get("/project/{projectId}/cube/{cubeId}", response_model=Envelope[schemas.CubeOut])
def get_cube(
    org: OrgRead, store: StoreDep, projectId: ProjectId, cubeId: CubeId
) -> dict[str, object]:
    with store.session() as session:
        return ok(present.cube(find_cube(session, org.org_id, projectId, cubeId)))


@router.get(
    "/project/{projectId}/cube/{cubeId}/aggregates",
    response_model=Envelope[schemas.Page[schemas.DefinitionOut]],
)
def cube_definitions(
    org: OrgRead,
    store: StoreDep,
    projectId: ProjectId,
    cubeId: CubeId,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, object]:
    """The cube's aggregate definitions (AtScale field names)."""
    with store.session() as session:
        cube = find_cube(session, org.org_id, projectId, cubeId)
        rows, total = api_views.list_definitions(
            session, org.org_id, cube_id=cube.id, limit=limit, offset=offset
        )
        data = definitions_page(session, rows)
    return ok(schemas.Page(data=data, limit=limit, offset=offset, total=total))


@router.get(
    "/project/{projectId}/cube/{cubeId}/aggregates/instances",
    response_model=Envelope[schemas.Page[schemas.InstanceOut]],
)
def cube_instances(
    org: OrgRead,
    store: StoreDep,
    projectId: ProjectId,
    cubeId: CubeId,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, object]:
    """The cube's aggregate instances, newest first."""
    with store.session() as session:
        cube = find_cube(session, org.org_id, projectId, cubeId)
        rows, total = api_views.list_instances(
            session, org.org_id, cube_id=cube.id, limit=limit, offset=offset
        )
        data = [present.instance(row) for row in rows]
    return ok(schemas.Page(data=data, limit=limit, offset=offset, total=total))


@router.get("/connections", response_model=Envelope[list[schemas.ConnectionOut]])
def list_connections(org: OrgRead, store: StoreDep) -> dict[str, object]:
    """Connections; URLs as stored (``${VAR}`` kept), literal passwords redacted."""
    with store.session() as session:
        return ok([present.connection(c) for c in catalog.list_connections(session, org.org_id)])


@router.post("/connections", response_model=Envelope[schemas.ConnectionOut])
def put_connection(org: OrgAdmin, store: StoreDep, body: schemas.ConnectionIn) -> dict[str, object]:
    """Create or replace the mapping of an SML connection name to a warehouse URL.
    Keep secrets out of it: write ``${VAR}`` and set the variable on the workers."""
    try:
        validate_url(body.url)
    except WarehouseConfigError as exc:
        raise bad_request("url", str(exc)) from exc
    if body.sql_dialect:
        try:
            dialect_name(body.sql_dialect)
        except ValueError as exc:
            raise bad_request("sql_dialect", str(exc)) from exc
    with store.session() as session:
        row = catalog.upsert_connection(
            session, org.org_id, body.name, body.url, aggregate_schema=body.aggregate_schema,
            database_override=body.database_override, schema_override=body.schema_override,
            sql_dialect=body.sql_dialect,
        )  # fmt: skip
        return ok(present.connection(row))


ConnectionName = Annotated[str, Path(max_length=limits.NAME, description="SML connection name")]


@router.delete("/connections/{name}", response_model=Envelope[str])
def delete_connection(org: OrgAdmin, store: StoreDep, name: ConnectionName) -> dict[str, object]:
    with store.session() as session:
        catalog.delete_connection(session, org.org_id, name)
    return ok(f"successfully deleted connection: [{name}]")
