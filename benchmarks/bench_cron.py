"""Next-fire throughput of ``aggsched.cron`` against croniter, same expressions, same run.

1,000 seeded "mixed" Quartz expressions (steps, ranges, lists, names, L/W/# rules); each
engine computes a chain of next fire times from the same start. Two runs over the same
expressions: all in UTC, and a mix where every other expression is evaluated in a
seeded non-UTC IANA zone (zones with and without DST, both hemispheres; the chains cross
DST changes). croniter only runs on the expressions it accepts (``second_at_beginning=
True``; it rejects e.g. ``LW``), and both rates are measured on exactly those, with the
same zones (croniter gets a start in the zone and answers in it). Target: aggsched >= 5x
croniter on the zone mix.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter

from aggsched.cron import CronExpression

SEED = 1234
N_EXPRESSIONS = 1_000
FIRES_EACH = 50
START = datetime(2026, 1, 1, 12, 34, 56, tzinfo=UTC)
ZONES = (
    "America/New_York", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney",
    "America/Sao_Paulo", "Asia/Kolkata", "Europe/London", "America/Los_Angeles",
    "Pacific/Auckland", "Africa/Cairo", "America/Chicago", "Europe/Moscow",
)  # fmt: skip


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


def zones(n: int = N_EXPRESSIONS, seed: int = SEED) -> list[str]:
    """Every other expression in a seeded non-UTC zone, the others in UTC."""
    rng = random.Random(seed + 1)
    return [rng.choice(ZONES) if i % 2 else "UTC" for i in range(n)]


def _ours(expr: str, zone: str) -> Callable[[], object]:
    cron = CronExpression.parse(expr, zone)
    return lambda: cron.next_n(START, FIRES_EACH)


def _theirs(expr: str, zone: str) -> Callable[[], object] | None:
    start = START.astimezone(ZoneInfo(zone))
    try:
        it = croniter(expr, start, second_at_beginning=True)
        it.get_next(datetime)  # some errors only show on first use
    except Exception:  # croniter rejects part of Quartz's grammar (L, W, #, ?): skip those
        return None

    def chain() -> object:
        it.set_current(start, force=True)
        return [it.get_next(datetime) for _ in range(FIRES_EACH)]

    return chain


def compare(label: str, pairs: list[tuple[str, str]]) -> float:
    """Rates of both engines on ``pairs`` (expression, zone); returns the ratio."""
    theirs = {p: c for p in pairs if (c := _theirs(*p)) is not None}
    rate_all, t_all = _rate([_ours(*p) for p in pairs])
    rate_same, t_same = _rate([_ours(*p) for p in theirs])
    rate_croniter, t_croniter = _rate(list(theirs.values()))
    ratio = rate_same / rate_croniter
    print(f"{label}: {len(pairs)} expressions ({len(theirs)} accepted by croniter), "
          f"{FIRES_EACH} next fires each")  # fmt: skip
    print(f"  aggsched, all expressions:      {rate_all:10.0f} next-fires/s ({t_all:.2f} s)")
    print(f"  aggsched, croniter's subset:    {rate_same:10.0f} next-fires/s ({t_same:.2f} s)")
    print(f"  croniter (second_at_beginning): {rate_croniter:10.0f} next-fires/s "
          f"({t_croniter:.2f} s)")  # fmt: skip
    print(f"  ratio aggsched/croniter (same expressions): {ratio:.2f}x")
    return ratio


def main() -> None:
    exprs = expressions()
    utc = compare("UTC", [(e, "UTC") for e in exprs])
    mix = compare("half in non-UTC zones", list(zip(exprs, zones(), strict=True)))
    print(f"ratio aggsched/croniter: UTC {utc:.2f}x, zone mix {mix:.2f}x (target >= 5x)")


if __name__ == "__main__":
    main()
