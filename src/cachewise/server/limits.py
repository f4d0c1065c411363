"""Rate limits for the emulator: token buckets per workspace and model, as the API meters them.

Requests, input tokens and output tokens per minute refill continuously. Input counts uncached
input and cache writes; cache reads count only on models whose catalog entry says so (Haiku 3.5
and 3), as the rate-limit docs describe. Configured with `--limits rpm=50,itpm=30000,otpm=8000`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ..errors import InputError

__all__ = ["Limits", "RateLimiter", "parse_limits"]

NAMES = {"rpm": "requests", "itpm": "input-tokens", "otpm": "output-tokens"}


@dataclass(frozen=True)
class Limits:
    rpm: int | None = None
    itpm: int | None = None
    otpm: int | None = None


@dataclass
class _Bucket:
    capacity: float
    level: float
    at: float

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.at) * self.capacity / 60.0)
        self.at = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` is available (0 if it is now)."""
        short = min(amount, self.capacity) - self.level
        return 0.0 if short <= 0 else short * 60.0 / self.capacity


@dataclass
class RateLimiter:
    limits: Limits
    buckets: dict[tuple[str, str, str], _Bucket] = field(default_factory=dict)

    def _bucket(self, key: tuple[str, str], name: str, now: float) -> _Bucket | None:
        capacity = getattr(self.limits, name)
        if capacity is None:
            return None
        b = self.buckets.setdefault((*key, name), _Bucket(capacity, capacity, now))
        b.refill(now)
        return b

    def admit(self, key: tuple[str, str], now: float, input_tokens: int) -> float:
        """Charge one request and its metered input; return 0, or the seconds to wait instead."""
        waits = []
        for name, amount in (("rpm", 1), ("itpm", input_tokens)):
            b = self._bucket(key, name, now)
            if b is not None:
                waits.append(b.wait_for(amount))
        if any(waits):
            return max(waits)
        for name, amount in (("rpm", 1), ("itpm", input_tokens)):
            b = self._bucket(key, name, now)
            if b is not None:
                b.level -= amount
        return 0.0

    def charge_output(self, key: tuple[str, str], now: float, output_tokens: int) -> None:
        b = self._bucket(key, "otpm", now)
        if b is not None:
            b.level -= output_tokens

    def headers(
        self, key: tuple[str, str], now: float, wall: datetime | None = None
    ) -> dict[str, str]:
        """The `anthropic-ratelimit-*` headers for this workspace and model."""
        wall = wall or datetime.now(UTC)
        out: dict[str, str] = {}
        for name, label in NAMES.items():
            b = self._bucket(key, name, now)
            if b is None:
                continue
            remaining = max(0, math.floor(b.level))
            if name != "rpm":
                remaining = int(round(remaining, -3))  # token counts are rounded to the thousand
            reset = wall + timedelta(seconds=(b.capacity - b.level) * 60.0 / b.capacity)
            out[f"anthropic-ratelimit-{label}-limit"] = str(int(b.capacity))
            out[f"anthropic-ratelimit-{label}-remaining"] = str(remaining)
            out[f"anthropic-ratelimit-{label}-reset"] = reset.isoformat(timespec="seconds").replace(
                "+00:00", "Z"
            )
        return out


def _digits(value: str) -> bool:
    # str.isdigit() is True for "²" and "٣" too, which int() refuses or reads as another digit.
    return value.isascii() and value.isdigit()


def parse_limits(spec: str | None) -> Limits | None:
    """Parse `rpm=50,itpm=30000,otpm=8000` (any subset).

    Raises:
        InputError: an unknown name or a number that is not a positive integer.
    """
    if not spec:
        return None
    values: dict[str, int] = {}
    for item in spec.split(","):
        name, _, value = item.strip().partition("=")
        if name not in NAMES or not _digits(value) or int(value) <= 0:
            raise InputError(
                f"limit {item.strip()!r} is not rpm=N, itpm=N or otpm=N", field="--limits"
            )
        values[name] = int(value)
    return Limits(**values)
