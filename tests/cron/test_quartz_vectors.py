"""Golden vectors: our cron engine against the real Quartz 2.3.2.

``data/quartz_vectors.json`` holds Quartz's answers (validity and the next fire times) for
thousands of expressions, start instants and zones; ``tools/cron_vectors.py`` regenerates
it with ``shared/quartz-oracle``. Agreement must be exact: schedules migrated from AtScale
must fire on the same seconds as before.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from aggsched.cron import CronExpression, CronSyntaxError

DATA = Path(__file__).parent / "data" / "quartz_vectors.json"
DOC = json.loads(DATA.read_text(encoding="utf-8"))
MAX_YEAR: int = DOC["max_year"]
CASES: list[dict[str, Any]] = DOC["cases"]


def _iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ours(case: dict[str, Any]) -> dict[str, Any]:
    try:
        cron = CronExpression.parse(case["expr"], case["tz"], max_year=MAX_YEAR)
    except CronSyntaxError as exc:
        return {"valid": False, "error": exc.message}
    start = datetime.fromisoformat(case["start"])
    return {"valid": True, "next": [_iso(t) for t in cron.next_n(start, case["count"])]}


def _describe(case: dict[str, Any], ours: dict[str, Any]) -> str:
    got = ours.get("next", ours.get("error"))
    want = case.get("next", case.get("error"))
    return f"{case['expr']!r} from {case['start']} in {case['tz']}: quartz {want}, ours {got}"


def test_vector_file_is_substantial() -> None:
    kinds = Counter(case["valid"] for case in CASES)
    assert len(CASES) >= 2000
    assert kinds[True] >= 1000 and kinds[False] >= 200
    assert DATA.stat().st_size < 2 * 1024 * 1024


def test_every_vector_agrees_with_quartz() -> None:
    mismatches = []
    for case in CASES:
        ours = _ours(case)
        if ours["valid"] != case["valid"] or ours.get("next") != case.get("next"):
            mismatches.append(_describe(case, ours))
    assert not mismatches, f"{len(mismatches)} of {len(CASES)} differ:\n" + "\n".join(
        mismatches[:40]
    )


def _comparable(message: str) -> bool:
    """Quartz's own messages, not Java runtime exceptions it wrapped or leaked."""
    return not message.startswith("Illegal cron expression format") and message != "null"


@pytest.mark.parametrize("category", ["bounds", "syntax"])
def test_error_messages_match_quartz(category: str) -> None:
    """Informative: where Quartz explains the error itself, we say the same thing."""
    differ = []
    for case in CASES:
        if case["valid"] or not _comparable(case["error"]):
            continue
        is_bounds = "must be between" in case["error"]
        if is_bounds != (category == "bounds"):
            continue
        ours = _ours(case)
        if ours.get("error") != case["error"]:
            differ.append(_describe(case, ours))
    assert not differ, "\n".join(differ[:40])
