"""Requests per second the emulator serves, cached and uncached, on this machine.

The emulator runs with no simulated latency (time to first byte 0, instant output) so that the
numbers measure the emulator itself: HTTP, parsing, token counting, the engine, the reply. Clients
are the official SDK, in threads. Uncached calls carry a fresh ~8,000-token system prompt each, so
they pay for counting its tokens (ctok); cached calls repeat the prompt, whose counts are memoized.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from cachewise.testing import Emulator

WORDS = [
    "cache",
    "prefix",
    "token",
    "window",
    "breakpoint",
    "system",
    "tool",
    "message",
    "engine",
    "ledger",
    "worker",
    "scout",
    "batch",
    "lookback",
    "entry",
    "expiry",
    "refresh",
    "budget",
    "invoice",
    "harbor",
    "lantern",
    "meadow",
    "orchard",
]


def prompt(salt: int, words: int = 6000) -> str:
    return f"Context {salt}. " + " ".join(WORDS[(i * 7 + salt) % len(WORDS)] for i in range(words))


def drive(
    emu: Emulator, make: Callable[[int], dict[str, Any]], n: int, threads: int
) -> dict[str, float]:
    client = emu.client(max_retries=0)
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(n))

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t0 = time.perf_counter()
            client.messages.create(**make(i))
            with lock:
                latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - start
    return {
        "requests": n,
        "threads": threads,
        "rps": n / wall,
        "median_ms": statistics.median(latencies) * 1000,
    }


def run() -> str:
    shared = prompt(0)
    cc = {"type": "ephemeral"}

    def cached(i: int) -> dict[str, Any]:
        return {
            "model": "claude-sonnet-4-6",
            "max_tokens": 50,
            "system": [{"type": "text", "text": shared, "cache_control": cc}],
            "messages": [{"role": "user", "content": f"Question {i}?"}],
        }

    def uncached(i: int) -> dict[str, Any]:
        return {
            "model": "claude-sonnet-4-6",
            "max_tokens": 50,
            "system": [{"type": "text", "text": prompt(1000 + i)}],
            "messages": [{"role": "user", "content": f"Question {i}?"}],
        }

    rows = []
    with Emulator(clock="real") as emu:
        emu.client().messages.create(**cached(-1))  # warm the cache and the tokenizer
        for threads in (1, 8):
            rows.append(("cached (read ~8k tokens)", drive(emu, cached, 300, threads)))
            rows.append(
                (
                    "uncached (new ~8k-token prompt each)",
                    drive(emu, lambda i, t=threads: uncached(i + 1000 * t), 40, threads),
                )
            )
    out = [
        "## Emulator throughput",
        "",
        "`python bench/emulator_rps.py`: the official SDK in threads against the emulator on "
        "loopback, no simulated latency (so this measures the emulator itself).",
        "",
        "| calls | client threads | requests | requests/s | median latency |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows:
        out.append(
            f"| {name} | {r['threads']} | {r['requests']} | {r['rps']:.1f} | "
            f"{r['median_ms']:.1f} ms |"
        )
    ratio = rows[0][1]["rps"] / rows[1][1]["rps"]
    out += [
        "",
        f"Cached calls are {ratio:.0f}x faster to serve than uncached ones with one client "
        "thread: an uncached call counts ~8,000 new tokens with ctok (pure Python), a cached "
        "one finds every count in the memo. Server and clients share one process (the emulator of "
        "`cachewise.testing`, in a thread) on a 2-core machine, so more client threads add "
        "contention, not throughput.",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    print(run())
