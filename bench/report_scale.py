"""How `cachewise report` scales with the ledger: seconds for the totals and for groups by model,
cause, day and prefix over a ledger of N calls, on SQLite (and PostgreSQL with `--postgres URL`).

`python bench/report_scale.py [--rows N] [--rounds R] [--postgres URL] [--only-postgres]
[--keep PATH]`; the default is 1,000,000 rows (10 million take a long while to build; N is yours
to choose). `--postgres` wants an empty schema: `?options=-csearch_path%3Dmy_schema` in the URL.

The rows look like a busy multi-tenant ledger: 3 models, 20 workspaces, 2,000 prefixes, a fifth
of the calls writing the cache, most of the rest reading what a call a few seconds earlier wrote,
costs as the pricing writes them (up to 10 decimal places), gated calls with waits, a few markers
lost on the wire, and the usage and breakpoints JSON a real row carries. They are written in
bulk (`executemany` in one transaction on SQLite, `COPY` on PostgreSQL), their sums made by
`Ledger.resum()` (timed on its own), then each grouping is timed once per round, interleaved with
the others, and the median is reported. "rows into
Python" (`--old`) is what the report did before: load every call.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from cachewise.ledger import CallRecord, Ledger, read_window
from cachewise.report import report
from cachewise.rollup import settle

T0 = 1_763_769_600.0
MODELS = ["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-8"]
CAUSES = ["cold_start", "prefix_changed", "ttl_expired", "likely_server_side", "below_minimum"]
COLS = [c for c in CallRecord(0.0, "").to_row() if c != "uid"] + ["uid"]


def rows(n: int, seed: int = 0) -> Iterator[tuple[Any, ...]]:
    """`n` ledger rows, in the calls table's column order (`COLS`)."""
    rng = random.Random(seed)
    template = CallRecord(0.0, "").to_row()
    for i in range(n):
        t = T0 + i * 0.25 + rng.random() * 0.2
        prefix = rng.randrange(2000)
        hashes = [f"s{prefix % 50:04x}", f"p{prefix:04x}"]
        writes = rng.random() < 0.2
        tokens = rng.randint(2000, 60_000)
        read = 0 if writes else tokens
        cost = Decimal(rng.randint(1, 3_000_000_000)).scaleb(-10)
        row = dict(template)
        row.update(
            started_at=t,
            started_utc="",
            ended_at=t + 1.5,
            workspace=f"key_{prefix % 20:016x}",
            model=MODELS[prefix % 3],
            input_tokens=rng.randint(10, 400),
            ephemeral_5m_input_tokens=tokens if writes else 0,
            cache_read_input_tokens=read,
            output_tokens=rng.randint(20, 800),
            cost_usd=str(cost),
            cost_without_cache_usd=str(cost * 3),
            prefix_hashes=json.dumps(hashes),
            read_hash=None if writes else hashes[rng.randrange(2)],
            cause="hit" if read else rng.choice(CAUSES),
            tags=json.dumps({"job": f"j{prefix % 7}"}),
            wire="lost" if rng.random() < 0.01 else "ok",
            gate_role=rng.choice(["scout", "follower", "ungated"]),
            gate_wait_s=rng.random() * 3 if rng.random() < 0.3 else None,
            prefix_hash=hashes[1],
            # What a real row carries besides: the usage as the API sent it, the breakpoints.
            usage_json=json.dumps(
                {
                    "input_tokens": 120,
                    "cache_read_input_tokens": read,
                    "cache_creation_input_tokens": tokens - read,
                    "output_tokens": 300,
                    "service_tier": "standard",
                }
            ),
            breakpoints=json.dumps([{"path": "system[0]", "ttl": "5m", "tokens": tokens}]),
            uid=uuid.UUID(int=rng.getrandbits(128)).hex,
        )
        yield tuple(row[c] for c in COLS)


def build_sqlite(path: Path, n: int) -> tuple[Ledger, dict[str, float]]:
    import sqlite3

    Ledger(path).close()  # the schema and its migrations
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    marks = ", ".join("?" * len(COLS))
    db.executemany(f"INSERT INTO calls ({', '.join(COLS)}) VALUES ({marks})", rows(n))
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()
    return ledger_loaded(Ledger(path, create=False))


