"""Settings, read once from the environment (prefix ``AGGSCHED_``) and passed explicitly.

Nothing reads the environment behind the caller's back: the CLI builds one ``Settings``
and hands it to the store, engine and server it starts, so tests can run several
independent instances side by side.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGGSCHED_", extra="ignore")

    home: Path = Field(
        default=Path(".aggsched"),
        description="Data directory: the SQLite metadata DB, the JWT key, demo data.",
    )
    database_url: str | None = Field(
        default=None,
        description="Metadata DB URL; default: SQLite file `<home>/aggsched.db`.",
    )

    max_upload_bytes: int = Field(
        default=50 * 1024 * 1024,
        ge=1,
        description="Largest accepted SML project upload (.zip/.tar.gz); larger gets 413.",
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
        default=3600, ge=1, description="Lifetime of the tokens `GET /{orgId}/auth` issues."
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

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'aggsched.db').resolve()}"

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home
