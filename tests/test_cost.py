"""The cost model: every price kind, every usage shape, and no float drift."""

from __future__ import annotations

from decimal import Decimal

import pytest
from anthropic.types import CacheCreation
from anthropic.types import Usage as SdkUsage

from cachewise import InputError, PricingError, cost
from cachewise.cost import uncached_cost
from cachewise.usage import Usage, normalize_usage


def test_seed_numbers_for_opus_4_1() -> None:
    """8,000 written, 392,000 read, 21,000 input at $15/MTok input: $1.053."""
    usage = {
        "input_tokens": 21000,
        "cache_creation_input_tokens": 8000,
        "cache_read_input_tokens": 392000,
        "output_tokens": 0,
    }
    assert cost(usage, model="claude-opus-4-1").total_usd == Decimal("1.053")


def test_one_hour_writes_are_priced_at_the_one_hour_rate() -> None:
    usage = {
        "input_tokens": 0,
        "cache_creation_input_tokens": 1_000_000,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 1_000_000},
        "output_tokens": 0,
    }
    c = cost(usage, model="claude-sonnet-4-6")
    assert c.cache_write_1h_usd == Decimal(6) and c.cache_write_5m_usd == 0


def test_writes_without_the_split_are_five_minute_writes() -> None:
    """Early-2025 responses have no cache_creation object."""
    c = cost(
        {"input_tokens": 0, "cache_creation_input_tokens": 1_000_000, "output_tokens": 0},
        model="claude-sonnet-4-6",
    )
    assert c.cache_write_5m_usd == Decimal("3.75")


def test_reads_use_the_absolute_rate_not_a_tenth() -> None:
    """Fable 5.1 reads at 0.025x input."""
    c = cost(
        {"input_tokens": 0, "cache_read_input_tokens": 1_000_000, "output_tokens": 0},
        model="claude-fable-5-1",
    )
    assert c.cache_read_usd == Decimal("0.25")


def test_batch_is_half_of_everything_and_stacks_with_cache_prices() -> None:
    usage = {
        "input_tokens": 1_000_000,
        "cache_read_input_tokens": 1_000_000,
        "cache_creation_input_tokens": 1_000_000,
        "output_tokens": 1_000_000,
    }
    full = cost(usage, model="claude-opus-5")
    half = cost(usage, model="claude-opus-5", batch=True)
    assert half.total_usd * 2 == full.total_usd
    assert (
        cost({**usage, "service_tier": "batch"}, model="claude-opus-5").total_usd == half.total_usd
    )


def test_us_inference_geo_multiplies_every_kind_on_4_6_and_later() -> None:
    usage = {"input_tokens": 1_000_000, "cache_read_input_tokens": 1_000_000, "output_tokens": 0}
    c = cost(usage, model="claude-opus-4-6", inference_geo="us")
    assert c.input_usd == Decimal("5.5") and c.cache_read_usd == Decimal("0.55")
    with pytest.raises(PricingError):
        cost(usage, model="claude-opus-4-1", inference_geo="us")


def test_fast_mode_doubles_every_kind_where_the_model_has_it() -> None:
    # $10/$50 on Opus 5 and Opus 4.8, caching multipliers on top; elsewhere standard prices.
    m = 1_000_000
    usage = Usage(
        input_tokens=m,
        ephemeral_5m_input_tokens=m,
        cache_read_input_tokens=m,
        output_tokens=m,
        speed="fast",
    )
    c = cost(usage, model="claude-opus-5")
    assert (c.input_usd, c.output_usd) == (Decimal(10), Decimal(50))
    assert (c.cache_write_5m_usd, c.cache_read_usd) == (Decimal("12.5"), Decimal(1))
    assert cost(usage, model="claude-opus-5", speed="standard").input_usd == Decimal(5)
    assert cost(usage, model="claude-opus-4-6").input_usd == Decimal(5)  # runs standard


def test_haiku_5_5_price_band_switches_above_100k_prompt_tokens() -> None:
    low = cost({"input_tokens": 100_000, "output_tokens": 1000}, model="claude-haiku-5-5")
    high = cost(
        {"input_tokens": 40_000, "cache_read_input_tokens": 60_001, "output_tokens": 1000},
        model="claude-haiku-5-5",
    )
    assert low.input_usd == Decimal("0.01") and low.output_usd == Decimal("0.0005")
    assert high.input_usd == Decimal("0.02") and high.output_usd == Decimal("0.0025")


def test_the_sdk_usage_object_is_accepted() -> None:
    sdk = SdkUsage(
        input_tokens=10,
        output_tokens=5,
        cache_read_input_tokens=100,
        cache_creation_input_tokens=50,
        cache_creation=CacheCreation(ephemeral_5m_input_tokens=20, ephemeral_1h_input_tokens=30),
    )
    u = normalize_usage(sdk)
    assert (
        u.input_tokens,
        u.cache_read_input_tokens,
        u.ephemeral_5m_input_tokens,
        u.ephemeral_1h_input_tokens,
    ) == (10, 100, 20, 30)


def test_openai_shape_is_normalized_from_its_inclusive_total() -> None:
    u = normalize_usage(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 900},
        }
    )
    assert (u.input_tokens, u.cache_read_input_tokens, u.output_tokens) == (100, 900, 7)


def test_otel_shape_is_normalized_from_its_inclusive_total() -> None:
    u = normalize_usage(
        {
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 3,
            "gen_ai.usage.cache_read.input_tokens": 600,
            "gen_ai.usage.cache_creation.input_tokens": 300,
        }
    )
    assert (u.input_tokens, u.cache_read_input_tokens, u.ephemeral_5m_input_tokens) == (
        100,
        600,
        300,
    )


def test_contradictory_usage_is_an_input_error() -> None:
    with pytest.raises(InputError):
        normalize_usage({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 11}})
    with pytest.raises(InputError):
        normalize_usage(
            {
                "input_tokens": 1,
                "cache_creation_input_tokens": 5,
                "cache_creation": {"ephemeral_5m_input_tokens": 1, "ephemeral_1h_input_tokens": 1},
            }
        )
    with pytest.raises(InputError):
        normalize_usage({"input_tokens": -1})
    with pytest.raises(InputError):
        normalize_usage("12")


def test_a_model_without_a_price_is_refused_not_guessed() -> None:
    with pytest.raises(PricingError):
        cost({"input_tokens": 1, "output_tokens": 1}, model="claude-mythos-preview")


def test_no_drift_over_ten_thousand_calls() -> None:
    one = {
        "input_tokens": 3,
        "cache_read_input_tokens": 7,
        "cache_creation_input_tokens": 1,
        "output_tokens": 1,
    }
    single = cost(one, model="claude-haiku-4-5").total_usd
    summed = sum((cost(one, model="claude-haiku-4-5").total_usd for _ in range(10_000)), Decimal(0))
    assert summed == single * 10_000


def test_uncached_cost_prices_every_prompt_token_as_input() -> None:
    usage = {
        "input_tokens": 21000,
        "cache_creation_input_tokens": 8000,
        "cache_read_input_tokens": 392000,
        "output_tokens": 0,
    }
    assert uncached_cost(usage, model="claude-opus-4-1").total_usd == Decimal("6.315")


def test_web_search_requests_are_billed_per_search() -> None:
    c = cost(
        {"input_tokens": 0, "output_tokens": 0, "server_tool_use": {"web_search_requests": 3}},
        model="claude-sonnet-4-6",
    )
    assert c.total_usd == Decimal("0.03")
