"""Property-based fuzzing with hostile values (issue 12): every route of the app, every
path parameter, query parameter and body field, on SQLite and on PostgreSQL. Whatever
arrives, the answer is never a 5xx and comes within 2 seconds.

Unlike the schemathesis run (which generates what the OpenAPI schema describes), values
here are chosen to break things: NUL and other control characters, lone surrogates,
10,000-digit numbers, 100 KB strings, zone names that are directories, JSON nested
thousands deep, wrong content types, archives holding YAML bombs. The routes are read from
the app itself, so a new route is fuzzed without touching this file.
"""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile
import time
import zipfile
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from api_helpers import ApiEnv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MAX_EXAMPLES = 12
DEADLINE_SECONDS = 2.0

SPECIALS = [
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "\x7f", "\x1b[31m", "\n", "\t", "\r\n",
    "\u202e", "\ufeff", "日本語", "😀", "9" * 10_000, "1" * 300, "A" * 100_000, "America",
    "Etc", "../../etc/passwd", "%00", "%", "0.5", "-1", "1e309", "NaN", "Infinity", "true",
    "null", "[]", "{}", "' OR 1=1 --", "${HOME}", "0 0 1 * * ?", "* * * * * ? 2099",
    "0 0 0 0W * ?", "0 0 " + "1," * 2000 + "1 * * ?", "0/0 * * * * ?", "UTC",
    "Europe/Paris", "aggregate/create", "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-14:00", "2024-02-30T00:00:00Z", "default", "acme",
    "00000000-0000-0000-0000-000000000000", "aggsched_" + "x" * 43,
]  # fmt: skip

