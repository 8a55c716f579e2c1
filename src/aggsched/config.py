"""Settings, read once from the environment (prefix ``AGGSCHED_``) and passed explicitly.

Nothing reads the environment behind the caller's back: the CLI builds one ``Settings``
and hands it to the store, engine and server it starts, so tests can run several
independent instances side by side.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "AGGSCHED_"
LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    home: Path = Field(
        default=Path(".aggsched"),
        description="Data directory: the SQLite metadata DB, the JWT key, demo data.",
    )
    database_url: str | None = Field(
        default=None,
        description="Metadata DB URL; default: SQLite file `<home>/aggsched.db`.",
    )
    auto_migrate: bool = Field(
        default=True,
        description="Migrate the metadata DB to this version's schema when a node or command "
        "opens it. Off: refuse to start until `aggsched db upgrade` has run (advised with "
        "several nodes, so one upgrade happens at a time you choose).",
    )

    max_upload_bytes: int = Field(
        default=50 * 1024 * 1024,
        ge=1,
        description="Largest accepted SML project upload request (.zip/.tar.gz, streamed to "
        "disk); larger gets 413.",
    )
    max_upload_member_bytes: int = Field(
        default=20 * 1024 * 1024,
        ge=1,
        description="Largest file an uploaded archive may hold (counted as it is extracted).",
    )
    max_upload_expanded_bytes: int = Field(
        default=200 * 1024 * 1024,
        ge=1,
        description="Most bytes an uploaded archive may expand to in all (a 50 MB zip of "
        "zeros expands to about 50 GB); past it the upload gets 400.",
    )
    max_upload_members: int = Field(
        default=10_000,
        ge=1,
        description="Most entries (files, folders) an uploaded archive may hold.",
    )
    max_json_bytes: int = Field(
        default=1024 * 1024,
        ge=1,
        description="Largest accepted request body on every other endpoint; larger gets 413.",
    )
    jwt_secret: str | None = Field(
        default=None,
        description="HS256 key for the tokens `GET /{orgId}/auth` issues; default: a key "
        "generated once and kept in `<home>/jwt.key` (mode 0600).",
    )
    jwt_lifetime_seconds: int = Field(
        default=3600,
        ge=1,
        description="Lifetime of the (browser/session) tokens `GET /{orgId}/auth` issues; "
        "scripts use long-lived API tokens (`aggsched token create`) instead.",
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="OIDC mode: accept RS256 bearer tokens whose `iss` is this issuer.",
    )
    oidc_audience: str | None = Field(
        default=None, description="OIDC mode: the `aud` the tokens must carry (checked if set)."
    )
    oidc_jwks_url: str | None = Field(
        default=None,
        description="OIDC mode: JWKS URL; default: the issuer's discovery document "
        "`jwks_uri`, else `<issuer>/.well-known/jwks.json`.",
    )
    oidc_roles_claim: str = Field(
        default="roles",
        description="OIDC mode: claim holding roles, either a list of `org:role` strings or "
        "an object mapping org id -> role or list of roles.",
    )
    oidc_username_claim: str = Field(
        default="preferred_username",
        description="OIDC mode: claim naming the user (falls back to `sub`).",
    )

    node_id: str | None = Field(
        default=None,
        description="Name of this node in batch `worker_id`s and leases; default: "
        "`<hostname>-<pid>-<random>`.",
    )
    max_concurrent_builds: int = Field(
        default=2, ge=0, description="Build batches one node runs at once (0: no workers)."
    )
    max_builds_per_connection: int = Field(
        default=1,
        ge=1,
        description="Build batches one node runs at once against one SML connection.",
    )
    heartbeat_seconds: float = Field(
        default=2.0, gt=0, description="How often a running batch proves its worker is alive."
    )
    stale_after_seconds: float = Field(
        default=15.0,
        gt=0,
        description="A running batch without a heartbeat for this long is recovered by any "
        "live node (re-queued once, then failed 'worker lost').",
    )
    misfire_threshold_seconds: float = Field(
        default=60.0,
        ge=0,
        description="A fire later than this (nothing was running) is a misfire: it fires "
        "once now and the schedule resumes its cadence (Quartz's default is 60 s).",
    )
    scheduler_batch_size: int = Field(
        default=1000,
        ge=1,
        description="Due schedules one scheduler transaction fires at most (a pass is "
        "set-based: a few statements whatever its size, so a second's fires fit in one).",
    )
    scheduler_idle_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Longest scheduler sleep without a wake-up (a safety poll; changes "
        "normally wake it at once through LISTEN/NOTIFY or the in-process hook).",
    )
    worker_poll_seconds: float = Field(
        default=1.0, gt=0, description="Longest idle worker wait before looking for batches."
    )
    scheduler_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="SQLite only: lifetime of the single-scheduler lease (renewed while alive).",
    )
    shutdown_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        description="On SIGTERM, how long running builds may finish before they are cancelled.",
    )

    log_format: LogFormat = Field(
        default="auto",
        description="`json`: one JSON object per line (for log shippers); `console`: "
        "readable lines, coloured on a terminal; `auto`: console on a terminal, else JSON.",
    )
    log_level: LogLevel = Field(default="INFO", description="Lowest level logged.")
    metrics_token: str | None = Field(
        default=None,
        description="When set, `GET /metrics` needs `Authorization: Bearer <token>`; unset, "
        "it is open like `/healthz`.",
    )

    console_enabled: bool = Field(
        default=True,
        description="Serve the web console at `/` (`aggsched serve`, `aggsched demo`); off: "
        "the REST API alone.",
    )
    console_secure_cookies: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="The console's cookies carry `Secure`: `auto` when the request came over "
        "HTTPS (behind a proxy: its `X-Forwarded-Proto`, trusted from "
        "`FORWARDED_ALLOW_IPS`), `always`, or `never`.",
    )
    console_oidc_client_id: str | None = Field(
        default=None,
        description="Console sign-in with OIDC (authorization code flow with PKCE) when set "
        "together with `AGGSCHED_OIDC_ISSUER`: the client id registered at the issuer.",
    )
    console_oidc_client_secret: str | None = Field(
        default=None,
        description="Console OIDC: the client secret of a confidential client (sent to the "
        "token endpoint); unset: a public client (PKCE only).",
    )
    console_oidc_scopes: str = Field(
        default="openid profile",
        description="Console OIDC: the scopes asked for (space-separated).",
    )
    console_public_url: str | None = Field(
        default=None,
        description="The console's external base URL (e.g. `https://aggsched.example.com`), "
        "for the OIDC redirect URI; default: the URL the request came to.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'aggsched.db').resolve()}"

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home


#: settings whose values are never printed
SECRET_FIELDS = frozenset({"jwt_secret", "metrics_token", "console_oidc_client_secret"})


class ConfigError(ValueError):
    """A setting has a value aggsched cannot run with; the message names it and says
    which values are accepted."""


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def _bound(field: FieldInfo) -> str:
    symbols = {annotated_types.Ge: ("≥", "ge"), annotated_types.Gt: (">", "gt"),
               annotated_types.Le: ("≤", "le"), annotated_types.Lt: ("<", "lt")}  # fmt: skip
    parts = []
    for item in field.metadata:
        for kind, (symbol, attribute) in symbols.items():
            if isinstance(item, kind):
                parts.append(f"{symbol} {getattr(item, attribute)}")
    return " and ".join(parts)


def accepted_values(field: FieldInfo) -> str:
    """What a field accepts, in words (for errors and the generated settings table)."""
    annotation = field.annotation
    optional = False
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not NoneType]
        optional = len(args) < len(get_args(annotation))
        annotation = args[0] if len(args) == 1 else annotation
    if get_origin(annotation) is Literal:
        text = "one of " + ", ".join(f"`{v}`" for v in get_args(annotation))
    elif annotation is bool:
        text = "`true` or `false`"
    elif annotation in (int, float):
        noun = "an integer" if annotation is int else "a number"
        bound = _bound(field)
        text = f"{noun} {bound}" if bound else noun
    elif annotation is Path:
        text = "a directory path"
    else:
        text = "text"
    return f"{text} (or unset)" if optional else text


def describe_errors(error: ValidationError, environ: Mapping[str, str]) -> str:
    """One line per invalid setting: its variable, the value given, what is accepted."""
    lines = []
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else ""
        name = env_name(field)
        raw = environ.get(name, problem.get("input"))
        shown = "***" if field in SECRET_FIELDS else repr(raw)
        info = Settings.model_fields.get(field)
        accepted = f"; accepted: {accepted_values(info)}" if info else ""
        lines.append(f"invalid setting {name}={shown}: {problem['msg']}{accepted}")
    return "\n".join(lines)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the environment (plus ``overrides``), or ``ConfigError`` naming each
    invalid variable and the values it accepts."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        env = os.environ if environ is None else environ
        raise ConfigError(describe_errors(exc, env)) from None


@dataclass(frozen=True)
class SettingRow:
    """One row of the settings reference (``aggsched config``, the docs table)."""

    name: str
    accepted: str
    default: str
    meaning: str


def _shown_default(field: FieldInfo) -> str:
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def settings_reference() -> list[SettingRow]:
    """Every ``AGGSCHED_*`` variable: what it accepts, its default and its meaning."""
    return [
        SettingRow(
            env_name(name), accepted_values(field), _shown_default(field), field.description or ""
        )
        for name, field in Settings.model_fields.items()
    ]


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """``AGGSCHED_*`` variables that name no setting (typos are otherwise ignored)."""
    known = {env_name(name) for name in Settings.model_fields}
    env = os.environ if environ is None else environ
    return sorted(k for k in env if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)
