"""parse + lint + plan of a 100-block, ~50k-token request, against `json.dumps` of the same request,
timed interleaved (each round times both, back to back).

The text is realistic (numbers, dates, invoice ids, amounts: `measure.prose`), and the request
carries a marker on its last block, as an agent loop's does. Token counts are memoized (each
distinct block is counted once per process) and so is the volatile scan (once per distinct
text), and a block met before is identified from its strings (`cachewise.identity`), so after the
first run these measure the analyzer itself: walking the request into positions, the engine's
checks and the planner. A first parse with a tokenizer of its own, which counts every token with
ctok, is reported too.
Targets: parse once + lint + plan at most 3x json.dumps; lint(body) + plan(body), each parsing,
at most 4x.
"""

from __future__ import annotations

import json
import time
from typing import Any

from measure import interleave, prose

from cachewise import lint, parse_request, plan
from cachewise.tokens import CtokTokenizer

CC = {"type": "ephemeral"}


def big_request() -> dict[str, Any]:
    """An agent conversation: 8 tools, a system prompt, 100 message blocks (~50k tokens), the
    last block marked."""
    tools = [
        {
            "name": f"tool_{i}",
            "description": prose(60, i),
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        }
        for i in range(8)
    ]
    messages: list[dict[str, Any]] = [{"role": "user", "content": prose(3200, 1)}]
    for step in range(16):
        calls = [
            {
                "type": "tool_use",
                "id": f"c{step}_{i}",
                "name": f"tool_{i}",
                "input": {"q": f"INV-{step}{i}"},
            }
            for i in range(3)
        ]
        results = [
            {
                "type": "tool_result",
                "tool_use_id": f"c{step}_{i}",
                "content": prose(440, 100 * step + i),
            }
            for i in range(3)
        ]
        messages += [{"role": "assistant", "content": calls}, {"role": "user", "content": results}]
    messages[-1]["content"][-1]["cache_control"] = CC
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 1024,
        "tools": tools,
        "system": [{"type": "text", "text": prose(4000, 7)}],
        "messages": messages,
    }


def run() -> str:
    body = big_request()
    # The first parse counts every token with ctok: a tokenizer of its own, with no memo and no
    # count cache on disk to answer from (its vocabulary loaded before, as any process's is).
    CtokTokenizer().count("warm", "3.0")
    start = time.perf_counter()
    prompt = parse_request(body, tokenizer=CtokTokenizer())
    first = time.perf_counter() - start
    lint(parse_request(body))  # the process's own tokenizer counts it too, before the rounds
    plan(body)
    t = interleave(
        {
            "dumps": lambda: json.dumps(body),
            "parse": lambda: parse_request(body),
            "shared": lambda: (lambda p: (lint(p), plan(p)))(parse_request(body)),
            "separate": lambda: (lint(body), plan(body)),
        }
    )
    ms = {name: t.median(name) * 1e3 for name in t.sides}
    return "\n".join(
        [
            "## Analyzer speed",
            "",
            f"`python bench/analyzer_speed.py`: one request of {len(prompt.positions)} positions "
            f"and {prompt.total_tokens:,} tokens ({len(json.dumps(body)) / 1e3:,.0f} kB of JSON; "
            "text with numbers, dates, ids and amounts; a marker on the last block); 21 rounds, "
            "each timing every step back to back after a first parse that counts the tokens.",
            "",
            "| step | median | vs json.dumps (median of the rounds' ratios) |",
            "|---|---|---|",
            f"| `json.dumps` of the request | {ms['dumps']:.2f} ms | 1x |",
            f"| `parse_request` | {ms['parse']:.2f} ms | {t.ratio('parse', 'dumps'):.1f}x |",
            f"| parse once, then `lint` + `plan` of the Prompt | {ms['shared']:.2f} ms | "
            f"{t.ratio('shared', 'dumps'):.1f}x (target at most 3x) |",
            f"| `lint(body)` + `plan(body)`, each parsing | {ms['separate']:.2f} ms | "
            f"{t.ratio('separate', 'dumps'):.1f}x (target at most 4x) |",
            f"| the first parse, counting every token with ctok | {first * 1e3:,.0f} ms | |",
            "",
        ]
    )


if __name__ == "__main__":
    print(run())
