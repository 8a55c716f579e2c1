"""The console talks to the REST API in-process, as the signed-in user.

Every read and change the API offers goes through it (an ASGI call into the same app,
with the session's bearer token), so the console shows exactly what the API answers and
is refused exactly what the API refuses: roles, organizations, validation and every
engine rule stay in one place.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from starlette.types import ASGIApp

INTERNAL_BASE = "http://aggsched-console.internal"
TIMEOUT_SECONDS = 120.0  # a semantic query may take up to its own timeout (60 s default)


@dataclass
class ApiFailure(Exception):
    """An API error answer: status code, message and the fields it names."""

    status: int
    message: str
    problems: list[dict[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message

    def problem_for(self, name: str) -> str | None:
        for problem in self.problems:
            if problem.get("field") == name:
                return problem.get("problem")
        return None


def segment(value: object) -> str:
    """One URL path segment (organization ids may hold any character)."""
    return quote(str(value), safe="")


def _failure(response: httpx.Response) -> ApiFailure:
    try:
        body = response.json()
        message = str(body["status"]["message"])
        problems = [p for p in body.get("errors") or [] if isinstance(p, dict)]
    except (ValueError, KeyError, TypeError):
        message, problems = response.text[:500] or response.reason_phrase, []
    return ApiFailure(response.status_code, message, problems)


class ConsoleApi:
    """An API client bound to one app and one caller."""

    def __init__(self, app: ASGIApp, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self._client = httpx.AsyncClient(
            transport=transport, base_url=INTERNAL_BASE, headers=headers,
            timeout=TIMEOUT_SECONDS,
        )  # fmt: skip

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> ConsoleApi:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """The ``response`` member of the envelope; ``ApiFailure`` for any error."""
        clean = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        response = await self._client.request(method, path, params=clean, json=json)
        if response.status_code >= 400:
            raise _failure(response)
        return response.json()["response"]

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params=params)

    async def post(self, path: str, json: Any = None, **params: Any) -> Any:
        return await self.call("POST", path, params=params, json=json)

    async def put(self, path: str, **params: Any) -> Any:
        return await self.call("PUT", path, params=params)

    async def delete(self, path: str, **params: Any) -> Any:
        return await self.call("DELETE", path, params=params)

    async def sign_in(self, org: str, username: str, password: str) -> str:
        """AtScale's ``GET /{orgId}/auth`` with HTTP Basic: the token, or ``ApiFailure``."""
        raw = base64.b64encode(f"{username}:{password}".encode()).decode()
        response = await self._client.get(
            f"/{segment(org)}/auth", headers={"Authorization": f"Basic {raw}"}
        )
        if response.status_code >= 400:
            raise _failure(response)
        return response.text.strip()
