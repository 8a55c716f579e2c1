"""AtScale's response envelope and timestamp format, shared by every endpoint.

Existing AtScale scripts parse ``{"response": ..., "status": {...}}`` and Go-style
timestamps, so every payload goes through here: ``Envelope[T]`` documents the shape in
OpenAPI, ``ok()`` builds it, and ``timestamp()`` renders times the way AtScale does
(a time that never happened is Go's zero time, never ``null``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Generic, TypeVar

import orjson
from fastapi import Response
from pydantic import BaseModel, Field

T = TypeVar("T")

ZERO_TIME = "0001-01-01T00:00:00Z"
OK_I18N = "response.ok"


class Status(BaseModel):
    """The ``status`` member: an i18n key and a human message."""

    i18n_message: str = Field(examples=["response.ok"])
    message: str = Field(examples=["OK"])


class FieldProblem(BaseModel):
    """One problem with the request: which field (or ``file:line path``) and what."""

    field: str
    problem: str


class Envelope(BaseModel, Generic[T]):
    """Every successful response: the payload under ``response`` and an ok status."""

    response: T
    status: Status


class ErrorEnvelope(BaseModel):
    """Every error response: ``response`` is null, ``errors`` lists bad fields if any."""

    response: None = None
    status: Status
    errors: list[FieldProblem] = Field(default_factory=list)


def ok(payload: object) -> dict[str, object]:
    """Wrap ``payload`` in the success envelope."""
    return {"response": payload, "status": {"i18n_message": OK_I18N, "message": "OK"}}


def ok_json(payload: object) -> Response:
    """The success envelope around ``payload`` (plain JSON types only), encoded by
    orjson: for large lists several times faster than the stdlib encoder behind
    ``JSONResponse``, and FastAPI does not validate a ``Response`` again."""
    return Response(orjson.dumps(ok(payload)), media_type="application/json")


def timestamp(value: datetime | None) -> str:
    """RFC 3339 UTC with ``Z`` and microseconds; ``None`` becomes Go's zero time.

    ``isoformat`` rather than ``strftime``: several times faster, and lists render
    thousands of these."""
    if value is None:
        return ZERO_TIME
    if value.tzinfo is not None and value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
