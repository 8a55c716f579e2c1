"""Structured logs: one pipeline (structlog) for our loggers, the stdlib's and uvicorn's.

aggsched's modules keep using ``logging.getLogger(__name__)``; ``configure_logging``
routes every record through structlog's ``ProcessorFormatter``, which adds the level,
logger, UTC timestamp, this node's id and the ids bound to the current context (request,
organization, batch, schedule job), then renders JSON lines (``json``) or readable,
coloured lines on a terminal (``console``).

Ids are bound with ``log_context(batch_id=...)`` (contextvars: per thread and per asyncio
task, so concurrent requests and builds never mix them up).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import structlog
from structlog.contextvars import bind_contextvars, clear_contextvars, get_contextvars
from structlog.typing import EventDict, Processor

_HANDLER_NAME = "aggsched"
_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")


@contextmanager
def log_context(**ids: object) -> Iterator[None]:
    """Bind ``ids`` (None values skipped) to every log line inside the block; on exit the
    context is exactly what it was before, whatever was bound inside."""
    before = get_contextvars()
    bind_contextvars(**{k: str(v) for k, v in ids.items() if v is not None})
    try:
        yield
    finally:
        clear_contextvars()
        bind_contextvars(**before)


def bind_log_ids(**ids: object) -> None:
    """Add ids to the current ``log_context`` (e.g. the organization, once it is known)."""
    bind_contextvars(**{k: str(v) for k, v in ids.items() if v is not None})


def _add_node(node_id: str | None) -> Processor:
    def add(_logger: Any, _name: str, event: EventDict) -> EventDict:
        if node_id:
            event.setdefault("node_id", node_id)
        return event

    return add


def _uvicorn_access(_logger: Any, _name: str, event: EventDict) -> EventDict:
    """uvicorn's access line as fields too: client, method, path, status (the formatter
    hands the record's arguments over as ``positional_args``; they go no further)."""
    args = event.pop("positional_args", None)
    record = event.get("_record")
    is_access = record is not None and record.name == "uvicorn.access"
    if is_access and isinstance(args, tuple) and len(args) == 5:
        client, method, path, _version, status = args
        event.update(client=client, method=method, path=path, status=status)
    return event


def _drop_color_message(_logger: Any, _name: str, event: EventDict) -> EventDict:
    event.pop("color_message", None)  # uvicorn's duplicate, with ANSI codes
    return event


def use_json(log_format: str, stream: TextIO) -> bool:
    """``auto`` is JSON unless the stream is a terminal."""
    if log_format == "auto":
        return not (hasattr(stream, "isatty") and stream.isatty())
    return log_format == "json"


def configure_logging(
    log_format: str = "auto",
    level: str = "INFO",
    *,
    node_id: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Send every log record of this process through structlog to ``stream`` (stderr).

    Idempotent: calling it again replaces the handler it installed before (the CLI calls
    it once per command; tests call it with their own stream).
    """
    out = stream or sys.stderr
    as_json = use_json(log_format, out)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_node(node_id),
        _uvicorn_access,
        _drop_color_message,
    ]
    renderer: Processor
    if as_json:
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=hasattr(out, "isatty") and out.isatty())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        pass_foreign_args=True,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _UVICORN:  # uvicorn's own handlers would print a second, unstructured copy
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


def reset_logging() -> None:
    """Remove the handler ``configure_logging`` installed (tests that configure it)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(handler)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger (key-value events) that goes through the same pipeline."""
    return structlog.stdlib.get_logger(name)  # type: ignore[no-any-return]


__all__ = [
    "bind_log_ids",
    "configure_logging",
    "get_logger",
    "log_context",
    "reset_logging",
    "use_json",
]
