"""What one emulator holds: its configuration, its clock, the engine, faults, limits and stats.

The routes (`emulator`: the Messages API, models and the control API; `batches`: Message Batches)
all read and change this one state, and import it from here rather than from each other.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import Request

from ..engine import Account, Engine
from ..errors import InputError
from ..request import Prompt
from ..usage import Usage
from .api import ApiError
from .faults import FaultPlan, parse_faults
from .limits import RateLimiter, parse_limits
from .reading import RequestReader

__all__ = ["Clock", "EmulatorConfig", "EmulatorState", "Stats"]

MAX_BODY_BYTES = 32 * 1024 * 1024
# Ten years: past the longest TTL many thousands of times over, and far from the floats that,
# added to every later time, would make each request write and never read.
MAX_ADVANCE_SECONDS = 10 * 365 * 24 * 3600


@dataclass
class EmulatorConfig:
    """How the emulator behaves; every field has a `cachewise emulate` flag (`loopback`: whether
    `--host` is a loopback address)."""

    clock: Literal["real", "virtual"] = "real"
    ttft_ms: float = 400.0
    prefill_ms_per_1k: float = 25.0
    output_tokens_per_s: float = 80.0
    workspaces: Mapping[str, str] | None = None
    faults: str | None = None
    limits: str | None = None
    seed: int | None = None
    batch_concurrency: int = 4
    batch_cache: Literal["separate", "shared"] = "separate"
    legacy_lookback: bool = False
    eviction_rate: float = 0.0
    max_body_bytes: int = MAX_BODY_BYTES
    # Bound to loopback only (from `--host`): then every route, not only the control API,
    # answers loopback Host names only, which a DNS-rebinding page cannot send.
    loopback: bool = True


class Clock:
    """Seconds since start (real) or since reset (virtual); both can be advanced by hand.

    The virtual clock moves only when told, so a response's latency, waited in wall time on
    either clock, passes no time on it.
    """

    def __init__(self, virtual: bool) -> None:
        self.virtual = virtual
        self.reset()

    def reset(self) -> None:
        self._t0 = time.monotonic()
        self._offset = 0.0

    def now(self) -> float:
        return self._offset if self.virtual else time.monotonic() - self._t0 + self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward by `seconds`; returns the new time.

        Raises:
            InputError: not a number from 0 to `MAX_ADVANCE_SECONDS` (NaN and infinity are not).
        """
        if not 0 <= seconds <= MAX_ADVANCE_SECONDS:
            raise InputError(
                f"the clock advances by a number of seconds from 0 to {MAX_ADVANCE_SECONDS} "
                "(ten years)"
            )
        self._offset += float(seconds)
        return self.now()

    def ready_at(self, first_byte: float) -> float:
        """When the entries of a response whose first byte is due at `first_byte` turn readable
        without being told: then, on the real clock. The virtual clock will not get there by
        itself, so they stay pending until `Engine.begin` says the response began."""
        return math.inf if self.virtual else first_byte


@dataclass
class Stats:
    """Requests by status, and the usage of those that succeeded."""

    requests: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    # Summed field by field as they come: a new frozen Usage per request was a hot-path cost.
    _sums: list[int] = field(default_factory=lambda: [0] * _SUMMED)

    def record(self, status: int, usage: Usage | None = None) -> None:
        self.requests += 1
        self.by_status[str(status)] = self.by_status.get(str(status), 0) + 1
        if usage is not None:
            s = self._sums
            s[0] += usage.input_tokens
            s[1] += usage.cache_read_input_tokens
            s[2] += usage.ephemeral_5m_input_tokens
            s[3] += usage.ephemeral_1h_input_tokens
            s[4] += usage.output_tokens
            s[5] += usage.web_search_requests

    @property
    def usage(self) -> Usage:
        s = self._sums
        return Usage(s[0], s[1], s[2], s[3], s[4], s[5])

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": dict(self.by_status),
            "usage": self.usage.to_api(),
        }


_SUMMED = 6  # Usage's token fields, in its order: input, read, 5m, 1h, output, web searches


class EmulatorState:
    """Everything one emulator instance holds: the engine, the clock, faults, limits, stats."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = Clock(config.clock == "virtual")
        self.engine = Engine(
            legacy_lookback=config.legacy_lookback,
            eviction_rate=config.eviction_rate,
            seed=config.seed,
        )
        self.faults: FaultPlan = parse_faults(config.faults, config.seed)
        limits = parse_limits(config.limits)
        self.limiter = RateLimiter(limits) if limits else None
        self.stats = Stats()
        self.reader = RequestReader()
        self._numbers = itertools.count(1)
        self._ids = itertools.count(1)

    def reset(self) -> None:
        self.engine.reset()
        self.clock.reset()
        self.stats = Stats()
        self.faults = parse_faults(self.config.faults, self.config.seed)
        self._numbers = itertools.count(1)
        if self.limiter:
            self.limiter.buckets.clear()

    def cache(self, now: float) -> list[dict[str, Any]]:
        """The entries alive at `now`, as the control API and `Emulator.cache()` list them."""
        return [e.to_json(now, self.engine.expiry_grace) for e in self.engine.snapshot(now)]

    def next_number(self) -> int:
        """The 1-based number of a Messages request since the last reset (faults pick by it)."""
        return next(self._numbers)

    def next_id(self, prefix: str) -> str:
        return f"{prefix}_emu{next(self._ids):08d}"

    def workspace(self, request: Request) -> str:
        """The caller's workspace, from its key; 401 without one."""
        key = request.headers.get("x-api-key")
        if not key:  # (only then: a header that is absent costs a KeyError inside `get`)
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                key = auth[7:].strip()
        if not key:
            raise ApiError(401, "authentication_error", "x-api-key header is required")
        mapped = (self.config.workspaces or {}).get(key)
        return mapped or _workspace_id(key)

    def ttft(self, uncached_tokens: int, extra_ms: float = 0.0) -> float:
        c = self.config
        return (c.ttft_ms + c.prefill_ms_per_1k * uncached_tokens / 1000 + extra_ms) / 1000

    def output_seconds(self, tokens: int) -> float:
        tps = self.config.output_tokens_per_s
        return tokens / tps if tps > 0 else 0.0  # 0 means instant, for tests

    def metered_input(self, prompt: Prompt, account: Account) -> int:
        u = account.usage
        reads = u.cache_read_input_tokens if prompt.model.itpm_counts_cache_reads else 0
        return u.input_tokens + u.cache_creation_input_tokens + reads


@functools.lru_cache(maxsize=256)  # a hash per request, of the same few keys
def _workspace_id(key: str) -> str:
    """A key's workspace: a one-way hash, so the key itself is never logged or echoed (it is held
    in memory only, as the request that carried it is)."""
    return "wrkspc_" + hashlib.sha256(key.encode()).hexdigest()[:24]
