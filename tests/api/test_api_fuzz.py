"""Schemathesis against the OpenAPI document, in-process (ASGI), authenticated as admin:
no generated request may cause a 500 or a response that breaks the documented schema.

Schemathesis's pytest plugin does not work with pytest 9 yet, so each operation's
Hypothesis strategy is driven directly; every failing operation is reported together.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis  # a dev dependency: the fuzz run must never be skipped silently
from api_helpers import ApiEnv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error, response_schema_conformance, status_code_conformance,
    content_type_conformance,
]  # fmt: skip
MAX_EXAMPLES = 25


def _fuzz(operation: Any, api: ApiEnv) -> None:
    """Half the cases address the real org, project and cube, so the generated query
    and body values reach the handlers instead of stopping at a 404."""
    real = {"orgId": "default", "projectId": str(api.project_id), "cubeId": str(api.cube_id)}

    @given(case=operation.as_strategy(), use_real_ids=st.booleans())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def run(case: Any, use_real_ids: bool) -> None:
        if use_real_ids and case.path_parameters:
            for key, value in real.items():
                if key in case.path_parameters:
                    case.path_parameters[key] = value
        case.call_and_validate(headers=api.headers(), checks=CHECKS)

    run()


@pytest.mark.slow
def test_no_500_and_schema_holds(api: ApiEnv) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            _fuzz(operation, api)
        except Exception as exc:  # collect every operation's failure, then report
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:2000]
    assert operations >= 20
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
