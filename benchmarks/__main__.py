"""Run benchmarks: ``python -m benchmarks [name ...]``.

Without names, every ``benchmarks/bench_*.py`` runs in alphabetical order; a name may be
given as ``cron``, ``bench_cron`` or ``bench_cron.py``. Each module exposes
``main() -> None``. A failing benchmark is reported and the others still run; the exit
status is 1 if any failed, 2 for an unknown name.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    """Module names of all benchmarks, e.g. ``["bench_api", "bench_cron"]``."""
    return sorted(p.stem for p in HERE.glob("bench_*.py"))


def resolve(names: list[str]) -> list[str]:
    """Map user-given names to module names; raise ``SystemExit(2)`` for unknown ones."""
    known = available()
    if not names:
        return known
    chosen = []
    for name in names:
        stem = name.removesuffix(".py")
        stem = stem if stem.startswith("bench_") else f"bench_{stem}"
        if stem not in known:
            print(f"unknown benchmark {name!r}; available: {', '.join(known)}", file=sys.stderr)
            raise SystemExit(2)
        chosen.append(stem)
    return chosen


def run(module_name: str) -> bool:
    """Import ``benchmarks.<module_name>`` and call its ``main()``; True on success."""
    print(f"== {module_name}", flush=True)
    started = time.perf_counter()
    try:
        importlib.import_module(f"benchmarks.{module_name}").main()
    except Exception:
        traceback.print_exc()
        print(f"== {module_name} FAILED", flush=True)
        return False
    print(f"== {module_name} done in {time.perf_counter() - started:.1f} s\n", flush=True)
    return True


def main(argv: list[str]) -> int:
    results = [run(name) for name in resolve(argv)]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
