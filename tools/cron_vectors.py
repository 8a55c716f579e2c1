"""Generate the Quartz golden vectors in ``tests/cron/data/quartz_vectors.json``.

Builds >= 2,000 cases (hand-picked edge cases, DST transitions in many zones, invalid
expressions of every kind, seeded random expressions and mutations of them), asks the real
Quartz 2.3.2 through ``../shared/quartz-oracle/run`` (Java + Debian's libquartz2-java), and
writes its answers. The test suite only reads the JSON, so it never needs Java.

    .venv/bin/python tools/cron_vectors.py            # regenerate (needs the oracle)
    .venv/bin/python tools/cron_vectors.py --dry-run  # just count the cases

Quartz's MAX_YEAR is "current year + 100" when it loads; the year the oracle ran in is
recorded (``max_year``) so the tests can pin ours to the same value.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
ORACLE = ROOT.parent / "shared" / "quartz-oracle" / "run"
OUT = ROOT / "tests" / "cron" / "data" / "quartz_vectors.json"
SEED = 20261129

Case = tuple[str, str, str, int]  # expression, start (ISO Z), zone, count

DST_ZONES = (
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Adelaide",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/St_Johns",
    "Pacific/Chatham",
    "America/Santiago",
    "America/Havana",
    "America/Sao_Paulo",
    "Asia/Beirut",
    "Pacific/Apia",
    "Europe/Dublin",
    "America/Los_Angeles",
    "Asia/Tehran",
)
OTHER_ZONES = ("UTC", "Asia/Tokyo", "Asia/Kathmandu", "Pacific/Kiritimati", "Etc/GMT+5")
ALL_ZONES = DST_ZONES + OTHER_ZONES

VALID = [
    "0 25 06 ? * *",
    "* * * * * ?",
    "0 * * * * ?",
    "0 0/5 * * * ?",
    "0 */15 9-17 ? * MON-FRI",
    "0 0 12 * * ?",
    "0 15 10 ? * *",
    "0 15 10 * * ? 2027",
    "0 * 14 * * ?",
    "0 0/5 14,18 * * ?",
    "0 0-5 14 * * ?",
    "0 10,44 14 ? 3 WED",
    "0 15 10 ? * MON-FRI",
    "0 15 10 15 * ?",
    "0 15 10 L * ?",
    "0 15 10 L-2 * ?",
    "0 15 10 ? * 6L",
    "0 15 10 ? * 6L 2027-2030",
    "0 15 10 ? * 6#3",
    "0 0 12 1/5 * ?",
    "0 11 11 11 11 ?",
    "0 0 0 29 FEB ? 2096",
    "0 0 0 29 2 ?",
    "0 0 0 1W * ?",
    "0 0 0 31W * ?",
    "0 0 0 30W * ?",
    "0 0 0 LW * ?",
    "0 0 0 15W * ?",
    "0 0 0 2W * ?",
    "0 0 0 ? * 2#5",
    "0 0 0 ? * 6#5",
    "0 0 0 ? * 1#1",
    "0 0 0 ? * 7#4",
    "0 0 22-2 * * ?",
    "0 50-10 * * * ?",
    "50-10 * * * * ?",
    "0 0 0 ? NOV-FEB *",
    "0 0 0 1 11-2 ?",
    "0 0 0 ? * FRI-MON",
    "0 0 0 ? * 6-2",
    "0 0 0 28-3 * ?",
    "06 05 04 03 02 ?",
    "0 0 0 ? * L",
    "0 0 0 L-30 * ?",
    "0 0 0 L-28 * ?",
    "0 0 0 L-15W * ?",
    "0 0 0 L-3W * ?",
    "0 0 0 L-W * ?",
    "0 0 0 ? * 1L",
    "0 0 0 ? * 7L",
    "0 0 0 ? * sun,mon",
    "0 0 0 ? jan-mar sat",
    "0 0 0 ? Jan,Jul Sun",
    "0 0 0 ? * 2-6/2",
    "0 30 1 * * ?",
    "0 30 2 * * ?",
    "0 0 2 * * ?",
    "0 0 3 * * ?",
    "0 0 * * * ?",
    "0 */30 * * * ?",
    "30 30 1-3 * * ?",
    "0 0 0 1 1 ? 2126",
    "0 0 0 1 1 ? 2127",
    "0 0 0 31 12 ? 2126",
    "0 0 0 * * ? 1970",
    "0 0 0 ? * * 2025-2027",
    "0 0 0 ? * * 2030/5",
    "0 0 0 ? * * 1969",
    "0 0 0 ? * * 2999",
    "0 0 0 ? * * 3000",
    "0 0 0 31 2 ?",
    "0 0 0 30 2 ?",
    "0 59 23 31 12 ?",
    "59 59 23 L 12 ?",
    "59 59 23 L 2 ?",
    "0 0 0 ? * * 99",
    "99 0 0 * * ?",
    "0 99 0 * * ?",
    "0 0 0 98 * *",
    "0 0 0 * * 98",
    "0 0 0 0W * ?",
    "0 0 0 ? * 9#2",
    "0 0 0 ? * 0#2",
    "*/0 * * * * ?",
    "0 0 0 ? * * 2300",
    "0 0 0 ? * * 2126-2130",
    "0 0 0 1 * ? 2099",
    "0 0 12 ? * MONDAY",
    "0 0 12 ? JANUARY *",
    "0 0 12 ? * MON-FRIDAY",
    "0 0 12 ? * FRIL",
    "0 0 12 ? * MON#2",
    "0 0 12 ? * MON#+2",
    "0 0 0/2 * * ?",
    "0 0/7 * * * ?",
    "0 5/7 * * * ?",
    "0 0 0 1/10 * ?",
    "0 0 0 ? 1/4 *",
    "0 0 0 ? */5 *",
    "0 0 0 ? * */3",
    "0 0 0 ? * 2/3",
    "0 0 0 10-20/3 * ?",
    "0 0 0 20-10/3 * ?",
    "0 10-40/15 * * * ?",
    "0 0 0 1,15,L-0 * ?",
    "5X * * * * ?",
    "0 0 0 ? * *X",
    "0 0 0 ?A * *",
    "0 0 0 * * ? * extra",
    "0 0 0  *  *  ?",
    "0 0 12 * * ?,",
    "0 0 12 ,* * ?",
    "0 0 12 1, * ?",
    "0 0 0 L * ? 2030",
    "0 0 0 ? * 3L 2029",
    "0 0 10 ? * 1#5",
    "0 0 10 ? 2 1#5",
    "0 0 10 ? 2 1#4",
    "1 2 3 ? * 4",
    "0 0 0 1-31/2 * ?",
    "0 0 0 ? * 1,3,5,7",
    "0 0 0 1 JAN-DEC/2 ?",
    "0 0 0 1 1-12/2 ?",
    "0 0 0 1 12-1/2 ?",
    "0 0-59/20 22-2/2 * * ?",
]

INVALID = [
    "",
    " ",
    "0 0 0 * *",
    "0 0 * *",
    "*",
    "0 0 0 ? * ?",
    "0 0 0 * * *",
    "0 0 0 5 * MON",
    "60 0 0 * * ?",
    "0 60 0 * * ?",
    "0 0 24 * * ?",
    "0 0 0 32 * ?",
    "0 0 0 0 * ?",
    "0 0 0 * 13 ?",
    "0 0 0 * 0 ?",
    "0 0 0 ? * 8",
    "0 0 0 ? * 0",
    "0 0 0 ? * 1-8",
    "0 0 0 ? JANUAR *",
    "0 0 0 ? FOO *",
    "0 0 0 ? * FOO",
    "0 0 0 ? * MON-FOO",
    "0 0 0 ? JAN-FOO *",
    "0 0 0 L,15 * ?",
    "0 0 0 LW,2 * ?",
    "0 0 0 ? * 5L,3",
    "0 0 0 ? * 1#2,3#4",
    "0 0 0 ? * 1#6",
    "0 0 0 ? * 1#0",
    "0 0 0 ? * 1#",
    "0 0 0 ? * MON#9",
    "0 0 0 ? * 1#X",
    "0 0 0 L-31 * ?",
    "0 0 0 L- * ?",
    "0 0 0 32W * ?",
    "0 0 0 ? * 8L",
    "0 0 0 ? * 0L",
    "0 0 0 5L * ?",
    "0 0 5W * * ?",
    "0 0 0 5#2 * ?",
    "0 0 0 ? 5L *",
    "L 0 0 * * ?",
    "0 L 0 * * ?",
    "0 0 L * * ?",
    "0 0 0 * L ?",
    "? 0 0 * * ?",
    "0 ? 0 * * ?",
    "0 0 0 * ? *",
    "0 0 0 ?? * *",
    "0 0 0 ?ab * *",
    "*/60 * * * * ?",
    "0 */60 * * * ?",
    "0 0 */24 * * ?",
    "0 0 0 */32 * ?",
    "0 0 0 ? */13 *",
    "0 0 0 ? * */8",
    "0/60 * * * * ?",
    "0/ * * * * ?",
    "/ * * * * ?",
    "*/ * * * * ?",
    "*/x * * * * ?",
    "0/x * * * * ?",
    "0/5x * * * * ?",
    "5- * * * * ?",
    "5-x * * * * ?",
    "5-10/ * * * * ?",
    "0-60 * * * * ?",
    "0 0 0 ? * * 2030-2020",
    "0 0 0 ? * * abc",
    "#",
    "0 0 0 # * ?",
    "0 0 0 ? * #",
    "@daily",
    "0 0 0 * * ? 2030 junk",
    "junk",
    "a b c d e f",
    "0 0 0 ? * 1#1#2",
    "0 0 0 ? * MON#1,TUE#2",
    "0 0 0 W * ?",
    "0 0 0 LX * ?",
    "0 0 0 15X * ?",
    "0 0 0 ? * 99999999999",
    "99999999999 0 0 * * ?",
    "0 0 0 , * ?",
    ", 0 0 * * ?",
    "0 0 0 ? , *",
    "0 0 0 ? * ,",
    "0 0 0 ? * L-3",
    "0 0 0 ? JA *",
    "0 0 0 ? * MO",
    "-1 0 0 * * ?",
    "+1 0 0 * * ?",
    "0 0 0 ? * 1-",
]

# Expressions whose fire times sit on or near DST transitions (or midnight ones).
DST_EXPRS = [
    "0 0/15 0-4 * * ?",
    "0 30 2 * * ?",
    "0 30 1 * * ?",
    "0 0 2 * * ?",
    "0 0 0 * * ?",
    "0 */30 * * * ?",
    "0 0 * * * ?",
    "0 15 10 L * ?",
]


def iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def transitions(zone: str, year: int) -> list[datetime]:
    """UTC instants (to the minute) where ``zone``'s offset changes during ``year``."""
    tz = ZoneInfo(zone)
    out: list[datetime] = []
    t = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    step = timedelta(hours=6)
    while t < end:
        if t.astimezone(tz).utcoffset() != (t + step).astimezone(tz).utcoffset():
            lo, hi = t, t + step
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset():
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
        t += step
    return out


