"""Token usage: one type in the API's own field names, read from any shape it comes in, and summed.

The API's `usage` is the reference shape: `input_tokens` is the uncached remainder, and writes are
split into `cache_creation.ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens`. OpenAI-style
and OpenTelemetry usage count cached tokens inside the input total, so they are normalized first;
adding the cache fields to an inclusive total is the most common cost bug in the field.

`Usage` is what the engine returns, what the cost model prices and what the ledger stores;
`Tally` is the one running sum (calls, usage, dollars, writes and reads) that every summary
(a run, a simulated strategy, a scenario, a report group) is built on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .errors import InputError

__all__ = ["Tally", "Usage", "normalize_usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts by kind, with the API's field names (input excludes cache reads and writes)."""

    input_tokens: int = 0
    cache_read_input_tokens: int = 0
    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0
    output_tokens: int = 0
    web_search_requests: int = 0
    service_tier: str | None = None
    inference_geo: str | None = None
    speed: str | None = None

    @property
    def cache_creation_input_tokens(self) -> int:
        return self.ephemeral_5m_input_tokens + self.ephemeral_1h_input_tokens

    @property
    def prompt_tokens(self) -> int:
        """Every input token of the request: input + cache read + cache write."""
        return self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.ephemeral_5m_input_tokens + other.ephemeral_5m_input_tokens,
            self.ephemeral_1h_input_tokens + other.ephemeral_1h_input_tokens,
            self.output_tokens + other.output_tokens,
            self.web_search_requests + other.web_search_requests,
        )

    def to_api(self) -> dict[str, Any]:
        """The `usage` object exactly as the Messages API returns it (the token fields)."""
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.ephemeral_5m_input_tokens,
                "ephemeral_1h_input_tokens": self.ephemeral_1h_input_tokens,
            },
            "output_tokens": self.output_tokens,
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
        cache_read_input_tokens=_int(usage, "cache_read_input_tokens"),
        ephemeral_5m_input_tokens=w5m,
        ephemeral_1h_input_tokens=w1h,
        output_tokens=_int(usage, "output_tokens"),
        web_search_requests=_int(tools, "web_search_requests"),
        service_tier=_str(usage, "service_tier"),
        inference_geo=_str(usage, "inference_geo"),
        speed=_str(usage, "speed"),
    )


@dataclass
class Tally:
    """A running sum over calls: how many (and how many failed), their usage, what they cost
    and would have cost without caching, and how many wrote and read the cache."""

    calls: int = 0
    errors: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: Decimal = Decimal(0)
    cost_without_cache_usd: Decimal = Decimal(0)
    writes: int = 0
    reads: int = 0

    def add(
        self,
        usage: Usage | None = None,
        cost_usd: Decimal = Decimal(0),
        cost_without_cache_usd: Decimal = Decimal(0),
        *,
        error: bool = False,
    ) -> None:
        """Count one call (a failed one may still carry usage: a broken stream is billed)."""
        self.calls += 1
        self.errors += error
        if usage is not None:
            self.usage = self.usage + usage
            self.writes += usage.cache_creation_input_tokens > 0
            self.reads += usage.cache_read_input_tokens > 0
        self.cost_usd += cost_usd
        self.cost_without_cache_usd += cost_without_cache_usd

    @property
    def savings_pct(self) -> float:
        base = self.cost_without_cache_usd
        return float((base - self.cost_usd) / base * 100) if base else 0.0

    @property
    def hit_rate(self) -> float:
        """Cache reads over all prompt tokens (not over input, which excludes writes)."""
        prompt = self.usage.prompt_tokens
        return self.usage.cache_read_input_tokens / prompt if prompt else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "errors": self.errors,
            "usage": self.usage.to_api(),
            "cost_usd": float(self.cost_usd),
            "cost_without_cache_usd": float(self.cost_without_cache_usd),
            "savings_pct": round(self.savings_pct, 2),
            "cache_hit_rate": round(self.hit_rate, 4),
            "writes": self.writes,
            "reads": self.reads,
        }


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
        cache_read_input_tokens=read,
        ephemeral_5m_input_tokens=write,
        output_tokens=_int(usage, output_key),
    )


def _int(data: Any, key: str) -> int:
    value = data.get(key) if isinstance(data, Mapping) else None
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InputError(f"{key} must be a non-negative number, not {value!r}", field=key)
    if isinstance(value, float) and not value < 2**63:
        raise InputError(f"{key} must be a finite number, not {value!r}", field=key)
    return int(value)


def _str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None
