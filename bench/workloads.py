"""Seeded trace generators for `cachewise simulate`: six workloads that real traffic looks like.

Each takes a seed (bench/results.md shows seed 0 in full, and the spread over seeds 0-9) and
returns trace rows `{"started_at", "ttft_ms", "request"}` with our own texts.
"""

from __future__ import annotations

import random
from typing import Any

MODEL = "claude-sonnet-4-6"
VOCAB = (
    "account ledger invoice receipt export report budget vendor payroll tax period close "
    "review adjust accrue reconcile balance statement journal entry audit policy schedule "
    "approve reject refund credit debit transfer currency rate fee"
).split()


def prose(words: int, seed: int) -> str:
    r = random.Random(seed)
    return " ".join(r.choice(VOCAB) for _ in range(words)) + "."


def _req(
    system: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 400,
        "system": system,
        "messages": messages,
    }
    if tools:
        body["tools"] = tools
    return body


def seed_batch(seed: int = 0) -> list[dict[str, Any]]:
    """50 calls over an ~8k-token context, 4 workers in bursts."""
    context = prose(6000, 1 + 1000 * seed)
    return [
        {
            "started_at": (i // 4) * 1.0,
            "ttft_ms": 800,
            "request": _req(
                context,
                [{"role": "user", "content": f"Question {i}: {prose(25, i + 1000 * seed)}"}],
            ),
        }
        for i in range(50)
    ]


def agent_loop(seed: int = 0) -> list[dict[str, Any]]:
    """32 turns with tools and a growing history; every fifth turn adds 40 blocks."""
    tools = [
        {
            "name": f"tool_{k}",
            "description": prose(60, 100 + k),
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        }
        for k in range(6)
    ]
    system = prose(1500, 2 + 1000 * seed)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Close the books for October."}]
    r = random.Random(3 + 1000 * seed)
    rows, t = [], 0.0
    for turn in range(32):
        rows.append(
            {
                "started_at": t,
                "ttft_ms": 1500,
                "request": _req(system, [dict(m) for m in messages], tools),
            }
        )
        n = 20 if turn % 5 == 4 else 2
        calls = [
            {
                "type": "tool_use",
                "id": f"t{turn}_{i}",
                "name": f"tool_{i % 6}",
                "input": {"q": prose(4, turn * 50 + i)},
            }
            for i in range(n)
        ]
        results = [
            {
                "type": "tool_result",
                "tool_use_id": f"t{turn}_{i}",
                "content": prose(120, turn * 77 + i),
            }
            for i in range(n)
        ]
        messages += [{"role": "assistant", "content": calls}, {"role": "user", "content": results}]
        t += r.uniform(4, 25)
    return rows


def bursty_qa(seed: int = 0) -> list[dict[str, Any]]:
    """Questions about a 40k-token document, gaps from seconds to 40 minutes."""
    document = prose(30000, 4 + 1000 * seed)
    r = random.Random(5 + 1000 * seed)
    rows, t = [], 0.0
    for i in range(40):
        rows.append(
            {
                "started_at": t,
                "ttft_ms": 2500,
                "request": _req(
                    "Answer from the document.",
                    [
                        {
                            "role": "user",
                            "content": [
                                {"type": "text", "text": document},
                                {"type": "text", "text": f"Q{i}: {prose(20, 900 + i)}"},
                            ],
                        }
                    ],
                ),
            }
        )
        t += r.choice([2, 5, 20, 60, 240, 420, 900, 1800, 2400])
    return rows


def fan_out(seed: int = 0) -> list[dict[str, Any]]:
    """32 requests at the same instant over a 10k-token prefix."""
    context = prose(7500, 6 + 1000 * seed)
    return [
        {
            "started_at": 0.0,
            "ttft_ms": 1200,
            "request": _req(
                context,
                [{"role": "user", "content": f"Part {i}: {prose(30, 300 + i + 1000 * seed)}"}],
            ),
        }
        for i in range(32)
    ]


def multi_tenant(seed: int = 0) -> list[dict[str, Any]]:
    """Four tenants' system prompts, interleaved, gaps around the 5-minute TTL."""
    prompts = [prose(2500, 10 + k + 1000 * seed) for k in range(4)]
    r = random.Random(7 + 1000 * seed)
    rows, t = [], 0.0
    for i in range(80):
        tenant = r.randrange(4)
        rows.append(
            {
                "started_at": t,
                "ttft_ms": 900,
                "request": _req(
                    prompts[tenant],
                    [{"role": "user", "content": f"Ticket {i}: {prose(30, 500 + i)}"}],
                ),
            }
        )
        t += r.uniform(30, 120)
    return rows


def timestamp_system(seed: int = 0) -> list[dict[str, Any]]:
    """A system prompt that starts with the current time, then 6k tokens of static rules."""
    rules = prose(4500, 8 + 1000 * seed)
    return [
        {
            "started_at": i * 20.0,
            "ttft_ms": 900,
            "request": _req(
                [
                    {"type": "text", "text": f"Current time: 2026-11-22T10:{i // 3:02d}:00Z."},
                    {"type": "text", "text": rules},
                ],
                [{"role": "user", "content": f"Request {i}: {prose(20, 700 + i)}"}],
            ),
        }
        for i in range(40)
    ]


WORKLOADS = {
    "seed batch": seed_batch,
    "agent loop": agent_loop,
    "bursty document Q&A": bursty_qa,
    "32-way fan-out": fan_out,
    "multi-tenant": multi_tenant,
    "timestamp in the system prompt": timestamp_system,
}
TARGETS = {
    "seed batch": 1.02,
    "32-way fan-out": 1.02,
    "agent loop": 1.05,
    "multi-tenant": 1.25,
    "bursty document Q&A": 1.30,
}


def sparse(seed: int = 0) -> list[dict[str, Any]]:
    """Quiet traffic: one or two system prompts (2k-6k words), 3-10 requests, each gap drawn from
    seconds, around the 5m TTL, or up to an hour; on half the traces the client marks its system
    prompt (5m), as a support bot or a cron job would."""
    r = random.Random(11 + 1000 * seed)
    marked = r.random() < 0.5
    prompts = [
        prose(r.randrange(2000, 6000), 20 + k + 1000 * seed) for k in range(r.choice([1, 2]))
    ]
    rows, t = [], 0.0
    for i in range(r.randrange(3, 11)):
        system: dict[str, Any] = {"type": "text", "text": r.choice(prompts)}
        if marked:
            system["cache_control"] = {"type": "ephemeral"}
        rows.append(
            {
                "started_at": round(t, 1),
                "ttft_ms": 900,
                "usage": {"input_tokens": 0, "output_tokens": r.randrange(50, 400)},
                "request": _req([system], [{"role": "user", "content": f"Q{i}: {prose(15, i)}"}]),
            }
        )
        t += r.choice([r.uniform(2, 60), r.uniform(240, 420), r.uniform(420, 3600)])
    return rows


def support_assistant() -> list[dict[str, Any]]:
    """Five questions to a support assistant over its ~28 kB system prompt, which the client
    marks (5m): gaps of 20 s, 25 s, 455 s and 20 s."""
    system = {"type": "text", "text": prose(4000, 42), "cache_control": {"type": "ephemeral"}}
    return [
        {
            "started_at": t,
            "ttft_ms": 900,
            "usage": {"input_tokens": 0, "output_tokens": 300},
            "request": _req(
                [system], [{"role": "user", "content": f"Customer {i}: {prose(12, 60 + i)}"}]
            ),
        }
        for i, t in enumerate([0.0, 20.0, 45.0, 500.0, 520.0])
    ]
