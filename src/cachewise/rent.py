"""Rent or buy: how many keep-alive reads an entry gets, and what that guarantees.

A keep-alive read rents an entry for one more TTL; letting it die and writing it again on the
next use buys it anew. `simulate`'s cachewise strategy caps the rent (ski rental):

- a 5m entry gets at most one keep-alive per idle period on the evidence of `KeepAlivePolicy`,
  and more than one only from a budget of `five_minute_cap` extra reads over the prefix's life
  (the reads that cost what one 5m write does);
- a 1h entry gets up to `hourly_cap` keep-alives per idle period (as many as cost less than
  sending the prefix as input): on the evidence until its prefix has once been idle longer than
  an hour, whatever the evidence says from then on.

With the planner's TTL rule (`plan._best_ttl`), that bounds the strategy against the oracle on
traces where each request is one reused prefix and a part no other request shares:
cost <= c * oracle + A * (each prefix's tokens at the input price). `guarantee` gives c and A
for a model's prices; docs/simulate.md ("How far from the best the cachewise strategy can be")
has the proof.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .body import strip_markers
from .catalog import Prices
from .keepalive import ping
from .request import parse_request

__all__ = ["Guarantee", "bound_for", "five_minute_cap", "guarantee", "hourly_cap"]

MTOK = Decimal(1_000_000)


def hourly_cap(prices: Prices) -> int:
    """Keep-alives a 1h entry gets per idle period: the most whose reads cost less than the
    input price, ceil(input / read) - 1 (9 at a read price of 0.1x input)."""
    if prices.cache_read <= 0:
        return 0
    return math.ceil(prices.input / prices.cache_read) - 1


def five_minute_cap(prices: Prices) -> int:
    """Keep-alives a 5m entry may get in one idle period, and extra ones (past the first of an
    idle period) over its prefix's life: the reads that cost what re-writing it adds,
    floor((5m write - read) / read) (11 at Anthropic's ratios)."""
    if prices.cache_read <= 0:
        return 0
    return int((prices.cache_write_5m - prices.cache_read) / prices.cache_read)


@dataclass(frozen=True)
class Guarantee:
    """cost(cachewise) <= factor * cost(oracle) + sum over prefixes of allowance * u, where u is
    the prefix's tokens at the input price."""

    factor: Decimal
    allowance: Decimal


def guarantee(prices: Prices, ping_overhead: Decimal = Decimal(0)) -> Guarantee:
    """c and A for a model's prices. Ratios to the input price: a (5m write), b (1h write),
    r (read); a keep-alive costs r * (1 + ping_overhead) (its few tokens past the prefix, at
    the input price, relative to the prefix's read). With K1 = `hourly_cap`, K5 =
    `five_minute_cap` and p = r * (1 + ping_overhead):

        c = max(b + K1 * p, 1 + p / r)
        A = a + 2 * b + (K5 + 2 * K1) * p
    """
    a = prices.cache_write_5m / prices.input
    b = prices.cache_write_1h / prices.input
    p = prices.cache_read / prices.input * (1 + ping_overhead)
    k1, k5 = hourly_cap(prices), five_minute_cap(prices)
    # 1 + p / r covers a read after one keep-alive, where hindsight may read for r alone; with
    # the catalog's prices it is below b + K1 * p, which covers every other case.
    factor = max(b + k1 * p, 1 + p / (prices.cache_read / prices.input))
    return Guarantee(factor=factor, allowance=a + 2 * b + (k5 + 2 * k1) * p)


def bound_for(bodies: Iterable[Mapping[str, Any]]) -> tuple[Decimal, Decimal]:
    """The bound on a trace of the regime `guarantee` covers, whose requests' reused prefix
    ends with the system prompt: (c, the sum over its prefixes of A times the prefix's tokens
    at the input price, in dollars). c is the largest of the prefixes': a keep-alive's few
    tokens past its prefix count."""
    factor, allowance, seen = Decimal(0), Decimal(0), set()
    for body in bodies:
        plain = strip_markers(dict(body))
        prompt = parse_request(plain)
        system = [p for p in prompt.positions if p.level == "system"]
        prices = prompt.model.prices_for(prompt.total_tokens, prompt.speed)
        if not system or prices is None or system[-1].prefix_hash in seen:
            continue
        prefix = system[-1]
        seen.add(prefix.prefix_hash)
        pinged = parse_request(ping(plain, prefix.path, "5m"))
        extra = pinged.total_tokens - prefix.cumulative
        overhead = extra * prices.input / (prefix.cumulative * prices.cache_read)
        g = guarantee(prices, overhead)
        factor = max(factor, g.factor)
        allowance += g.allowance * prefix.cumulative * prices.input / MTOK
    return factor, allowance
