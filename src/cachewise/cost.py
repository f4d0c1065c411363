"""Usage, in any of the shapes it comes in, to dollars.

The API's `usage` is the reference shape: `input_tokens` is the uncached remainder, and writes are
split into `cache_creation.ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens`. OpenAI-style
and OpenTelemetry usage count cached tokens inside the input total, so they are normalized first;
adding the cache fields to an inclusive total is the most common cost bug in the field.

Arithmetic is Decimal end to end: no float drift across thousands of calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from .catalog import Model, Prices, get_model
from .errors import InputError, PricingError

__all__ = ["Cost", "Usage", "break_even_reads", "cost", "normalize_usage", "uncached_cost"]

MTOK = Decimal(1_000_000)
WEB_SEARCH_USD = Decimal("0.01")  # $10 per 1,000 searches, on top of tokens


@dataclass(frozen=True)
class Usage:
    """Token counts by kind, in the API's meaning (input excludes cache reads and writes)."""

    input_tokens: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0
    output_tokens: int = 0
    web_search_requests: int = 0
    service_tier: str | None = None
    inference_geo: str | None = None
    speed: str | None = None

    @property
    def cache_creation_input_tokens(self) -> int:
        return self.cache_write_5m + self.cache_write_1h

    @property
    def prompt_tokens(self) -> int:
        """Every input token of the request: input + cache read + cache write."""
        return self.input_tokens + self.cache_read + self.cache_creation_input_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.cache_write_5m + other.cache_write_5m,
            self.cache_write_1h + other.cache_write_1h,
            self.cache_read + other.cache_read,
            self.output_tokens + other.output_tokens,
            self.web_search_requests + other.web_search_requests,
        )

    def to_api(self) -> dict[str, Any]:
        """The API's usage field names."""
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_write_5m,
                "ephemeral_1h_input_tokens": self.cache_write_1h,
            },
            "output_tokens": self.output_tokens,
        }


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


def normalize_usage(usage: Any) -> Usage:
    """A `Usage` from the API's usage dict, the SDK's `Usage` object, or an inclusive shape.

    Accepted: the Messages API usage (with or without the `cache_creation` split; without it,
    every write is a 5m write), the SDK's pydantic `Usage`, OpenAI-style `prompt_tokens` /
    `completion_tokens` with `prompt_tokens_details.cached_tokens`, and OpenTelemetry
    `gen_ai.usage.*` attributes (whose input total includes cached tokens).

    Raises:
        InputError: the usage is not one of these shapes, or its numbers contradict each other.
    """
    if isinstance(usage, Usage):
        return usage
    if hasattr(usage, "model_dump"):
        usage = usage.model_dump()
    if not isinstance(usage, Mapping):
        raise InputError(f"usage must be an object, not {type(usage).__name__}", field="usage")
    if "gen_ai.usage.input_tokens" in usage:
        return _inclusive(
            usage,
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.output_tokens",
            _int(usage, "gen_ai.usage.cache_read.input_tokens"),
            _int(usage, "gen_ai.usage.cache_creation.input_tokens"),
        )
    if "prompt_tokens" in usage:
        details = usage.get("prompt_tokens_details") or {}
        read = _int(details, "cached_tokens") or _int(usage, "cache_read_input_tokens")
        write = (
            _int(details, "cache_creation_tokens")
            or _int(details, "cache_write_tokens")
            or _int(usage, "cache_creation_input_tokens")
        )
        return _inclusive(usage, "prompt_tokens", "completion_tokens", read, write)
    if "input_tokens" not in usage and "output_tokens" not in usage:
        raise InputError("usage has neither input_tokens nor prompt_tokens", field="usage")
    split = usage.get("cache_creation") or {}
    creation = _int(usage, "cache_creation_input_tokens")
    w1h = _int(split, "ephemeral_1h_input_tokens")
    w5m = _int(split, "ephemeral_5m_input_tokens") if split else creation
    if split and creation and w5m + w1h != creation:
        raise InputError(
            f"cache_creation_input_tokens ({creation}) is not the sum of cache_creation "
            f"({w5m} + {w1h})",
            field="usage.cache_creation",
        )
    tools = usage.get("server_tool_use") or {}
    return Usage(
        input_tokens=_int(usage, "input_tokens"),
        cache_write_5m=w5m,
        cache_write_1h=w1h,
        cache_read=_int(usage, "cache_read_input_tokens"),
        output_tokens=_int(usage, "output_tokens"),
        web_search_requests=_int(tools, "web_search_requests"),
        service_tier=usage.get("service_tier"),
        inference_geo=usage.get("inference_geo"),
        speed=usage.get("speed"),
    )


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
        cache_write_5m_usd=usd(u.cache_write_5m, p.cache_write_5m),
        cache_write_1h_usd=usd(u.cache_write_1h, p.cache_write_1h),
        cache_read_usd=usd(u.cache_read, p.cache_read),
        output_usd=usd(u.output_tokens, p.output),
        web_search_usd=Decimal(u.web_search_requests) * WEB_SEARCH_USD,
        batch=batch,
        inference_geo=geo,
        speed=speed,
    )


def _inclusive(
    usage: Mapping[str, Any], total_key: str, output_key: str, read: int, write: int
) -> Usage:
    total = _int(usage, total_key)
    if read + write > total:
        raise InputError(
            f"{total_key} ({total}) counts cached tokens, but cache read ({read}) + write "
            f"({write}) exceed it",
            field=total_key,
        )
    return Usage(
        input_tokens=total - read - write,
        cache_write_5m=write,
        cache_read=read,
        output_tokens=_int(usage, output_key),
    )


def _int(data: Any, key: str) -> int:
    value = data.get(key) if isinstance(data, Mapping) else None
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InputError(f"{key} must be a non-negative number, not {value!r}", field=key)
    return int(value)