def hand_cases(rng: random.Random) -> Iterator[Case]:
    starts = ["2026-11-29T19:04:07Z", "2024-02-28T23:59:59Z", "1999-12-31T23:59:59Z"]
    for expr in VALID:
        for start in starts:
            yield expr, start, "UTC", 6
        for zone in rng.sample(ALL_ZONES, 2):
            yield expr, random_start(rng), zone, 6
    for expr in INVALID:
        yield expr, "2026-01-01T00:00:00Z", "UTC", 3
    # W and # edge months: starts at the end of every month of 2026-2028 and 2100
    for expr in ("0 0 0 1W * ?", "0 0 0 31W * ?", "0 0 0 LW * ?", "0 0 0 ? * 5#5"):
        for year in (2026, 2027, 2028, 2100):
            for month in range(1, 13):
                start = datetime(year, month, 1, tzinfo=UTC) - timedelta(days=3)
                yield expr, iso(start), "UTC", 3


def dst_cases() -> Iterator[Case]:
    for zone in DST_ZONES:
        for year in (1995, 2011, 2026, 2037, 2038, 2045, 2090):
            for moment in transitions(zone, year):
                for expr in DST_EXPRS:
                    count = 8 if expr.startswith(("0 0/15", "0 */30", "0 0 *")) else 3
                    yield expr, iso(moment - timedelta(hours=3)), zone, count


