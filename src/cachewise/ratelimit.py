"""An input-tokens-per-minute budget shared by a fleet, in Redis: each process takes its estimate
before a call and settles with what the API counted after.

The API meters input tokens per minute as a token bucket that refills continuously; what it
counts is uncached input and cache writes, not cache reads (except on the models whose catalog
entry says `itpm_counts_cache_reads`). A fleet that shares one limit shares one bucket:

    limit = RedisRateLimit("redis://host:6379/0", tokens_per_minute=400_000)
    limit.acquire(estimate)                  # waits (bounded) until the bucket holds it
    message = client.messages.create(...)
    limit.settle(estimate, counted_input(message.usage, model))

The bucket is one Redis hash, changed only by a Lua script that reads Redis's clock (`TIME`), so
machines whose clocks disagree still share one minute. A call larger than the whole bucket waits
for a full bucket and leaves it in debt, as the API's own bucket does. Redis down means no
waiting, with one `CachewiseWarning` per outage: a limit is for pacing, never a reason to fail.
"""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from typing import Any

import redis
import redis.asyncio

from .catalog import get_model
from .errors import CachewiseWarning
from .fleet import RETRY_AFTER, TIMEOUTS
from .usage import normalize_usage

__all__ = ["RedisRateLimit", "counted_input"]

# KEYS: bucket. ARGV: capacity per minute, amount (negative returns tokens), force ("1": take
# it even if short). Returns the seconds to wait, as a string (a Lua number would be truncated).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local cap = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'level', 'at')
local level = tonumber(b[1]) or cap
local at = tonumber(b[2]) or now
level = math.min(cap, level + math.max(0, now - at) * cap / 60)
local short = math.min(amount, cap) - level
local wait = 0
if amount > 0 and short > 0 and ARGV[3] ~= '1' then
  wait = short * 60 / cap
else
  level = math.min(cap, level - amount)
end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], 120000)
return tostring(wait)
"""


def counted_input(usage: Any, model: str) -> int:
    """The input tokens of a call that count toward the input-tokens-per-minute limit: uncached
    input and cache writes, and cache reads only where the model's limit counts them."""
    u = normalize_usage(usage)
    counted = u.input_tokens + u.cache_creation_input_tokens
    if get_model(model).itpm_counts_cache_reads:
        counted += u.cache_read_input_tokens
    return counted


class RedisRateLimit:
    """One token bucket of `tokens_per_minute`, shared by every process using the same Redis,
    `prefix` and `name` (one per workspace and model, as the API keeps them).

    Args:
        url_or_client: a `redis://` URL, or a `redis.Redis` (async calls then use a thread).
        tokens_per_minute: the limit, refilled continuously.
        name: which bucket.
        max_wait: the longest `acquire` waits; past it the call goes anyway (the API answers
            429 and the SDK retries) and the tokens are taken all the same.
    """

    def __init__(
        self,
        url_or_client: str | redis.Redis,
        *,
        tokens_per_minute: int,
        name: str = "itpm",
        prefix: str = "cachewise:limit:",
        max_wait: float = 60.0,
    ) -> None:
        self.capacity = tokens_per_minute
        self.key = f"{prefix}{name}"
        self.max_wait = max_wait
        self._url = url_or_client if isinstance(url_or_client, str) else None
        client = (
            redis.Redis.from_url(url_or_client, **TIMEOUTS)
            if isinstance(url_or_client, str)
            else url_or_client
        )
        self._take = client.register_script(_TAKE)
        self._client = client
        self._loops: dict[asyncio.AbstractEventLoop, Any] = {}
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._outage = False

    def acquire(self, tokens: int) -> float:
        """Take `tokens` from the bucket, waiting until it holds them (at most `max_wait`);
        the seconds waited."""
        start = time.monotonic()
        while True:
            left = start + self.max_wait - time.monotonic()
            wait = self._call(tokens, force=left <= 0)
            if wait <= 0:
                return time.monotonic() - start
            time.sleep(min(wait, max(0.0, left)) + 0.001)

    def settle(self, estimated: int, actual: int) -> None:
        """Give back what the estimate took beyond what the API counted (`counted_input`), or
        take what it took too little."""
        if actual != estimated:
            self._call(actual - estimated, force=True)

    async def acquire_async(self, tokens: int) -> float:
        if self._url is None:
            return await asyncio.to_thread(self.acquire, tokens)
        start = time.monotonic()
        while True:
            left = start + self.max_wait - time.monotonic()
            wait = await self._call_async(tokens, force=left <= 0)
            if wait <= 0:
                return time.monotonic() - start
            await asyncio.sleep(min(wait, max(0.0, left)) + 0.001)

    async def settle_async(self, estimated: int, actual: int) -> None:
        if self._url is None:
            await asyncio.to_thread(self.settle, estimated, actual)
        elif actual != estimated:
            await self._call_async(actual - estimated, force=True)

    def close(self) -> None:
        if self._url is not None:
            self._client.close()

    async def aclose(self) -> None:
        with self._lock:
            script = self._loops.pop(asyncio.get_running_loop(), None)
        if script is not None:
            await script.registered_client.aclose()

    # -- Redis -------------------------------------------------------------------------------

    def _call(self, amount: int, *, force: bool) -> float:
        if self._down_until > time.monotonic():
            return 0.0
        try:
            reply = self._take(keys=[self.key], args=[self.capacity, amount, "1" if force else "0"])
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return 0.0
        self._outage = False
        return float(reply)

    async def _call_async(self, amount: int, *, force: bool) -> float:
        if self._down_until > time.monotonic():
            return 0.0
        try:
            script = self._loop_script()
            args = [self.capacity, amount, "1" if force else "0"]
            reply = await script(keys=[self.key], args=args)
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return 0.0
        self._outage = False
        return float(reply)

    def _loop_script(self) -> Any:
        loop = asyncio.get_running_loop()
        with self._lock:
            script = self._loops.get(loop)
            if script is None:
                assert self._url is not None
                self._loops = {lp: s for lp, s in self._loops.items() if not lp.is_closed()}
                client = redis.asyncio.Redis.from_url(self._url, **TIMEOUTS)
                script = self._loops[loop] = client.register_script(_TAKE)
            return script

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            first, self._outage = not self._outage, True
            self._down_until = time.monotonic() + RETRY_AFTER
        if first:
            warnings.warn(
                f"cachewise: the shared rate limit's Redis failed ({type(exc).__name__}: {exc}); "
                f"calls go unpaced until it answers (asked again every {RETRY_AFTER:g} s)",
                CachewiseWarning,
                stacklevel=4,
            )