hostile_text = st.one_of(
    st.sampled_from(SPECIALS),
    st.text(max_size=40),
    st.builds(
        lambda a, b, c: a + b + c,
        st.text(max_size=8),
        st.sampled_from(SPECIALS[:14]),
        st.text(max_size=8),
    ),
)
# URLs are capped by clients (httpx: 64 KB): the long values there are 8 KB
url_text = hostile_text.map(lambda value: value[:8000])
json_scalar = st.one_of(
    hostile_text,
    st.integers(),
    st.sampled_from([10**400, -(2**63), 2**64, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)
CONTENT_TYPES = [
    "application/json", "text/plain", "application/x-www-form-urlencoded", None,
    "multipart/form-data; boundary=xyz", "application/merge-patch+json", "\u00e9/\u00e9",
]  # fmt: skip


def _encode(value: str) -> str:
    """Percent-encode any text, lone surrogates included (as the bytes a client sends)."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    body_fields: tuple[str, ...] | None  # None: no JSON body
    upload: bool = False
    label: str = field(default="", compare=False)


def _operations(api: ApiEnv) -> list[Operation]:
    spec = api.client.app.openapi()  # type: ignore[attr-defined]
    schemas = spec["components"]["schemas"]
    found = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            params = op.get("parameters", [])
            content = op.get("requestBody", {}).get("content", {})
            fields: tuple[str, ...] | None = None
            if "application/json" in content:
                text = json.dumps(content["application/json"]["schema"])
                refs = re.findall(r"#/components/schemas/(\w+)", text)
                fields = tuple(p for ref in refs for p in schemas[ref].get("properties", {}))
            found.append(
                Operation(
                    method.upper(),
                    path,
                    tuple(p["name"] for p in params if p["in"] == "path"),
                    tuple(p["name"] for p in params if p["in"] == "query"),
                    fields,
                    "multipart/form-data" in content,
                    f"{method.upper()} {path}",
                )
            )
    return found


def basic_auth(user: str, password: str) -> dict[str, str]:
    raw = (user + ":" + password).encode("utf-8", "surrogatepass")
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _tgz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines)


YAML_BODIES = st.one_of(
    st.sampled_from(
        [
            "object_type: catalog\nunique_name: x\nlabel: " + "[" * 20_000,
            "object_type: catalog\nunique_name: x\n" + _bomb(9),
            "object_type: catalog\nunique_name: x\nself: &s [*s]",
            'object_type: catalog\nunique_name: x\nlabel: "\\0"\nversion: 1',
            "object_type: catalog\nunique_name: " + "u" * 5000 + "\nlabel: x\nversion: 1",
            "object_type: catalog\nunique_name: x\nlabel: x" + " \t" * 20_000 + " y\n",
            "object_type: model\nunique_name: m\n" + "".join("  " * i + "k:\n" for i in range(300)),
            "\udcff\x00\x01",
        ]
    ),
    hostile_text,
)
archives = st.one_of(
    st.builds(lambda y: _zip({"catalog.yml": y.encode("utf-8", "surrogatepass")}), YAML_BODIES),
    st.builds(
        lambda y: _tgz({"repo/catalog.yml": y.encode("utf-8", "surrogatepass")}), YAML_BODIES
    ),
    st.builds(lambda n: _tgz({f"\udcff{n}/../catalog.yml": b"x", "\x00": b""}), st.integers()),
    st.binary(max_size=200),
    st.just(_zip({"big.yml": b"\0" * (4 * 1024 * 1024)})),
)


SWEEP = [
    "\x00", "a\x00", "\ud800", "\x1b[0m", "\n", "9" * 10_000, "A" * 8_000, "America", "0.5",
    "-1", "1e309", "NaN", "", "../x", "%00", "0001-01-01T00:00:00+01:00", "0 0 0 0W * ?",
]  # fmt: skip
VALID_FIELDS: dict[str, object] = {
    "time_expression": "0 0 1 * * ?", "path": "aggregate/create", "full_build": True,
    "time_zone": "UTC", "name": "hostile", "url": "duckdb:///tmp/hostile.duckdb",
    "aggregate_schema": "as_agg", "username": "viewer", "days": 1,
}  # fmt: skip


def _catalog(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


SWEEP_ARCHIVES = [
    _zip({"catalog.yml": _catalog("object_type: catalog\nunique_name: x\n" + _bomb(9))}),
    _zip({"catalog.yml": _catalog("object_type: catalog\nunique_name: x\nl: " + "[" * 20_000)}),
    _tgz({"r/catalog.yml": _catalog("object_type: catalog\nl: a" + "\t" * 9000 + "b")}),
    _zip({"catalog.yml": _catalog("object_type: catalog\nunique_name: \"a\\0b\"\nversion: 1")}),
    _zip({"catalog.yml": _catalog("object_type: catalog\nunique_name: " + "u" * 5000)}),
    _tgz({f"f{i}.yml": b"a: 1" for i in range(300)}),
    b"PK\x05\x06" + b"\xff" * 18,
]  # fmt: skip


@dataclass
class Fuzzer:
    """Sends hostile requests and checks each answer: never a 5xx, within 2 s, and a JSON
    body that parses (an error message that cannot be encoded is a crash too)."""

    api: ApiEnv
    real: dict[str, str]
    failures: list[str] = field(default_factory=list)
    sent: int = 0

    def check(self, method: str, url: str, **kwargs: Any) -> None:
        started = time.monotonic()
        reply = self.api.client.request(method, url, **kwargs)
        elapsed = time.monotonic() - started
        self.sent += 1
        where = f"{method} {url[:200]!r} {str(kwargs.get('content', ''))[:200]}"
        if reply.status_code >= 500:
            self.failures.append(f"{where}: {reply.status_code} {reply.text[:300]}")
        if elapsed > DEADLINE_SECONDS:
            self.failures.append(f"{where}: answered after {elapsed:.2f} s")
        if reply.headers.get("content-type", "").startswith("application/json"):
            reply.json()

    def url(self, op: Operation, values: dict[str, str], query: list[tuple[str, str]]) -> str:
        path = op.path
        for name in op.path_params:
            value = values[name] if name in values else self.real[name]
            path = path.replace("{" + name + "}", _encode(value))
        encoded = "&".join(f"{_encode(n)}={_encode(v)}" for n, v in query)
        return path + (f"?{encoded}" if encoded else "")

    def send(self, op: Operation, data: st.DataObject) -> None:
        """One request of random hostile values (Hypothesis draws them)."""
        values = {}
        for name in op.path_params:
            if not (data.draw(st.booleans()) and name in self.real):
                values[name] = data.draw(url_text)
        names = list(op.query_params) + data.draw(st.lists(url_text, max_size=2))
        chosen = data.draw(st.lists(st.sampled_from(names), max_size=4)) if names else []
        query = [(name, data.draw(url_text)) for name in chosen]
        headers = self._auth(op, data)
        kwargs: dict[str, Any] = {}
        if op.upload:
            archive = data.draw(archives)
            kwargs["files"] = {"file": ("repo.zip", archive, "application/octet-stream")}
        elif op.body_fields is not None or op.method in ("POST", "PUT", "DELETE"):
            kwargs["content"] = self._body(op, data)
            content_type = data.draw(st.sampled_from(CONTENT_TYPES))
            if content_type is not None:
                headers["Content-Type"] = content_type.encode("latin-1")  # type: ignore[assignment]
        self.check(op.method, self.url(op, values, query), headers=headers, **kwargs)

    def sweep(self, op: Operation) -> None:
        """Every hostile value in every path parameter, query parameter and body field,
        the rest of the request valid (so the value reaches the handler)."""
        headers = self.api.headers()
        if op.path == "/{orgId}/auth":
            headers = basic_auth("admin", "wrong")
        body = {k: v for k, v in VALID_FIELDS.items() if k in (op.body_fields or ())}
        content = json.dumps(body) if op.body_fields else None
        json_headers = {**headers, "Content-Type": "application/json"}
        for value in SWEEP:
            for name in op.path_params:
                self.check(op.method, self.url(op, {name: value}, []), headers=json_headers,
                           content=content)  # fmt: skip
            for name in op.query_params:
                self.check(op.method, self.url(op, {}, [(name, value)]), headers=json_headers,
                           content=content)  # fmt: skip
        for name in op.body_fields or ():
            for hostile in [*SWEEP, 10**400, -(2**63), 1e308, [], {}, None, True, [[[]]]]:
                self.check(op.method, self.url(op, {}, []), headers=json_headers,
                           content=json.dumps({**body, name: hostile}))  # fmt: skip
        if op.upload:
            for archive in SWEEP_ARCHIVES:
                files = {"file": ("repo.zip", archive, "application/octet-stream")}
                self.check(op.method, self.url(op, {}, []), headers=headers, files=files)

    def _auth(self, op: Operation, data: st.DataObject) -> dict[str, str]:
        if op.path == "/{orgId}/auth":
            return basic_auth(data.draw(hostile_text), data.draw(hostile_text))
        kind = data.draw(st.sampled_from(["admin", "admin", "admin", "none", "junk", "api"]))
        if kind == "admin":
            return self.api.headers()
        if kind == "junk":
            return {"Authorization": "Bearer " + data.draw(st.text("abc.-_ ", max_size=30))}
        if kind == "api":
            return {"Authorization": "Bearer aggsched_" + data.draw(st.text("xyz", max_size=9))}
        return {}

    def _body(self, op: Operation, data: st.DataObject) -> bytes:
        shape = data.draw(st.sampled_from(["fields", "fields", "value", "deep", "raw"]))
        if shape == "fields" and op.body_fields:
            names = data.draw(st.lists(st.sampled_from(op.body_fields), max_size=5))
            body = {name: data.draw(json_value) for name in names}
            return json.dumps(body).encode()  # ASCII escapes carry lone surrogates
        if shape == "deep":
            depth = data.draw(st.sampled_from([50, 5_000, 100_000]))
            return b"[" * depth + b"]" * depth
        if shape == "raw":
            return data.draw(st.binary(max_size=100))
        return json.dumps(data.draw(json_value)).encode()


@pytest.fixture(scope="module")
def fuzzer(api_any: ApiEnv) -> Fuzzer:
    from aggsched.store import aggregates, batches, catalog, schedules, tokens

    with api_any.store.session() as s:
        job = schedules.create_schedule(
            s, org_id="default", project_id=api_any.project_id, cube_id=api_any.cube_id,
            time_expression="0 0 1 * * ?", next_fire_at=None,
        )  # fmt: skip
        batch = batches.create_batch(
            s, org_id="default", project_id=api_any.project_id, cube_id=api_any.cube_id,
            batch_type="full-rebuild",
        )  # fmt: skip
        admin = catalog.get_user_by_name(s, "admin")
        assert admin is not None
        token = tokens.create_token(s, user=admin, org_id="default", days=1).row
        definition = aggregates.cube_definitions(s, api_any.cube_id)[0]
        instance = aggregates.definition_instances(s, definition.id)[0]
        real = {
            "orgId": "default", "projectId": str(api_any.project_id),
            "cubeId": str(api_any.cube_id), "jobId": str(job.job_id), "batchId": str(batch.id),
            "definitionId": str(definition.id), "instanceId": str(instance.id),
            "tokenId": str(token.id),
            "name": "Connection - TPCH",
        }  # fmt: skip
    return Fuzzer(api_any, real)


def _fuzz(fuzzer: Fuzzer, op: Operation) -> None:
    @given(data=st.data())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def run(data: st.DataObject) -> None:
        fuzzer.send(op, data)

    run()


@pytest.mark.slow
def test_every_field_of_every_route_refuses_hostile_values_cleanly(fuzzer: Fuzzer) -> None:
    operations = _operations(fuzzer.api)
    for op in operations:
        fuzzer.sweep(op)
    assert fuzzer.sent > 1000
    assert not fuzzer.failures, "\n".join(fuzzer.failures[:40])


@pytest.mark.slow
def test_hostile_values_on_every_route_never_5xx_and_answer_within_2s(fuzzer: Fuzzer) -> None:
    operations = _operations(fuzzer.api)
    assert len(operations) >= 30
    fuzzed = []
    for op in operations:
        _fuzz(fuzzer, op)
        fuzzed.append(op.label)
    assert len(fuzzed) == len(operations)
    assert not fuzzer.failures, "\n".join(fuzzer.failures[:40])
