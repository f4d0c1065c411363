"""lint + plan time for a 100-block, ~50k-token request, against `json.dumps` of the same request.

Token counts are memoized (each distinct block is counted once per process), so the first run
warms the memo and the timed runs measure the analyzer itself: parsing into positions, hashing,
the engine's checks, the volatile scan and the planner. Target: at most 3x json.dumps.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from emulator_rps import WORDS  # one word list for every benchmark text

from cachewise.lint import lint
from cachewise.plan import plan


def words(n: int, salt: int) -> str:
    return " ".join(WORDS[(i * 7 + salt) % len(WORDS)] for i in range(n))


def big_request() -> dict[str, Any]:
    """An agent conversation: tools, a system prompt, and 100 message blocks (~50k tokens)."""
    tools = [
        {
            "name": f"tool_{i}",
            "description": words(60, i),
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        }
        for i in range(8)
    ]
    messages: list[dict[str, Any]] = [{"role": "user", "content": words(4000, 1)}]
    for step in range(16):
        calls = [
            {
                "type": "tool_use",
                "id": f"c{step}_{i}",
                "name": f"tool_{i}",
                "input": {"q": words(5, step + i)},
            }
            for i in range(3)
        ]
        results = [
            {
                "type": "tool_result",
                "tool_use_id": f"c{step}_{i}",
                "content": words(560, 100 * step + i),
            }
            for i in range(3)
        ]
        messages += [{"role": "assistant", "content": calls}, {"role": "user", "content": results}]
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 1024,
        "tools": tools,
        "system": [{"type": "text", "text": words(5000, 7)}],
        "messages": messages,
    }


def median_seconds(fn: Callable[[], object], repeat: int = 15) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run() -> str:
    from cachewise import parse_request

    body = big_request()
    t_first = time.perf_counter()
    prompt = parse_request(body)
    lint(prompt)
    plan(prompt)
    first = time.perf_counter() - t_first
    dumps = median_seconds(lambda: json.dumps(body))
    parse_s = median_seconds(lambda: parse_request(body))
    shared = median_seconds(lambda: (lambda p: (lint(p), plan(p)))(parse_request(body)))
    separate = median_seconds(lambda: (lint(body), plan(body)))
    return "\n".join(
        [
            "## Analyzer speed",
            "",
            f"`python bench/analyzer_speed.py`: one request of {len(prompt.positions)} positions "
            f"and {prompt.total_tokens:,} tokens ({len(json.dumps(body)) / 1e3:,.0f} kB of JSON); "
            "medians of 15 runs after the first, which counts the tokens (the memo keeps them).",
            "",
            "| step | median | vs json.dumps |",
            "|---|---|---|",
            f"| `json.dumps` of the request | {dumps * 1e3:.2f} ms | 1x |",
            f"| `parse_request` | {parse_s * 1e3:.2f} ms | {parse_s / dumps:.1f}x |",
            f"| parse once, then `lint` + `plan` of the Prompt | {shared * 1e3:.2f} ms | "
            f"{shared / dumps:.1f}x (target at most 3x) |",
            f"| `lint(body)` + `plan(body)`, each parsing | {separate * 1e3:.2f} ms | "
            f"{separate / dumps:.1f}x |",
            f"| the first run, counting every token with ctok | {first * 1e3:,.0f} ms | |",
            "",
        ]
    )


if __name__ == "__main__":
    print(run())
