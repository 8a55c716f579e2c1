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

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'aggsched.db').resolve()}"

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home
