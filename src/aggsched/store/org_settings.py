"""Per-organization settings (AtScale-style dotted keys), typed, with defaults.

Values are stored as text; each known key has one type and a default here, so a missing
row means "default" and a bad value is refused when it is set, not when a build reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from aggsched.cron import CronError, CronExpression
from aggsched.store.errors import InvalidValueError
from aggsched.store.models import OrgSetting

SettingValue = bool | int | str


@dataclass(frozen=True)
class SettingSpec:
    """Type, default and meaning of one known setting key."""

    type: type[bool] | type[int] | type[str]
    default: SettingValue
    help: str
    #: raises ValueError (with the reason) for a text value the key does not accept
    check: Callable[[str], object] | None = None


def _utc_cron(text: str) -> CronExpression:
    try:
        return CronExpression.parse(text, "UTC")
    except CronError as exc:
        raise ValueError(f"not a Quartz cron expression: {exc}") from exc


SETTINGS: dict[str, SettingSpec] = {
    "aggregates.new.build.scheduled": SettingSpec(
        bool, False, "true: new aggregates wait for the next scheduled build instead of "
        "being built right after publish"
    ),
    "aggregates.batch.max.failures": SettingSpec(
        int, 0, "a batch stops (failed) after this many failed aggregates; 0 = no limit"
    ),
    "aggregates.batch.retry.maxAttemptsPerAggregate": SettingSpec(
        int, 3, "attempts per aggregate within one batch (transient errors only) before it "
        "counts as failed"
    ),
    "aggregates.batch.maxAttempts": SettingSpec(
        int, 2, "claims of one batch (worker crashes) before recovery fails it"
    ),
    "aggregates.instance.drop.graceSeconds": SettingSpec(
        int, 600, "seconds a replaced aggregate table stays before it is dropped"
    ),
    "aggregates.build.timeoutSeconds": SettingSpec(
        int, 0, "seconds one aggregate's build may run before it is cancelled; 0 = no limit"
    ),
    "aggregates.build.parallelConnections": SettingSpec(
        int, 2, "warehouse connections that build independent aggregates of one batch at "
        "once (PostgreSQL; DuckDB uses its own threads for one aggregate at a time); 1 = "
        "one after another"
    ),
    "aggregates.instance.maxShrinkPercent": SettingSpec(
        int, 0, "a rebuilt aggregate with this many percent fewer rows than the active one "
        "does not replace it (0 = off; an empty table never replaces a non-empty one)"
    ),
    "aggregates.system.advise.enabled": SettingSpec(
        bool, True, "false: the advisor does not run on its schedule (it can still be run "
        "with `aggsched advise` or the API)"
    ),
    "aggregates.system.advise.schedule": SettingSpec(
        str, "0 0 * * * ?", "Quartz cron expression, evaluated in UTC, of the advisor's "
        "runs (each cube with logged queries gets demand-defined aggregates)",
        check=_utc_cron,
    ),
    "aggregates.system.lookbackDays": SettingSpec(
        int, 7, "days of the query log the advisor learns from"
    ),
    "aggregates.system.maxRows": SettingSpec(
        int, 0, "total estimated rows the aggregates of one cube may hold (existing ones "
        "count); 0 = a quarter of the largest queried fact's rows"
    ),
    "aggregates.system.maxPerCube": SettingSpec(
        int, 20, "aggregates one cube may hold, existing ones included"
    ),
    "aggregates.system.minBenefit": SettingSpec(
        int, 0, "the smallest benefit (weighted rows saved) worth a new aggregate"
    ),
    "aggregates.system.dropAfterDays": SettingSpec(
        int, 14, "a demand-defined aggregate no query used for this many days is retired"
    ),
    "queries.timeoutSeconds": SettingSpec(
        int, 60, "seconds a semantic query may run in the warehouse before it is cancelled "
        "(answered 504); 0 = no limit"
    ),
    "queries.retentionDays": SettingSpec(
        int, 30, "days the query log keeps each query (pruned by the server)"
    ),
    "aggregates.maintenance.enabled": SettingSpec(
        bool, True, "false: maintenance never fires on its schedule (it can still be run "
        "with `aggsched maintenance run` or the API)"
    ),
    "aggregates.maintenance.schedule": SettingSpec(
        str, "0 0 4 * * ?", "Quartz cron expression, evaluated in UTC, of the "
        "organization's maintenance (health checks, stray tables, history pruning)",
        check=_utc_cron,
    ),
    "aggregates.maintenance.batchRetentionDays": SettingSpec(
        int, 90, "maintenance deletes finished batches older than this, keeping each "
        "cube's newest ones (0 = keep every batch)"
    ),
    "aggregates.maintenance.batchesKeptPerCube": SettingSpec(
        int, 100, "newest batches of each cube kept whatever their age"
    ),
    "aggregates.maintenance.executionRetentionDays": SettingSpec(
        int, 90, "maintenance deletes schedule executions older than this, keeping each "
        "schedule's latest (0 = keep every execution)"
    ),
}  # fmt: skip


def _spec(key: str) -> SettingSpec:
    spec = SETTINGS.get(key)
    if spec is None:
        raise InvalidValueError(f"unknown setting {key!r}; known: {', '.join(sorted(SETTINGS))}")
    return spec


def parse_setting(key: str, raw: str) -> SettingValue:
    """``raw`` text converted to the key's type, or ``InvalidValueError`` saying why."""
    spec = _spec(key)
    text = raw.strip()
    if spec.type is bool:
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise InvalidValueError(f"setting {key!r} must be true or false, got {raw!r}")
    if spec.type is int:
        try:
            value = int(text)
        except ValueError as exc:
            raise InvalidValueError(f"setting {key!r} must be an integer, got {raw!r}") from exc
        if value < 0:
            raise InvalidValueError(f"setting {key!r} must be 0 or more, got {value}")
        return value
    if spec.check is not None:
        try:
            spec.check(text)
        except ValueError as exc:
            raise InvalidValueError(f"setting {key!r}: {exc}") from exc
        return text
    return raw


