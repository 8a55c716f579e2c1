"""Next-fire throughput of ``aggsched.cron`` against croniter, same expressions, same run.

1,000 seeded "mixed" Quartz expressions (steps, ranges, lists, names, L/W/# rules); each
engine computes a chain of next fire times from the same start in UTC. croniter only runs
on the expressions it accepts (``second_at_beginning=True``; it rejects e.g. ``LW``), and
its rate is measured on exactly those. Target: aggsched >= 2x croniter.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

from croniter import croniter

from aggsched.cron import CronExpression

SEED = 1234
N_EXPRESSIONS = 1_000
FIRES_EACH = 50
START = datetime(2026, 1, 1, 12, 34, 56, tzinfo=UTC)


def _field(rng: random.Random, lo: int, hi: int) -> str:
    kind = rng.random()
    if kind < 0.3:
        return "*"
    if kind < 0.55:
        return str(rng.randint(lo, hi))
    if kind < 0.7:
        return ",".join(str(v) for v in sorted(rng.sample(range(lo, hi + 1), 3)))
    if kind < 0.85:
        a = rng.randint(lo, hi - 1)
        return f"{a}-{rng.randint(a + 1, hi)}"
    return f"{rng.randint(lo, lo + 2)}/{rng.randint(2, max(2, (hi - lo) // 3))}"


def expressions(n: int = N_EXPRESSIONS, seed: int = SEED) -> list[str]:
    """Seeded mix of schedules of the kinds people write (mostly daily/hourly jobs)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        sec = "0" if rng.random() < 0.8 else _field(rng, 0, 59)
        minute, hour = _field(rng, 0, 59), _field(rng, 0, 23)
        r = rng.random()
        if r < 0.45:
            dom, dow = "?", rng.choice(["*", "MON-FRI", "1-5", "SAT,SUN", "2", "6L", "2#1"])
        elif r < 0.9:
            dom, dow = rng.choice(["*", _field(rng, 1, 28), "L", "LW", "15W", "1,15"]), "?"
        else:
            dom, dow = "?", _field(rng, 1, 7)
        month = "*" if rng.random() < 0.7 else _field(rng, 1, 12)
        out.append(f"{sec} {minute} {hour} {dom} {month} {dow}")
    return out


def _rate(chains: list[Callable[[], object]]) -> tuple[float, float]:
    """Run every chain of FIRES_EACH next-fire calls; return (fires per second, seconds)."""
    started = time.perf_counter()
    for chain in chains:
        chain()
    elapsed = time.perf_counter() - started
    return len(chains) * FIRES_EACH / elapsed, elapsed


def _ours(expr: str) -> Callable[[], object]:
    cron = CronExpression.parse(expr)
    return lambda: cron.next_n(START, FIRES_EACH)


def _theirs(expr: str) -> Callable[[], object] | None:
    try:
        it = croniter(expr, START, second_at_beginning=True)
        it.get_next(datetime)  # some errors only show on first use
    except Exception:  # croniter rejects part of Quartz's grammar (L, W, #, ?): skip those
        return None

    def chain() -> object:
        it.set_current(START, force=True)
        return [it.get_next(datetime) for _ in range(FIRES_EACH)]

    return chain


def main() -> None:
    exprs = expressions()
    theirs = {e: c for e in exprs if (c := _theirs(e)) is not None}
    ours_all = [_ours(e) for e in exprs]
    ours_same = [_ours(e) for e in theirs]
    rate_all, t_all = _rate(ours_all)
    rate_same, t_same = _rate(ours_same)
    rate_croniter, t_croniter = _rate(list(theirs.values()))
    print(
        f"expressions: {len(exprs)} ({len(theirs)} accepted by croniter), "
        f"{FIRES_EACH} next fires each, UTC"
    )
    print(f"aggsched, all expressions:      {rate_all:10.0f} next-fires/s ({t_all:.2f} s)")
    print(f"aggsched, croniter's subset:    {rate_same:10.0f} next-fires/s ({t_same:.2f} s)")
    print(
        f"croniter (second_at_beginning): {rate_croniter:10.0f} next-fires/s ({t_croniter:.2f} s)"
    )
    print(
        f"ratio aggsched/croniter (same expressions): {rate_same / rate_croniter:.2f}x "
        "(target >= 2x)"
    )


if __name__ == "__main__":
    main()
