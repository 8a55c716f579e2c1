"""Example SML projects shipped with aggsched (data files, used by `aggsched demo`)."""

from __future__ import annotations

from pathlib import Path

TPCH_DUCKDB = Path(__file__).resolve().parent / "tpch-duckdb"