def get_setting(session: Session, org_id: str, key: str) -> SettingValue:
    """The typed value of ``key`` for the organization (its default when unset)."""
    spec = _spec(key)
    raw = session.scalar(
        select(OrgSetting.value).where(OrgSetting.org_id == org_id, OrgSetting.key == key)
    )
    return spec.default if raw is None else parse_setting(key, raw)


def get_int_setting(session: Session, org_id: str, key: str) -> int:
    value = get_setting(session, org_id, key)
    if type(value) is not int:
        raise InvalidValueError(f"setting {key!r} is not an integer setting")
    return value


def get_str_setting(session: Session, org_id: str, key: str) -> str:
    value = get_setting(session, org_id, key)
    if not isinstance(value, str):
        raise InvalidValueError(f"setting {key!r} is not a text setting")
    return value


def get_bool_setting(session: Session, org_id: str, key: str) -> bool:
    value = get_setting(session, org_id, key)
    if not isinstance(value, bool):
        raise InvalidValueError(f"setting {key!r} is not a true/false setting")
    return value


def set_setting(session: Session, org_id: str, key: str, value: SettingValue) -> SettingValue:
    """Validate and store ``value`` (bools as ``true``/``false``); returns it typed."""
    raw = str(value).lower() if isinstance(value, bool) else str(value)
    typed = parse_setting(key, raw)
    row = session.get(OrgSetting, (org_id, key))
    if row is None:
        session.add(OrgSetting(org_id=org_id, key=key, value=raw))
    else:
        row.value = raw
    session.flush()
    return typed


def all_settings(session: Session, org_id: str) -> dict[str, SettingValue]:
    """Every known setting of the organization, stored values over defaults."""
    rows = session.execute(
        select(OrgSetting.key, OrgSetting.value).where(OrgSetting.org_id == org_id)
    )
    stored = {key: value for key, value in rows}
    return {
        key: parse_setting(key, stored[key]) if key in stored else spec.default
        for key, spec in SETTINGS.items()
    }