def random_start(rng: random.Random) -> str:
    base = datetime(1990, 1, 1, tzinfo=UTC)
    span = int((datetime(2100, 12, 31, tzinfo=UTC) - base).total_seconds())
    return iso(base + timedelta(seconds=rng.randrange(span)))


def _numeric_field(rng: random.Random, lo: int, hi: int, names: list[str] | None) -> str:
    def value() -> str:
        v = rng.randint(lo, hi)
        if names and rng.random() < 0.4:
            return names[v - lo] if rng.random() < 0.8 else names[v - lo].lower()
        return f"{v:02d}" if rng.random() < 0.1 else str(v)

    kind = rng.random()
    if kind < 0.25:
        return "*"
    if kind < 0.45:
        return value()
    if kind < 0.6:
        return ",".join(value() for _ in range(rng.randint(2, 4)))
    if kind < 0.75:
        return f"{rng.randint(lo, hi)}-{rng.randint(lo, hi)}"
    if kind < 0.85:
        return f"{rng.randint(lo, hi)}-{rng.randint(lo, hi)}/{rng.randint(1, hi - lo)}"
    if kind < 0.93:
        return f"{rng.randint(lo, hi)}/{rng.randint(1, hi - lo)}"
    return f"*/{rng.randint(1, hi - lo)}"


MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


