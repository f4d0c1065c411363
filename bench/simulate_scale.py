"""How `cachewise simulate` scales: rows per second per strategy on a 10,000-row trace, the time
per row as the number of live prefixes grows (the keep-alive policy's bookkeeping must not grow
with it), and peak memory against the parsed trace's own.

The traces are multi-tenant: each workspace sends a system prompt of its own (a prefix) and
questions on it, minutes apart, so prefixes stay alive and keep-alive reads are considered.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from typing import Any

from measure import prose

from cachewise.simulate import replay_strategy, simulate
from cachewise.strategies import STRATEGIES
from cachewise.trace import Row, rows_from

CC = {"type": "ephemeral"}


def tenants_trace(rows: int, prefixes: int, seed: int = 0) -> list[dict[str, Any]]:
    """`rows` requests over `prefixes` tenants, round robin, 0.5 s apart."""
    systems = [prose(400, seed * 100_000 + p) for p in range(prefixes)]
    return [
        {
            "started_at": i * 0.5,
            "ttft_ms": 600,
            "workspace": f"tenant-{i % prefixes}",
            "request": {
                "model": "claude-sonnet-4-6",
                "max_tokens": 200,
                "system": [{"type": "text", "text": systems[i % prefixes], "cache_control": CC}],
                "messages": [{"role": "user", "content": f"Question {i} about INV-{i % 977}?"}],
            },
        }
        for i in range(rows)
    ]


def _parsed(rows: list[dict[str, Any]]) -> list[Row]:
    from dataclasses import replace

    from cachewise import parse_request

    return [replace(r, prompt=parse_request(r.request)) for r in rows_from(rows)]


def per_strategy(rows: int = 10_000, prefixes: int = 50) -> list[str]:
    parsed = _parsed(tenants_trace(rows, prefixes))
    lines = []
    for name, strategy in STRATEGIES.items():
        start = time.perf_counter()
        replay_strategy(
            parsed, name, strategy, gate=name == "cachewise", keep_alive=name == "cachewise"
        )
        seconds = time.perf_counter() - start
        lines.append(f"| {name} | {rows / seconds:,.0f} |")
    return lines


def per_row_by_live_prefixes() -> list[str]:
    lines = []
    for prefixes in (500, 1000, 2000, 4000):
        parsed = _parsed(tenants_trace(2 * prefixes, prefixes))
        start = time.perf_counter()
        replay_strategy(parsed, "cachewise", STRATEGIES["cachewise"], gate=True, keep_alive=True)
        per_row = (time.perf_counter() - start) / len(parsed)
        lines.append(f"| {prefixes:,} | {per_row * 1e6:,.0f} µs |")
    return lines


def memory(rows: int = 10_000, prefixes: int = 50) -> str:
    trace = tenants_trace(rows, prefixes)
    gc.collect()
    tracemalloc.start()
    parsed = _parsed(trace)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    simulate(parsed)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (
        f"Peak memory while simulating every strategy over {rows:,} rows: {peak / 1e6:,.0f} MB, "
        f"{peak / held:.2f}x the parsed trace's {held / 1e6:,.0f} MB (target: within 2x)."
    )


def run() -> str:
    strategies = per_strategy()
    growth = per_row_by_live_prefixes()
    return "\n".join(
        [
            "## How simulate scales",
            "",
            "`python bench/simulate_scale.py`: multi-tenant traces (each tenant's own 400-word "
            "system prompt, a question every half second, round robin), replayed on the engine.",
            "",
            "| strategy (10,000 rows, 50 tenants) | rows/s |",
            "|---|---|",
            *strategies,
            "",
            "The `cachewise` strategy (warm gate and keep-alive reads) per row, as live prefixes "
            "grow "
            "(two rows per tenant):",
            "",
            "| live prefixes | time per row |",
            "|---|---|",
            *growth,
            "",
            memory(),
            "",
        ]
    )


if __name__ == "__main__":
    print(run())
