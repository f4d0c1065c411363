"""Usage, in any of the shapes `cachewise.usage` reads, to dollars.

Arithmetic is Decimal end to end: no float drift across thousands of calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from .catalog import Model, Prices, get_model
from .errors import PricingError, UnknownModel
from .usage import Usage, normalize_usage

__all__ = ["Cost", "break_even_reads", "cost", "priced", "uncached_cost"]

MTOK = Decimal(1_000_000)
WEB_SEARCH_USD = Decimal("0.01")  # $10 per 1,000 searches, on top of tokens


@dataclass(frozen=True)
class Cost:
    """Dollars by kind for one usage. `total_usd` is their sum."""

    model: str
    input_usd: Decimal
    cache_write_5m_usd: Decimal
    cache_write_1h_usd: Decimal
    cache_read_usd: Decimal
    output_usd: Decimal
    web_search_usd: Decimal = Decimal(0)
    batch: bool = False
    inference_geo: str | None = None
    speed: str = "standard"  # the speed it was priced at

    @property
    def total_usd(self) -> Decimal:
        return (
            self.input_usd
            + self.cache_write_5m_usd
            + self.cache_write_1h_usd
            + self.cache_read_usd
            + self.output_usd
            + self.web_search_usd
        )

    def breakdown(self) -> dict[str, Decimal]:
        return {
            "input": self.input_usd,
            "cache_write_5m": self.cache_write_5m_usd,
            "cache_write_1h": self.cache_write_1h_usd,
            "cache_read": self.cache_read_usd,
            "output": self.output_usd,
            "web_search": self.web_search_usd,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "total_usd": float(self.total_usd),
            "breakdown_usd": {k: float(v) for k, v in self.breakdown().items()},
            "batch": self.batch,
            "inference_geo": self.inference_geo,
            "speed": self.speed,
        }


def cost(
    usage: Any,
    *,
    model: str | Model,
    batch: bool | None = None,
    inference_geo: str | None = None,
    speed: str | None = None,
) -> Cost:
    """The dollars a call with this usage costs.

    Args:
        usage: any shape `normalize_usage` accepts.
        model: a catalog id or alias, or a `Model`.
        batch: Message Batches pricing (50% of everything); default: the usage's
            `service_tier == "batch"`.
        inference_geo: "us" applies the US-only multiplier where the model has one; default: the
            usage's own `inference_geo`.
        speed: "fast" applies fast-mode prices where the model has them (elsewhere the API runs
            at standard speed and price); default: the usage's own `speed`.

    Raises:
        PricingError: the catalog has no price for the model, or the geo does not apply to it.
        UnknownModel: the model is not in the catalog.
    """
    m = model if isinstance(model, Model) else get_model(model)
    u = normalize_usage(usage)
    batch = (u.service_tier == "batch") if batch is None else batch
    geo = inference_geo if inference_geo is not None else u.inference_geo
    speed = speed if speed is not None else u.speed
    prices = m.prices_for(u.prompt_tokens, speed)
    if prices is None:
        raise PricingError(f"{m.id} has no published price; cachewise will not guess one")
    factor = m.batch_factor if batch else Decimal(1)
    if geo == "us":
        if m.inference_geo_us_multiplier is None:
            raise PricingError(f"{m.id} does not accept inference_geo; the API rejects it with 400")
        factor *= m.inference_geo_us_multiplier
    return _priced(m.id, u, prices, factor, batch, geo, m.runs_at(speed))


def uncached_cost(usage: Any, *, model: str | Model, batch: bool | None = None) -> Cost:
    """What the same prompt would have cost with no caching: every prompt token as input."""
    u = normalize_usage(usage)
    plain = Usage(
        input_tokens=u.prompt_tokens,
        output_tokens=u.output_tokens,
        web_search_requests=u.web_search_requests,
        service_tier=u.service_tier,
        inference_geo=u.inference_geo,
        speed=u.speed,
    )
    return cost(plain, model=model, batch=batch)


def priced(
    usage: Any, *, model: str | Model, batch: bool | None = None
) -> tuple[Decimal, Decimal] | None:
    """What a call with this usage cost, and what it would have cost without caching; None where
    the catalog cannot price it honestly (an unknown model, no published price, a geo the model
    does not take). The one place a missing price is tolerated: summaries count such a call and
    add no dollars for it."""
    try:
        return (
            cost(usage, model=model, batch=batch).total_usd,
            uncached_cost(usage, model=model, batch=batch).total_usd,
        )
    except (PricingError, UnknownModel):
        return None


def break_even_reads(model: Model, ttl: Literal["5m", "1h"]) -> int | None:
    """Reads after which one write at this TTL has paid for itself, from the model's rates."""
    if model.prices is None:
        return None
    p = model.prices
    premium = (p.cache_write_5m if ttl == "5m" else p.cache_write_1h) - p.input
    saving = p.input - p.cache_read
    return max(1, math.ceil(premium / saving)) if saving > 0 else None


def _priced(
    model: str, u: Usage, p: Prices, factor: Decimal, batch: bool, geo: str | None, speed: str
) -> Cost:
    def usd(tokens: int, rate: Decimal) -> Decimal:
        return Decimal(tokens) * rate * factor / MTOK

    return Cost(
        model=model,
        input_usd=usd(u.input_tokens, p.input),
        cache_write_5m_usd=usd(u.ephemeral_5m_input_tokens, p.cache_write_5m),
        cache_write_1h_usd=usd(u.ephemeral_1h_input_tokens, p.cache_write_1h),
        cache_read_usd=usd(u.cache_read_input_tokens, p.cache_read),
        output_usd=usd(u.output_tokens, p.output),
        web_search_usd=Decimal(u.web_search_requests) * WEB_SEARCH_USD,
        batch=batch,
        inference_geo=geo,
        speed=speed,
    )
