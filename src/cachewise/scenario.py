"""The scenario calculator behind `cachewise cost`: N calls over one shared context, run through
the engine on a virtual clock, with caching off, on with 5m, and on with 1h.

Nothing here is a closed formula. Each call is a prompt of two segments (the static context behind
one breakpoint, then text unique to the call), started on a schedule of workers and gaps, and
accounted by the engine, so expiry, concurrent cold writes and minimums apply exactly as they do
to real traffic.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from .body import TTL
from .catalog import Model, get_model
from .cost import cost
from .engine import Engine
from .request import Prompt
from .usage import Tally

__all__ = ["Latency", "Scenario", "ScenarioResult", "run_scenarios"]


@dataclass(frozen=True)
class Latency:
    """How long a call takes: first byte after `ttft_s` plus prefill of the uncached tokens;
    then output at `output_tokens_per_s`. Defaults are plausible, not measured."""

    ttft_s: float = 0.5
    prefill_s_per_1k: float = 0.02
    output_tokens_per_s: float = 60.0

    def first_byte(self, uncached_tokens: int) -> float:
        return self.ttft_s + self.prefill_s_per_1k * uncached_tokens / 1000

    def duration(self, uncached_tokens: int, output_tokens: int) -> float:
        return self.first_byte(uncached_tokens) + output_tokens / self.output_tokens_per_s


@dataclass(frozen=True)
class Scenario:
    """The workload: `calls` calls, each `static_tokens` shared then `dynamic_tokens` unique."""

    model: str
    calls: int
    static_tokens: int
    dynamic_tokens: int
    output_tokens: int = 0
    workers: int = 1
    gap_seconds: float = 0.0
    scout: bool = False
    batch: bool = False
    latency: Latency = field(default_factory=Latency)


@dataclass
class ScenarioResult(Tally):
    """One way of running the scenario: its calls summed, and how long they took."""

    name: str = ""
    wall_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "usage": self.usage.to_api(),
            "cost_usd": float(round(self.cost_usd, 6)),
            "writes": self.writes,
            "reads": self.reads,
            "wall_seconds": round(self.wall_seconds, 3),
        }


def run_scenarios(scenario: Scenario) -> list[ScenarioResult]:
    """The scenario with caching off, with a 5m breakpoint, and with a 1h breakpoint."""
    model = get_model(scenario.model)
    plans: list[tuple[str, TTL | None]] = [("off", None), ("5m", "5m"), ("1h", "1h")]
    return [_run(scenario, model, name, ttl) for name, ttl in plans]


def _run(s: Scenario, model: Model, name: str, ttl: TTL | None) -> ScenarioResult:
    engine = Engine()
    out = ScenarioResult(name=name)
    free_at = [0.0] * max(1, s.workers)
    heapq.heapify(free_at)
    released_at = 0.0
    for i in range(s.calls):
        worker_free = heapq.heappop(free_at)
        start = max(worker_free, i * s.gap_seconds, released_at if i else 0.0)
        prompt = Prompt.from_segments(
            model,
            [
                ("static", s.static_tokens, ttl),
                (f"dynamic-{i}", s.dynamic_tokens, None),
            ],
        )
        probe = engine.account(prompt, now=start, commit=False)
        uncached = probe.usage.input_tokens + probe.usage.cache_creation_input_tokens
        ready = start + s.latency.first_byte(uncached)
        acct = engine.account(prompt, now=start, ready_at=ready, output_tokens=s.output_tokens)
        usage = acct.usage
        out.add(usage)
        finish = start + s.latency.duration(
            usage.input_tokens + usage.cache_creation_input_tokens, s.output_tokens
        )
        out.wall_seconds = max(out.wall_seconds, finish)
        heapq.heappush(free_at, finish)
        if i == 0 and s.scout and ttl is not None:
            released_at = ready  # the rest wait for the scout's first byte
    out.cost_usd = cost(out.usage, model=model, batch=s.batch).total_usd
    return out