def random_expression(rng: random.Random) -> str:
    fields = [
        _numeric_field(rng, 0, 59, None) if rng.random() < 0.5 else str(rng.randint(0, 59)),
        _numeric_field(rng, 0, 59, None),
        _numeric_field(rng, 0, 23, None),
    ]
    dom, dow = "?", "?"
    if rng.random() < 0.5:
        r = rng.random()
        if r < 0.7:
            dom = _numeric_field(rng, 1, 31, None)
        else:
            dom = rng.choice(["L", f"L-{rng.randint(0, 30)}", f"{rng.randint(1, 31)}W", "LW"])
    else:
        r = rng.random()
        if r < 0.7:
            dow = _numeric_field(rng, 1, 7, DAYS)
        elif r < 0.85:
            dow = f"{rng.randint(1, 7)}#{rng.randint(1, 5)}"
        else:
            dow = f"{rng.choice([str(rng.randint(1, 7)), rng.choice(DAYS)])}L"
    fields += [dom, _numeric_field(rng, 1, 12, MONTHS), dow]
    if rng.random() < 0.25:
        r = rng.random()
        y = rng.randint(1990, 2140)
        fields.append(
            "*"
            if r < 0.3
            else str(y)
            if r < 0.6
            else f"{y}-{y + rng.randint(0, 20)}"
            if r < 0.85
            else f"{y}/{rng.randint(1, 10)}"
        )
    return " ".join(fields)


def mutate(rng: random.Random, expr: str) -> str:
    chars = list(expr)
    op = rng.random()
    pos = rng.randrange(len(chars) + 1)
    junk = rng.choice(list(" ,-/*?LW#0123456789ABCXZ"))
    if op < 0.4:
        chars.insert(pos, junk)
    elif op < 0.7 and pos < len(chars):
        chars[pos] = junk
    elif pos < len(chars):
        del chars[pos]
    return "".join(chars)


def random_cases(rng: random.Random, n: int, n_mutants: int) -> Iterator[Case]:
    for _ in range(n):
        yield random_expression(rng), random_start(rng), rng.choice(ALL_ZONES), 5
    for _ in range(n_mutants):
        yield mutate(rng, random_expression(rng)), random_start(rng), "UTC", 3


def all_cases() -> list[Case]:
    rng = random.Random(SEED)
    cases = [*hand_cases(rng), *dst_cases(), *random_cases(rng, 1200, 400)]
    seen: set[Case] = set()
    return [c for c in cases if not (c in seen or seen.add(c))]


def _ask(cases: list[Case], timeout: float) -> list[dict[str, object]]:
    lines = "".join(f"{e}\t{s}\t{z}\t{n}\n" for e, s, z, n in cases)
    done = subprocess.run(
        [str(ORACLE)], input=lines, capture_output=True, text=True, check=True, timeout=timeout
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def run_oracle(cases: list[Case], hung: list[Case]) -> list[dict[str, object]]:
    """Ask Quartz in batches; a batch that times out is split until the cases on which
    Quartz itself loops forever are isolated (they are reported, not recorded)."""
    if not cases:
        return []
    try:
        answers = _ask(cases, timeout=6 + len(cases) / 50)
    except subprocess.TimeoutExpired:
        if len(cases) == 1:
            hung.append(cases[0])
            return []
        half = len(cases) // 2
        return run_oracle(cases[:half], hung) + run_oracle(cases[half:], hung)
    if len(answers) != len(cases):
        raise SystemExit(f"oracle answered {len(answers)} of {len(cases)} cases")
    for (expr, _, _, count), answer in zip(cases, answers, strict=True):
        answer["count"] = count
        if answer["expr"] != expr:
            raise SystemExit(f"oracle answer out of order at {expr!r}")
    return answers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="only count the cases")
    args = ap.parse_args()
    cases = all_cases()
    if args.dry_run:
        print(f"{len(cases)} cases")
        return
    hung: list[Case] = []
    answers: list[dict[str, object]] = []
    for i in range(0, len(cases), 250):
        answers += run_oracle(cases[i : i + 250], hung)
    for case in hung:
        print(f"Quartz never returns (left out): {case}", file=sys.stderr)
    year = datetime.now(UTC).year
    doc = {
        "about": "Answers of Quartz 2.3.2 (org.quartz.CronExpression) via "
        "shared/quartz-oracle; regenerate with tools/cron_vectors.py",
        "quartz": "2.3.2",
        "generated_year": year,
        "max_year": year + 100,
        "cases": answers,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({**doc, "cases": []}, ensure_ascii=False)[:-3]  # strip "[]}"
    rows = ",\n".join(json.dumps(a, separators=(",", ":"), ensure_ascii=False) for a in answers)
    OUT.write_text(f"{body}[\n{rows}\n]}}\n")  # one case per line: readable diffs
    valid = sum(1 for a in answers if a["valid"])
    print(f"{len(answers)} cases ({valid} valid) -> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    sys.exit(main())
