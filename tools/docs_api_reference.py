"""MkDocs hook: the API reference page, rendered from the app's own OpenAPI schema.

Nothing is committed: at every ``mkdocs build`` the app is created on a throw-away SQLite
store, its OpenAPI document is rendered to Markdown and added as ``reference/api.md``, so
the reference can never drift from the code (routes, parameters, payload fields).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

PAGE = "reference/api.md"
METHODS = ("get", "post", "put", "delete", "patch")


def openapi_schema() -> dict[str, Any]:
    from aggsched.api import create_app
    from aggsched.config import Settings
    from aggsched.store import Store

    with tempfile.TemporaryDirectory() as home:
        store = Store.open(f"sqlite:///{home}/aggsched.db")
        try:
            return create_app(Settings(home=Path(home)), store).openapi()
        finally:
            store.dispose()


def _anchor(name: str) -> str:
    return "schema-" + "".join(c if c.isalnum() else "-" for c in name.lower())


def type_of(schema: dict[str, Any]) -> str:
    """A schema as a short Markdown type: ``string``, ``[Batch](#...)``, ``list of ...``."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{_anchor(name)})"
    if "anyOf" in schema:
        kinds = [type_of(s) for s in schema["anyOf"]]
        return " or ".join(k for k in kinds if k != "null") + (
            " (nullable)" if "null" in kinds else ""
        )
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {type_of(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        return "object"
    return str(kind)


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _operation(method: str, path: str, op: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", ""]
    if op.get("description"):
        lines += [op["description"].replace("``", "`"), ""]
    params = op.get("parameters", [])
    if params:
        lines += ["| parameter | in | type | required | meaning |", "|---|---|---|---|---|"]
        for p in params:
            lines.append(
                f"| `{p['name']}` | {p['in']} | {_cell(type_of(p.get('schema', {})))} | "
                f"{'yes' if p.get('required') else 'no'} | {_cell(p.get('description', ''))} |"
            )
        lines.append("")
    body = op.get("requestBody", {}).get("content", {})
    for content_type, content in body.items():
        lines += [f"Body ({content_type}): {type_of(content.get('schema', {}))}", ""]
    lines += ["| status | response |", "|---|---|"]
    for code, response in op.get("responses", {}).items():
        if code == "422":  # FastAPI's default; aggsched answers bad input with 400
            continue
        kinds = [type_of(c.get("schema", {})) for c in response.get("content", {}).values()]
        shown = ", ".join(kinds) or "—"
        lines.append(f"| {code} | {_cell(response.get('description', ''))}: {_cell(shown)} |")
    return [*lines, ""]


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {name} {{: #{_anchor(name)} }}", ""]
    if schema.get("description"):
        lines += [_cell(schema["description"]), ""]
    if "enum" in schema:
        return [*lines, type_of(schema), ""]
    required = set(schema.get("required", []))
    lines += ["| field | type | required | meaning |", "|---|---|---|---|"]
    for field, spec in schema.get("properties", {}).items():
        lines.append(
            f"| `{field}` | {_cell(type_of(spec))} | {'yes' if field in required else 'no'} | "
            f"{_cell(spec.get('description', ''))} |"
        )
    return [*lines, ""]


def render(spec: dict[str, Any]) -> str:
    """The whole reference page: every operation by tag, then every payload schema."""
    lines = [
        "# API reference",
        "",
        "Generated from aggsched's OpenAPI document at build time (a running server also "
        "serves it at `/openapi.json`, browsable at `/docs`). Every `/org/...` and "
        "`/aggregates/orgId/...` call needs `Authorization: Bearer <token>` from "
        "`GET /{orgId}/auth`; every JSON answer is wrapped in the envelope "
        '`{"response": ..., "status": {...}}`.',
        "",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, operations in spec["paths"].items():
        for method in METHODS:
            if method in operations:
                op = operations[method]
                by_tag.setdefault((op.get("tags") or ["other"])[0], []).append((method, path, op))
    for tag, ops in by_tag.items():
        lines += [f"## {tag.capitalize()}", ""]
        for method, path, op in ops:
            lines += _operation(method, path, op)
    lines += ["## Schemas", ""]
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        if name in ("HTTPValidationError", "ValidationError"):
            continue
        lines += _schema(name, schema)
    return "\n".join(lines)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, PAGE, content=render(openapi_schema())))
    return files
