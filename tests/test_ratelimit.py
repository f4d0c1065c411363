"""The input-tokens-per-minute bucket a fleet shares in Redis."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from cachewise.errors import CachewiseWarning
from conftest import REDIS_URL

redis = pytest.importorskip("redis")

from cachewise.ratelimit import RedisRateLimit, counted_input  # noqa: E402

PER_MINUTE = 600_000  # 10,000 a second


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    return redis_prefix


def test_two_processes_share_one_bucket(prefix: str) -> None:
    """One limiter empties the bucket from 12 threads; the other then waits for the refill."""
    first = RedisRateLimit(REDIS_URL, tokens_per_minute=PER_MINUTE, prefix=prefix)
    second = RedisRateLimit(REDIS_URL, tokens_per_minute=PER_MINUTE, prefix=prefix)
    waits: list[float] = []
    threads = [
        threading.Thread(target=lambda: waits.append(first.acquire(PER_MINUTE // 12)))
        for _ in range(12)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(waits) < 0.5  # a full bucket holds them all
    waited = second.acquire(5_000)  # half a second of refill
    assert 0.3 <= waited < 2.0
    first.close()
    second.close()


def test_settling_gives_back_what_the_api_did_not_count(prefix: str) -> None:
    limit = RedisRateLimit(REDIS_URL, tokens_per_minute=PER_MINUTE, prefix=prefix)
    limit.acquire(PER_MINUTE)  # the estimate took it all
    limit.settle(PER_MINUTE, 100_000)  # the call read most of it from the cache
    assert limit.acquire(450_000) < 0.2
    limit.close()


def test_cache_reads_do_not_count_toward_input_tokens() -> None:
    usage = {"input_tokens": 50, "cache_read_input_tokens": 9_000, "cache_creation_input_tokens": 7}
    assert counted_input(usage, "claude-sonnet-4-6") == 57


def test_a_wait_is_bounded(prefix: str) -> None:
    limit = RedisRateLimit(REDIS_URL, tokens_per_minute=6_000, prefix=prefix, max_wait=0.3)
    limit.acquire(6_000)
    waited = limit.acquire(3_000)  # 30 s of refill, but the bound is 0.3 s
    assert 0.25 <= waited < 1.5
    limit.close()


def test_async_tasks_share_the_bucket(prefix: str) -> None:
    limit = RedisRateLimit(REDIS_URL, tokens_per_minute=PER_MINUTE, prefix=prefix)

    async def main() -> list[float]:
        waits = await asyncio.gather(*(limit.acquire_async(PER_MINUTE // 4) for _ in range(4)))
        await limit.settle_async(PER_MINUTE // 4, 0)
        waits.append(await limit.acquire_async(PER_MINUTE // 4))
        later = await limit.acquire_async(5_000)
        await limit.aclose()
        return [*waits, later]

    started = time.monotonic()
    waits = asyncio.run(main())
    assert max(waits[:5]) < 0.5 and 0.3 <= waits[5] < 2.0
    assert time.monotonic() - started < 5


def test_an_unreachable_redis_paces_nothing_and_warns_once() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    limit = RedisRateLimit(f"redis://127.0.0.1:{port}/0", tokens_per_minute=10)
    with pytest.warns(CachewiseWarning, match="unpaced"):
        assert limit.acquire(1_000) < 1.0
    limit.settle(1_000, 10)  # resting: no second warning (warnings are errors here)
    assert limit.acquire(1_000) < 0.1
