"""Warehouse URLs: ``${VAR}`` substitution and redaction. Pure: no I/O.

Connection URLs live in configuration files, secrets live in the environment, so a URL
may say ``postgresql://etl:${PGPASSWORD}@db:5432/dw``. The resolved URL holds the secret
and must never be logged; log ``redact_url(url)`` instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from aggsched.warehouse.errors import WarehouseConfigError

_VAR = re.compile(r"\$\{([^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
SCHEMES = ("duckdb", "postgresql", "postgres", "sc", "spark")
_SPARK_LOCAL = re.compile(r"^spark://(local(?:\[(?:[1-9][0-9]*|\*)\])?)(/.*)?$", re.IGNORECASE)


def resolve_url(url: str, env: Mapping[str, str]) -> str:
    """Replace every ``${NAME}`` in ``url`` by ``env[NAME]``.

    Raises ``WarehouseConfigError`` naming the variable (never its value) when it is
    missing or malformed.
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if not _NAME.fullmatch(name):
            raise WarehouseConfigError(
                f"invalid variable reference ${{{name}}} in warehouse URL {redact_url(url)}"
            )
        if name not in env:
            raise WarehouseConfigError(
                f"environment variable {name} used in warehouse URL {redact_url(url)} is not set"
            )
        return env[name]

    return _VAR.sub(substitute, url)


_PLACEHOLDER = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_SECRET_PARAMS = ("password", "secret", "token", "key")


def _hidden(value: str) -> str:
    """A `${VAR}` placeholder is no secret and stays; anything else becomes ***."""
    return value if _PLACEHOLDER.match(value) else "***"


def redact_url(url: str) -> str:
    """The URL with literal passwords (in the user info or in `password`-like query
    parameters) replaced by ``***``; safe to log, store in messages and return from the
    API. Never raises: a URL that does not parse is not shown at all."""
    if _SPARK_LOCAL.match(url):
        return url  # the local form holds no secret (and its `local[N]` is no host)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{_hidden(unquote(parts.password))}@{hostport}"
    params = parse_qsl(parts.query, keep_blank_values=True)
    secret = [k for k, _ in params if any(w in k.lower() for w in _SECRET_PARAMS)]
    query = parts.query
    if secret:
        query = "&".join(f"{k}={_hidden(v) if k in secret else v}" for k, v in params)
    path = _redact_path_params(parts.path)
    if netloc == parts.netloc and query == parts.query and path == parts.path:
        return url  # nothing to hide: unchanged, byte for byte
    return urlunsplit(parts._replace(netloc=netloc, path=path, query=query))


def _redact_path_params(path: str) -> str:
    """Spark Connect puts its parameters in the path: ``sc://host:443/;token=...;x=1``."""
    if ";" not in path:
        return path
    head, *params = path.split(";")
    shown = []
    for param in params:
        key, eq, value = param.partition("=")
        secret = eq and any(w in key.lower() for w in _SECRET_PARAMS)
        shown.append(f"{key}={_hidden(value)}" if secret else param)
    return ";".join([head, *shown])


def validate_url(url: str) -> str:
    """Check a warehouse URL before it is stored: supported scheme, parseable, numeric port.
    Returns it unchanged; `WarehouseConfigError` (with the URL redacted) otherwise."""
    if url_scheme(url) != "spark":  # `spark://local[2]` is no host[:port]
        try:
            urlsplit(url).port  # noqa: B018
        except ValueError as exc:
            msg = f"malformed warehouse URL {redact_url(url)}: {exc}"
            raise WarehouseConfigError(msg) from exc
    scheme = url_scheme(url)
    if scheme == "duckdb":
        duckdb_path(url)
    elif scheme == "spark":
        spark_local(url)
    elif scheme == "sc":
        spark_connect_url(url)
    return url


def url_scheme(url: str) -> str:
    """The scheme of a warehouse URL, checked against the supported ones."""
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise WarehouseConfigError(
            f"unsupported warehouse URL scheme {scheme!r} in {redact_url(url)}; "
            f"expected one of {', '.join(s + '://' for s in SCHEMES)}"
        )
    return scheme


def duckdb_path(url: str) -> str:
    """The database path of ``duckdb:///abs/path.duckdb`` (or ``:memory:``)."""
    prefix = "duckdb://"
    if not url.lower().startswith(prefix):
        raise WarehouseConfigError(f"not a DuckDB URL: {redact_url(url)}")
    rest = url[len(prefix) :]
    if not rest.startswith("/"):
        raise WarehouseConfigError(
            f"DuckDB URL must be duckdb:///<absolute path> or duckdb:///:memory:, got {url}"
        )
    path = rest[1:] if rest[1:].startswith(":memory:") else rest
    if path in ("", "/"):
        raise WarehouseConfigError(f"DuckDB URL has no database path: {url}")
    return path


def duckdb_url(path: str | PathLike[str]) -> str:
    """``duckdb:///abs/path`` for a database file (made absolute)."""
    return "duckdb://" + os.path.abspath(path)


# ---------------------------------------------------------------------- Spark


@dataclass(frozen=True)
class SparkLocal:
    """``spark://local[N]/abs/dir``: an in-process Spark session.

    ``master`` is Spark's own master string (``local``, ``local[2]``, ``local[*]``).
    ``directory`` holds the session's metastore and managed tables, so they outlive the
    process; None means a throw-away session whose tables vanish with the process.
    """

    master: str
    directory: str | None


def spark_local(url: str) -> SparkLocal:
    """Parse the local Spark form; `WarehouseConfigError` says what is accepted."""
    match = _SPARK_LOCAL.match(url)
    if match is None:
        raise WarehouseConfigError(
            f"Spark URL must be spark://local, spark://local[N] or spark://local[*], optionally "
            f"followed by an absolute directory for its tables (spark://local[2]/srv/spark); "
            f"a cluster is reached through Spark Connect (sc://host:15002); got {redact_url(url)}"
        )
    master, path = match.group(1).lower(), match.group(2)
    if path in (None, "/"):
        return SparkLocal(master, None)
    return SparkLocal(master, path)


def spark_connect_url(url: str) -> str:
    """Check ``sc://host[:port][/;param=value...]`` (Spark Connect's own URL format)."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise WarehouseConfigError(f"Spark Connect URL has no host: {redact_url(url)}")
    if parts.path not in ("", "/") and not parts.path.startswith("/;"):
        raise WarehouseConfigError(
            f"Spark Connect URL takes parameters as /;name=value, not a path: {redact_url(url)}"
        )
    return url
