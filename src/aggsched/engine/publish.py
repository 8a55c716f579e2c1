"""Publishing an SML repository: validate it, then store project, cubes and definitions.

A broken model (a YAML error, a missing dataset, a dangling reference) stores nothing
and reports every error. A user-defined aggregate that cannot be built as written does
not break the model: the rest publishes and it is stored as an `invalid` definition with
its precise reason (`strict` refuses the whole repository instead, for CI). A
republish (same catalog unique_name) updates in place: unchanged definitions keep their
active instance, new or changed ones get a `pending` instance, removed ones become
`invalid` (their tables are dropped by the next batch), and each cube with pending
instances gets a `materialize-pending-instances` batch unless the organization's
`aggregates.new.build.scheduled` setting says they wait for the next scheduled build.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from sqlalchemy.orm import Session

from aggsched.engine.queueing import queue_batch
from aggsched.planning.aggregates import definition_spec
from aggsched.planning.cube import CubeSpec, SpecError, cube_spec, grain_spec
from aggsched.planning.spec import DefinitionSpec
from aggsched.sml import (
    AggregateSpec,
    Repository,
    SmlError,
    load_repository,
    read_source,
    system_aggregates,
)
from aggsched.store import Store, aggregates, catalog, limits, org_settings, utcnow
from aggsched.store.models import (
    AggregateDefinition,
    BatchType,
    Cube,
    DefinitionSubtype,
    DefinitionType,
    InstanceStatus,
)

# an instance being built from the old spec is invalidated too; its build then refuses to
# activate it (BatchRunner checks the instance is still in progress)
LIVE_STATUSES = (InstanceStatus.PENDING, InstanceStatus.INPROGRESS, InstanceStatus.ACTIVE)


class PublishError(Exception):
    """The repository is invalid; `errors` lists every problem (nothing was stored)."""

    def __init__(self, errors: Sequence[SmlError]) -> None:
        self.errors = list(errors)
        super().__init__(f"{len(self.errors)} error(s) in the SML repository")


class Change(StrEnum):
    ADDED = "added"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    REMOVED = "removed"
    INVALID = "invalid"


@dataclass(frozen=True)
class DefinitionChange:
    cube: str
    definition: str
    change: Change
    reason: str | None = None


@dataclass
class PublishResult:
    project_id: uuid.UUID
    project: str
    cubes: dict[str, uuid.UUID] = field(default_factory=dict)
    changes: list[DefinitionChange] = field(default_factory=list)
    queued_batches: list[uuid.UUID] = field(default_factory=list)
    warnings: list[SmlError] = field(default_factory=list)


@dataclass(frozen=True)
class _Planned:
    """A definition to store: its resolved SML form and its stored spec."""

    sml: AggregateSpec
    spec: DefinitionSpec

    @property
    def system(self) -> bool:
        return self.sml.system


@dataclass(frozen=True)
class _Invalid:
    """A user-defined aggregate the model defines but aggsched cannot build as written."""

    name: str
    label: str
    reason: str

    def fingerprint(self) -> str:
        return hashlib.sha256(f"invalid:{self.reason}".encode()).hexdigest()[:32]


def _digest(files: Mapping[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name] + b"\0")
    return h.hexdigest()


def publish_path(store: Store, path: Path, **kwargs: object) -> PublishResult:
    """Publish a folder, .zip or .tar.gz (see `publish`)."""
    return publish(store, read_source(path), **kwargs)  # type: ignore[arg-type]


def publish(
    store: Store,
    files: Mapping[str, bytes],
    *,
    org_id: str = "default",
    env: Mapping[str, str] | None = None,
    published_by: str = "",
    strict: bool = False,
) -> PublishResult:
    """Validate `files` (repository-relative path -> bytes) and store them in one
    transaction; `strict` refuses the repository when any aggregate is invalid."""
    loaded = load_repository(files, os.environ if env is None else env)
    if not loaded.ok:  # every problem at once, the aggregates' too
        raise PublishError([*loaded.errors, *loaded.aggregate_errors])
    if strict and loaded.aggregate_errors:
        raise PublishError(loaded.aggregate_errors)
    repo = loaded.unwrap()
    planned: dict[str, list[_Planned | _Invalid]] = {
        name: [
            *(_Planned(a, definition_spec(a)) for a in (*rm.aggregates, *system_aggregates(rm))),
            *(_Invalid(bad.unique_name, bad.label, bad.reason) for bad in rm.invalid),
        ]
        for name, rm in loaded.models.items()
    }
    unstorable = _unstorable_names(repo, planned)
    if unstorable:
        raise PublishError(unstorable)
    with store.session() as session:
        catalog.get_org(session, org_id)
        project = catalog.upsert_project(
            session,
            org_id,
            repo.catalog.unique_name,
            name=repo.catalog.label or repo.catalog.unique_name,
            version=str(repo.catalog.version) if repo.catalog.version is not None else None,
            source_digest=_digest(files),
            published_by=published_by,
        )
        result = PublishResult(project.id, project.unique_name, warnings=list(loaded.warnings))
        seen: set[uuid.UUID] = set()
        for model_name, definitions in planned.items():
            model = repo.models[model_name]
            queryable = cube_spec(loaded.models[model_name])
            cube = catalog.upsert_cube(
                session, project, model_name, model.label or model_name,
                query_spec=queryable.to_json(),
            )  # fmt: skip
            seen.add(cube.id)
            result.cubes[model_name] = cube.id
            result.changes += _sync_definitions(session, cube, definitions, queryable)
        for cube in catalog.list_cubes(session, project.id):
            if cube.id not in seen:
                catalog.mark_cube_deleted(session, cube)
                result.changes += _sync_definitions(session, cube, [])
        if not org_settings.get_bool_setting(session, org_id, "aggregates.new.build.scheduled"):
            result.queued_batches = _queue_pending(session, project.id, published_by)
    return result


def _aggregate_fields(
    file: str, item: _Planned | _Invalid
) -> list[tuple[str, str, str | None, int]]:
    """The stored names of one aggregate, each with the field it came from."""
    if isinstance(item, _Invalid):
        where = f"aggregate {item.name[:60]!r}"
        return [(file, f"{where} unique_name", item.name, limits.NAME),
                (file, f"{where} label", item.label, limits.NAME)]  # fmt: skip
    where = f"aggregate {item.spec.name[:60]!r}"
    return [
        (file, f"{where} unique_name", item.spec.name, limits.NAME),
        (file, f"{where} label", item.sml.label, limits.NAME),
        (file, f"{where} dataset", item.spec.fact.dataset, limits.NAME),
        (file, f"{where} connection", item.spec.connection, limits.NAME),
    ]


def _unstorable_names(
    repo: Repository, planned: Mapping[str, Sequence[_Planned | _Invalid]]
) -> list[SmlError]:
    """Names that do not fit their metadata column (``store.limits``): errors naming the
    file and field, found before anything is stored (PostgreSQL would refuse them with a
    server error; SQLite would store them)."""
    fields: list[tuple[str, str, str | None, int]] = [
        (repo.catalog.file, "unique_name", repo.catalog.unique_name, limits.NAME),
        (repo.catalog.file, "label", repo.catalog.label, limits.NAME),
        (repo.catalog.file, "version", _text(repo.catalog.version), limits.VERSION),
    ]
    for name, items in planned.items():
        model = repo.models[name]
        fields += [(model.file, "unique_name", name, limits.NAME),
                   (model.file, "label", model.label, limits.NAME)]  # fmt: skip
        for item in items:
            fields += _aggregate_fields(model.file, item)
    errors = []
    for file, field_name, value, limit in fields:
        if value is None:
            continue
        problem = limits.unsafe_character(value)
        if len(value) > limit:
            problem = f"{len(value)} characters long; at most {limit} are accepted"
        if problem:
            errors.append(SmlError(file, field_name, None, problem))
    return errors


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _sync_definitions(
    session: Session,
    cube: Cube,
    definitions: Sequence[_Planned | _Invalid],
    queryable: CubeSpec | None = None,
) -> list[DefinitionChange]:
    existing = {d.unique_name: d for d in aggregates.cube_definitions(session, cube.id)}
    changes = []
    for item in definitions:
        if isinstance(item, _Invalid):
            changes.append(_store_invalid(session, cube, item, existing.pop(item.name, None)))
            continue
        name = item.spec.name
        current = existing.pop(name, None)
        fingerprint = item.spec.fingerprint()
        if current and current.removed_at is None and current.fingerprint == fingerprint:
            current.name = item.sml.label or name
            changes.append(DefinitionChange(cube.unique_name, name, Change.UNCHANGED))
            continue
        change = Change.ADDED if current is None or current.removed_at else Change.CHANGED
        if current is not None:
            _invalidate(session, current, f"definition {change.value} by republish")
        definition = aggregates.upsert_definition(
            session,
            cube,
            unique_name=name,
            name=item.sml.label or name,
            type=DefinitionType.SYSTEM_DEFINED if item.system else DefinitionType.USER_DEFINED,
            subtype=(
                DefinitionSubtype.PREDICTION_DEFINED if item.system else DefinitionSubtype.MANUAL
            ),
            fingerprint=fingerprint,
            spec=item.spec.to_dict(),
            fact_dataset=item.spec.fact.dataset,
            connection_id=item.spec.connection,
            incremental=item.spec.incremental is not None,
        )
        aggregates.assign_view_name(session, definition)
        aggregates.create_instance(session, definition)
        changes.append(DefinitionChange(cube.unique_name, name, change))
    for gone in existing.values():
        if gone.removed_at is not None:
            continue
        why = "definition removed by republish"
        if gone.subtype == DefinitionSubtype.DEMAND_DEFINED.value and queryable is not None:
            kept = _keep_demand_defined(session, cube, gone, queryable)
            if isinstance(kept, Change):
                changes.append(DefinitionChange(cube.unique_name, gone.unique_name, kept))
                continue
            why = f"demand-defined aggregate no longer resolves after republish: {kept}"
        _invalidate(session, gone, why)
        aggregates.mark_definition_removed(session, gone)
        changes.append(
            DefinitionChange(cube.unique_name, gone.unique_name, Change.REMOVED, reason=why)
        )
    return changes


def _keep_demand_defined(
    session: Session, cube: Cube, definition: AggregateDefinition, queryable: CubeSpec
) -> Change | str:
    """A demand-defined aggregate (the advisor's, not the model's) survives a republish
    when its grain still resolves: unchanged, or changed (rebuilt) when what it reads
    changed. Otherwise returns why not."""
    old = DefinitionSpec.from_dict(definition.spec)
    try:
        spec = grain_spec(
            queryable, old.name, old.fact.dataset,
            [(a.name, tuple(a.path)) for a in old.attributes], [m.name for m in old.metrics],
        )  # fmt: skip
    except (SpecError, KeyError) as exc:
        return str(exc)
    if spec.fingerprint() == definition.fingerprint:
        return Change.UNCHANGED
    _invalidate(session, definition, "definition changed by republish")
    definition.spec = spec.to_dict()
    definition.fingerprint = spec.fingerprint()
    definition.incremental = spec.incremental is not None
    aggregates.create_instance(session, definition)
    return Change.CHANGED


def _store_invalid(
    session: Session, cube: Cube, item: _Invalid, current: AggregateDefinition | None
) -> DefinitionChange:
    """Keep the bad aggregate as an `invalid` definition with its reason; whatever it had
    built before (when a republish broke it) is invalidated too."""
    if current is not None and current.invalid_reason is None:
        _invalidate(session, current, f"definition invalid after republish: {item.reason}")
    aggregates.upsert_definition(
        session, cube, unique_name=item.name, name=item.label or item.name,
        type=DefinitionType.USER_DEFINED, subtype=DefinitionSubtype.MANUAL,
        fingerprint=item.fingerprint(), spec={},
        fact_dataset=current.fact_dataset if current else "",
        connection_id=current.connection_id if current else "",  # where its view may be
        invalid_reason=item.reason[:8000],
    )  # fmt: skip
    return DefinitionChange(cube.unique_name, item.name, Change.INVALID, item.reason)


def _invalidate(session: Session, definition: AggregateDefinition, why: str) -> None:
    """Pending and active instances of a changed or removed definition become invalid;
    their tables (if any) are dropped by the next batch."""
    now = utcnow()
    for instance in aggregates.definition_instances(session, definition.id, LIVE_STATUSES):
        aggregates.set_instance_status(
            session, instance.id, InstanceStatus.INVALID, message=why, drop_after=now
        )


def _queue_pending(session: Session, project_id: uuid.UUID, requested_by: str) -> list[uuid.UUID]:
    queued = []
    for cube in catalog.list_cubes(session, project_id):
        if aggregates.cube_has_pending_instances(session, cube.id):
            batch = queue_batch(
                session, cube, BatchType.MATERIALIZE_PENDING, requested_by=requested_by
            ).batch
            queued.append(batch.id)
    return queued
