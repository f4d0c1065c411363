"""The oracle's bound: exact per segment on small traces, and it prices expiry."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cachewise import parse_request
from cachewise.oracle import oracle
from cachewise.trace import rows_from
from conftest import request, text

SYSTEM = text(3000, "oracle")
MTOK = Decimal(1_000_000)


def trace(*starts: float, system: str = SYSTEM) -> list[dict[str, Any]]:
    return [
        {
            "started_at": t,
            "request": request(
                system=system, messages=[{"role": "user", "content": f"Question {i}"}]
            ),
        }
        for i, t in enumerate(starts)
    ]


def parts(rows: list[dict[str, Any]]) -> tuple[int, Decimal, Any]:
    """Tokens of the shared system prompt, cost of everything else, and the prices."""
    prompts = [parse_request(r["request"]) for r in rows]
    shared = prompts[0].positions[0].tokens
    prices = prompts[0].model.prices_for(prompts[0].total_tokens)
    rest = sum(p.total_tokens - shared for p in prompts)
    return shared, Decimal(rest) * prices.input / MTOK, prices


def bound(rows: list[dict[str, Any]]) -> Decimal:
    return oracle(rows_from(rows)).cost_usd


def test_two_uses_within_the_ttl_pay_one_5m_write_and_one_read() -> None:
    rows = trace(0, 120)
    shared, rest, p = parts(rows)
    assert bound(rows) == rest + shared * (p.cache_write_5m + p.cache_read) / MTOK


def test_a_gap_past_five_minutes_pays_a_keep_alive_or_a_1h_write() -> None:
    # 400 s: one keep-alive read (0.1x) beats a 1h write (2x); the bound takes the cheaper.
    rows = trace(0, 400)
    shared, rest, p = parts(rows)
    assert bound(rows) == rest + shared * (p.cache_write_5m + 2 * p.cache_read) / MTOK


def test_many_uses_across_long_gaps_pay_for_a_1h_entry() -> None:
    # Ten uses 20 minutes apart: 4 keep-alives per gap (36 reads) cost more than a 1h write.
    rows = trace(*(i * 1200.0 for i in range(10)))
    shared, rest, p = parts(rows)
    assert bound(rows) == rest + shared * (p.cache_write_1h + 9 * p.cache_read) / MTOK


def test_a_prefix_used_once_is_input() -> None:
    rows = trace(0)
    shared, rest, p = parts(rows)
    assert bound(rows) == rest + shared * p.input / MTOK


def test_uses_hours_apart_are_cheapest_uncached() -> None:
    rows = trace(0, 4 * 3600)
    shared, rest, p = parts(rows)
    assert bound(rows) == rest + 2 * shared * p.input / MTOK


def test_a_prefix_below_the_minimum_is_never_read() -> None:
    rows = trace(0, 1, system="Be brief.")
    assert oracle(rows_from(rows)).usage.cache_read == 0


def test_workspaces_do_not_share() -> None:
    rows = trace(0, 60)
    rows[1]["workspace"] = "other"
    shared, rest, p = parts(rows)
    assert bound(rows) == rest + 2 * shared * p.input / MTOK


def test_the_result_counts_writes_reads_and_keep_alives() -> None:
    result = oracle(rows_from(trace(0, 400, 450)))
    assert (result.writes, result.reads, result.keep_alives) == (1, 2, 1)
    assert result.usage.cache_write_5m > 0 and result.usage.cache_read > 0
