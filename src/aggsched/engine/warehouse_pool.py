"""Warehouse connections kept by a batch (one per URL)."""

from __future__ import annotations

from contextlib import suppress

from aggsched.engine.build_context import WarehouseOpener
from aggsched.warehouse import (
    Warehouse,
    WarehouseError,
)


class WarehousePool:
    """One open warehouse per URL, shared by the steps and cleanup of one batch."""

    def __init__(self, opener: WarehouseOpener) -> None:
        self._open = opener
        self._open_ones: dict[str, Warehouse] = {}
        self.ensured: set[tuple[str, str]] = set()

    def get(self, url: str) -> Warehouse:
        if url not in self._open_ones:
            self._open_ones[url] = self._open(url)
        return self._open_ones[url]

    def ensure_schema(self, url: str, schema: str) -> None:
        """CREATE SCHEMA IF NOT EXISTS, once per batch and schema."""
        if (url, schema) not in self.ensured:
            self.get(url).ensure_schema(schema)
            self.ensured.add((url, schema))

    def close(self) -> None:
        for wh in self._open_ones.values():
            with suppress(WarehouseError):
                wh.close()
        self._open_ones.clear()
        self.ensured.clear()

    def release_embedded(self) -> None:
        """Close embedded (DuckDB) databases: one process at a time may write a DuckDB
        file, so between batches it is left free for the CLI and other processes."""
        for url in [u for u, wh in self._open_ones.items() if wh.dialect == "duckdb"]:
            with suppress(WarehouseError):
                self._open_ones.pop(url).close()
