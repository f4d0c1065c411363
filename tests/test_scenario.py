"""`cachewise cost` scenarios, computed by the engine: the seed's numbers must hold exactly."""

from __future__ import annotations

import heapq
from decimal import Decimal

import pytest

from cachewise import get_model
from cachewise.cost import break_even_reads
from cachewise.engine import Engine
from cachewise.request import TTL, Prompt
from cachewise.scenario import Scenario, run_scenarios
from cachewise.usage import Tally, Usage


def by_name(s: Scenario) -> dict[str, object]:
    return {r.name: r for r in run_scenarios(s)}


def test_seed_table_opus_4_1_fifty_calls() -> None:
    r = by_name(Scenario("claude-opus-4-1", 50, 8000, 420))
    off, five, hour = r["off"], r["5m"], r["1h"]
    assert off.usage.input_tokens == 421_000 and off.cost_usd == Decimal("6.315")
    assert (
        five.usage.ephemeral_5m_input_tokens,
        five.usage.cache_read_input_tokens,
        five.usage.input_tokens,
    ) == (
        8000,
        392_000,
        21_000,
    )
    assert five.cost_usd == Decimal("1.053")
    assert hour.cost_usd == Decimal("1.143")


def test_gaps_longer_than_five_minutes_expire_every_5m_entry_but_not_1h() -> None:
    r = by_name(Scenario("claude-opus-4-1", 50, 8000, 420, gap_seconds=400))
    assert r["5m"].cost_usd == Decimal("7.815")
    assert r["5m"].writes == 50
    assert r["1h"].cost_usd == Decimal("1.143")


def test_parallel_workers_without_a_scout_each_pay_the_write() -> None:
    r = by_name(Scenario("claude-sonnet-4-6", 20, 8000, 100, workers=4))
    assert r["5m"].writes == 4


def test_a_scout_makes_it_one_write() -> None:
    r = by_name(Scenario("claude-sonnet-4-6", 20, 8000, 100, workers=4, scout=True))
    assert r["5m"].writes == 1 and r["5m"].reads == 19


def test_below_the_minimum_caching_changes_nothing() -> None:
    r = by_name(Scenario("claude-haiku-4-5", 10, 2000, 100))
    assert r["5m"].cost_usd == r["off"].cost_usd


def test_break_even_from_the_rates() -> None:
    assert break_even_reads(get_model("claude-sonnet-4-6"), "5m") == 1
    assert break_even_reads(get_model("claude-sonnet-4-6"), "1h") == 2


def per_call_prompts(s: Scenario, ttl: TTL | None) -> tuple[Usage, int, int, float]:
    """The loop as first written: a fresh prompt with its own unique text per call, and a dry run
    to learn its first byte before accounting it."""
    model = get_model(s.model)
    engine, total, wall = Engine(), Tally(), 0.0
    free_at, released_at = [0.0] * s.workers, 0.0
    for i in range(s.calls):
        start = max(heapq.heappop(free_at), i * s.gap_seconds, released_at if i else 0.0)
        segments = [("static", s.static_tokens, ttl), (f"dynamic-{i}", s.dynamic_tokens, None)]
        prompt = Prompt.from_segments(model, segments)
        probe = engine.account(prompt, now=start, commit=False).usage
        ready = start + s.latency.first_byte(probe.input_tokens + probe.cache_creation_input_tokens)
        usage = engine.account(
            prompt, now=start, ready_at=ready, output_tokens=s.output_tokens
        ).usage
        total.add(usage)
        finish = start + s.latency.duration(
            usage.input_tokens + usage.cache_creation_input_tokens, s.output_tokens
        )
        wall = max(wall, finish)
        heapq.heappush(free_at, finish)
        if i == 0 and s.scout and ttl is not None:
            released_at = ready
    return total.usage, total.writes, total.reads, wall


@pytest.mark.parametrize(
    "s",
    [
        Scenario("claude-opus-4-1", 60, 8000, 420, output_tokens=300),
        Scenario("claude-sonnet-4-6", 40, 8000, 100, workers=4),
        Scenario("claude-sonnet-4-6", 40, 8000, 100, workers=4, scout=True),
        Scenario("claude-sonnet-4-6", 40, 30_000, 100, workers=3, gap_seconds=0.3),
        Scenario("claude-opus-4-1", 30, 8000, 420, workers=2, gap_seconds=200, output_tokens=50),
        Scenario("claude-opus-4-1", 30, 8000, 420, gap_seconds=400),
        Scenario("claude-haiku-4-5", 20, 2000, 100, workers=5),
    ],
)
def test_one_prompt_per_run_answers_as_a_fresh_prompt_and_a_dry_run_per_call(s: Scenario) -> None:
    for r, ttl in zip(run_scenarios(s), (None, "5m", "1h"), strict=True):
        usage, writes, reads, wall = per_call_prompts(s, ttl)
        assert (r.usage, r.writes, r.reads, r.wall_seconds) == (usage, writes, reads, wall), r.name


def test_progress_is_heard_along_the_way_and_ends_at_one() -> None:
    heard: list[float] = []
    run_scenarios(Scenario("claude-sonnet-4-6", 2500, 8000, 100), heard.append)
    assert heard == sorted(heard) and heard[-1] == 1.0 and len(heard) >= 9
