"""`cachewise cost` scenarios, computed by the engine: the seed's numbers must hold exactly."""

from __future__ import annotations

from decimal import Decimal

from cachewise import get_model
from cachewise.cost import break_even_reads
from cachewise.scenario import Scenario, run_scenarios


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
