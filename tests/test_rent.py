"""The keep-alive caps, and the guarantee they give: on quiet traffic the cachewise strategy
costs at most c times the oracle plus A per prefix (docs/simulate.md, "How far from the best
the cachewise strategy can be"), checked exactly on random traces."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from cachewise.catalog import catalog
from cachewise.rent import bound_for, five_minute_cap, guarantee, hourly_cap
from cachewise.simulate import simulate
from conftest import CC, CC_1H, block, examples, request, text

# One model for each price ratio the catalog has (read at 0.1x, 0.05x, 0.025x; 1.2x writes).
MODELS = ["claude-sonnet-4-6", "claude-sonnet-5-5", "claude-fable-5-2", "claude-3-haiku-20240307"]
# Gaps in seconds: a burst, around the 5m TTL and its first keep-alive, up to and around an
# hour and its hourly keep-alives, and past what hourly keep-alives bridge.
GAPS = st.one_of(
    st.floats(2, 60),
    st.floats(240, 900),
    st.floats(280, 310),
    st.floats(570, 610),
    st.floats(900, 3600),
    st.floats(3570, 3620),
    st.floats(7150, 7220),
    st.floats(3600, 40_000),
    st.floats(40_000, 400_000),
)


def test_the_caps_rent_less_than_they_would_buy_for_every_model() -> None:
    for model in catalog().models:
        prices = model.prices
        if prices is None:
            continue
        k1, k5, r = hourly_cap(prices), five_minute_cap(prices), prices.cache_read
        # K1 hourly reads cost less than an input; one more would not.
        assert k1 * r < prices.input <= (k1 + 1) * r
        assert k5 * r <= prices.cache_write_5m - r < (k5 + 1) * r
        g = guarantee(prices)
        b = prices.cache_write_1h / prices.input
        assert b <= g.factor < b + 1, model.id
        assert g.allowance > 0


@dataclass(frozen=True)
class Quiet:
    """A quiet trace, small enough to print: its rows are built from it."""

    model: str
    marker: str | None  # the client's marker on the system prompt: None, "5m" or "1h"
    sizes: tuple[int, ...]  # words of each system prompt
    gaps: tuple[float, ...]
    prompt: tuple[int, ...]  # which system prompt each request has
    output: int

    def rows(self) -> list[dict[str, Any]]:
        cc = {None: None, "5m": CC, "1h": CC_1H}[self.marker]
        prompts = [text(n, f"prompt{k}") for k, n in enumerate(self.sizes)]
        rows, t = [], 0.0
        for i, k in enumerate(self.prompt):
            rows.append(
                {
                    "started_at": round(t, 3),
                    "ttft_ms": 900,
                    "usage": {"input_tokens": 0, "output_tokens": self.output},
                    "request": request(
                        model=self.model,
                        system=[block(prompts[k], cc)],
                        messages=[{"role": "user", "content": f"Question {i}"}],
                    ),
                }
            )
            t += self.gaps[i] if i < len(self.gaps) else 0.0
        return rows


@st.composite
def quiet_traces(draw: st.DrawFn) -> Quiet:
    """One or two system prompts, the client's markers or none; 2-10 requests apart by GAPS,
    or (a rhythm, where a bad rule pays on every gap) 6-30 apart by one of GAPS give or take
    a tenth."""
    sizes = tuple(draw(st.lists(st.integers(1800, 5000), min_size=1, max_size=2)))
    if draw(st.booleans()):
        n = draw(st.integers(2, 10))
        gaps = draw(st.lists(GAPS, min_size=n - 1, max_size=n - 1))
    else:
        n, rhythm = draw(st.integers(6, 30)), draw(GAPS)
        jitter = st.floats(0.9, 1.1)
        gaps = [rhythm * f for f in draw(st.lists(jitter, min_size=n - 1, max_size=n - 1))]
    return Quiet(
        model=draw(st.sampled_from(MODELS)),
        marker=draw(st.sampled_from([None, "5m", "1h"])),
        sizes=sizes,
        gaps=tuple(gaps),
        prompt=tuple(draw(st.lists(st.integers(0, len(sizes) - 1), min_size=n, max_size=n))),
        output=draw(st.integers(0, 400)),
    )


TOLERANCE = Decimal("1e-12")  # dollars: the costs are Decimal sums, the bound is exact
# What the search found against the previous rule: a lone prefix used every hour and a second,
# each use writing the entry again where the oracle pays two reads.
HOURLY = Quiet("claude-sonnet-4-6", None, (1800,), (3601.0,) * 17, (0,) * 18, 0)


@settings(max_examples=examples(60), deadline=None)
@given(quiet_traces())
@example(HOURLY)
def test_cachewise_stays_within_the_bound_of_the_oracle(trace: Quiet) -> None:
    rows = trace.rows()
    outcomes = {o.name: o for o in simulate(rows, ["cachewise"])}
    factor, allowance = bound_for(r["request"] for r in rows)
    ours, best = outcomes["cachewise"].cost_usd, outcomes["oracle"].cost_usd
    assert ours <= factor * best + allowance + TOLERANCE


@settings(max_examples=examples(60), deadline=None)
@given(quiet_traces())
def test_cachewise_stays_within_the_bound_of_the_clients_own_markers(trace: Quiet) -> None:
    rows = trace.rows()
    # The client's markers are one strategy: they cost at least the oracle, so the same c and A
    # bound cachewise against them.
    outcomes = {o.name: o for o in simulate(rows, ["cachewise", "as-is"])}
    factor, allowance = bound_for(r["request"] for r in rows)
    ours, theirs = outcomes["cachewise"].cost_usd, outcomes["as-is"].cost_usd
    assert ours <= factor * theirs + allowance + TOLERANCE
