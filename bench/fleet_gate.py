"""What electing a scout costs: one acquire and release of a cold prefix (the scout's path) and
one acquire of a warm prefix, on the one-process gate and on the Redis gate (loopback Redis, its
threads' client and its asyncio client), interleaved, medians of 21 rounds of 200 operations.

    python bench/fleet_gate.py          # needs Redis at CACHEWISE_BENCH_REDIS or 127.0.0.1:6379
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from itertools import count
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from measure import interleave

from cachewise.fleet import RedisGate
from cachewise.gate import Gate, LocalGate

URL = os.environ.get("CACHEWISE_BENCH_REDIS", "redis://127.0.0.1:6379/0")
OPS = 200


def sides(name: str, gate: Gate) -> dict[str, object]:
    fresh = count()

    def cold() -> None:  # a prefix nobody holds: elected scout, then released warm
        for _ in range(OPS):
            key = (name, next(fresh))
            gate.release(gate.acquire(key, 300), ok=True)

    def warm() -> None:  # a prefix already warm: one look
        for _ in range(OPS):
            gate.acquire((name, "warm"), 300)

    gate.release(gate.acquire((name, "warm"), 300), ok=True)
    return {f"{name} cold": cold, f"{name} warm": warm}


def run() -> str:
    prefix = f"cachewise-bench:{uuid.uuid4().hex[:8]}:"
    redis_gate = RedisGate(URL, prefix=prefix)
    if redis_gate.acquire(("ping",), 1).role == "ungated":
        return f"## Fleet gate\n\nNo Redis at {URL}: not measured."
    loop = asyncio.new_event_loop()  # one loop for every round, as a proxy keeps one
    fresh = count()

    async def async_cold() -> None:
        for _ in range(OPS):
            ticket = await redis_gate.acquire_async(("async", next(fresh)), 300)
            await redis_gate.release_async(ticket, ok=True)

    work = {
        **sides("local", LocalGate()),
        **sides("redis", redis_gate),
        "redis async cold": lambda: loop.run_until_complete(async_cold()),
    }
    t = interleave(work, rounds=21)
    loop.run_until_complete(redis_gate.aclose())
    loop.close()
    _clean(redis_gate, prefix)
    us = {side: t.median(side) / OPS * 1e6 for side in work}
    rows = [
        "## Fleet gate",
        "",
        f"Per operation, medians of 21 interleaved rounds of {OPS} (Redis on loopback):",
        "",
        "| path | local | Redis | Redis async |",
        "|---|---|---|---|",
        f"| cold: acquire (scout) + release | {us['local cold']:,.1f} µs | "
        f"{us['redis cold']:,.0f} µs | {us['redis async cold']:,.0f} µs |",
        f"| warm: acquire | {us['local warm']:,.1f} µs | {us['redis warm']:,.0f} µs | — |",
    ]
    return "\n".join(rows)


def _clean(gate: RedisGate, prefix: str) -> None:
    client = gate._sync.client
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    gate.close()


if __name__ == "__main__":
    print(run())
