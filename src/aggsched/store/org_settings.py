"""Per-organization settings (AtScale-style dotted keys), typed, with defaults.

Values are stored as text; each known key has one type and a default here, so a missing
row means "default" and a bad value is refused when it is set, not when a build reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from aggsched.store.errors import InvalidValueError
from aggsched.store.models import OrgSetting

SettingValue = bool | int | str


@dataclass(frozen=True)
class SettingSpec:
    """Type, default and meaning of one known setting key."""

    type: type[bool] | type[int] | type[str]
    default: SettingValue
    help: str


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
    "aggregates.instance.maxShrinkPercent": SettingSpec(
        int, 0, "a rebuilt aggregate with this many percent fewer rows than the active one "
        "does not replace it (0 = off; an empty table never replaces a non-empty one)"
    ),
    "queries.timeoutSeconds": SettingSpec(
        int, 60, "seconds a semantic query may run in the warehouse before it is cancelled "
        "(answered 504); 0 = no limit"
    ),
    "queries.retentionDays": SettingSpec(
        int, 30, "days the query log keeps each query (pruned by the server)"
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