def build_postgres(url: str, n: int) -> tuple[Ledger, dict[str, float]]:
    import psycopg

    Ledger(url).close()
    with psycopg.connect(url, autocommit=True) as db:
        with db.cursor().copy(f"COPY calls ({', '.join(COLS)}) FROM STDIN") as copy:
            for row in rows(n):
                copy.write_row(row)
        db.execute("ANALYZE calls")
    return ledger_loaded(Ledger(url, create=False))


def ledger_loaded(ledger: Ledger) -> tuple[Ledger, dict[str, float]]:
    """Rows loaded around `record`: their hourly sums made from them (and on PostgreSQL, VACUUM
    ANALYZE, as autovacuum would after a while), then their writes settled; each timed."""
    start = time.perf_counter()
    ledger.resum(settle=False)
    summed = time.perf_counter() - start
    start = time.perf_counter()
    settle(ledger, read_window())
    return ledger, {"resum": summed, "settle": time.perf_counter() - start}


def timings(ledger: Ledger, rounds: int, old: bool) -> dict[str, float]:
    """Median seconds per report, the groupings interleaved round by round."""
    sides = {
        "total": lambda: report(ledger),
        "by model": lambda: report(ledger, by="model"),
        "by cause": lambda: report(ledger, by="cause"),
        "by day": lambda: report(ledger, by="day"),
        "by tag": lambda: report(ledger, by="tag"),
        "by prefix (top 20)": lambda: report(ledger, by="prefix"),
    }
    if old:
        sides["rows into Python (before)"] = lambda: ledger.calls(include_emulated=False)
    times: dict[str, list[float]] = {name: [] for name in sides}
    # The first report after a bulk load: the writes are settled already (`resum`), and the
    # caches are as the load left them. Timed on its own.
    start = time.perf_counter()
    report(ledger)
    first = time.perf_counter() - start
    for _ in range(rounds):
        for name, fn in sides.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {
        "first report after loading": first,
        **{name: statistics.median(t) for name, t in times.items()},
    }


def table(
    title: str, n: int, built: float, load: dict[str, float], medians: dict[str, float]
) -> str:
    lines = [
        f"{title}: {n:,} calls (built in {built:.0f} s, of which the sums {load['resum']:.1f} s "
        f"and settling every write {load['settle']:.1f} s: `Ledger.resum()`)",
        "",
        "| report | seconds |",
        "|---|---|",
    ]
    lines += [f"| {name} | {s:.2f} |" for name, s in medians.items()]
    return "\n".join(lines)


def measure(
    n: int,
    rounds: int,
    postgres: str | None,
    keep: Path | None,
    old: bool,
    sqlite: bool = True,
) -> str:
    out = []
    with tempfile.TemporaryDirectory() as folder:
        path = keep or Path(folder) / "ledger.db"
        start = time.perf_counter()
        if sqlite:
            if path.exists():  # kept from an earlier run: summed and settled then
                ledger, load = Ledger(path, create=False), {"resum": 0.0, "settle": 0.0}
            else:
                ledger, load = build_sqlite(path, n)
            built = time.perf_counter() - start
            with ledger:
                out.append(table("SQLite", n, built, load, timings(ledger, rounds, old)))
    if postgres:
        start = time.perf_counter()
        ledger, load = build_postgres(postgres, n)
        with ledger:
            built = time.perf_counter() - start
            out.append(table("PostgreSQL", n, built, load, timings(ledger, rounds, old)))
    return "\n\n".join(out)


def run() -> str:
    """The section `bench/run.py report_scale` writes: a million calls on SQLite, and on
    PostgreSQL too when `CACHEWISE_BENCH_POSTGRES` names an empty schema's URL."""
    postgres = os.environ.get("CACHEWISE_BENCH_POSTGRES")
    return "\n".join(
        [
            "## How the report scales",
            "",
            "`python bench/report_scale.py --rows 1000000`: a busy multi-tenant ledger (3 models, "
            "20 workspaces, 2,000 prefixes, a fifth of the calls writing), each report timed "
            "once a round, interleaved, median of 3.",
            "",
            measure(1_000_000, 3, postgres, None, False),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", help="also a PostgreSQL ledger at this URL (an empty schema)")
    parser.add_argument("--only-postgres", action="store_true", help="no SQLite ledger")
    parser.add_argument("--keep", type=Path, help="build the SQLite ledger here and keep it")
    parser.add_argument("--old", action="store_true", help="also time loading every row")
    args = parser.parse_args()
    sqlite = not args.only_postgres
    print(measure(args.rows, args.rounds, args.postgres, args.keep, args.old, sqlite))


if __name__ == "__main__":
    main()
