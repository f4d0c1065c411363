"""The scenario calculator behind `cachewise cost`: N calls over one shared context, run through
the engine on a virtual clock, with caching off, on with 5m, and on with 1h.

Nothing here is a closed formula. Each call is a prompt of two segments (the static context behind
one breakpoint, then text unique to the call), started on a schedule of workers and gaps, and
accounted by the engine, so expiry, concurrent cold writes and minimums apply exactly as they do
to real traffic.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .body import TTL
from .catalog import Model, get_model
from .cost import cost
from .engine import Engine
from .request import Prompt
from .usage import Tally

__all__ = ["Latency", "Scenario", "ScenarioResult", "run_scenarios"]

_PROGRESS_EVERY = 1_000  # calls between two progress reports: often enough to see, cheap


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
    """One way of running the scenario: its calls summed, how long they took, and how many
    started before the first response began (none of those can read what the first one writes;
    that race is what a scout avoids)."""

    name: str = ""
    wall_seconds: float = 0.0
    before_first_byte: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "usage": self.usage.to_api(),
            "cost_usd": float(round(self.cost_usd, 6)),
            "writes": self.writes,
            "reads": self.reads,
            "wall_seconds": round(self.wall_seconds, 3),
        }


def run_scenarios(
    scenario: Scenario, progress: Callable[[float], None] | None = None
) -> list[ScenarioResult]:
    """The scenario with caching off, with a 5m breakpoint, and with a 1h breakpoint.

    `progress`, when given, hears the fraction of the work done (every 1,000 calls, and 1.0 at
    the end): every call runs through the engine, and a big scenario takes a while.
    """
    model = get_model(scenario.model)
    plans: list[tuple[str, TTL | None]] = [("off", None), ("5m", "5m"), ("1h", "1h")]
    return [
        _run(scenario, model, name, ttl, progress and partial(_overall, progress, n, len(plans)))
        for n, (name, ttl) in enumerate(plans)
    ]


def _overall(progress: Callable[[float], None], run: int, runs: int, part: float) -> None:
    progress((run + part) / runs)


def _run(
    s: Scenario,
    model: Model,
    name: str,
    ttl: TTL | None,
    progress: Callable[[float], None] | None,
) -> ScenarioResult:
    engine = Engine()
    out = ScenarioResult(name=name)
    free_at = [0.0] * max(1, min(s.workers, s.calls))  # workers beyond the calls would idle
    heapq.heapify(free_at)
    released_at = 0.0
    # Every call is the same prompt: the engine looks up nothing after the one breakpoint, so the
    # text unique to each call (its second segment) changes no answer, and one parse serves all.
    prompt = Prompt.from_segments(
        model, [("static", s.static_tokens, ttl), ("dynamic", s.dynamic_tokens, None)]
    )
    # With one breakpoint a call reads it or writes it, never both. The engine needs the first
    # byte only for a write (when the entry turns readable), and a write reads nothing: its first
    # byte is the cold one, known without asking the engine first.
    cold_first_byte = s.latency.first_byte(prompt.total_tokens)
    for i in range(s.calls):
        if progress is not None and i % _PROGRESS_EVERY == 0:
            progress(i / s.calls)
        worker_free = heapq.heappop(free_at)
        start = max(worker_free, i * s.gap_seconds, released_at if i else 0.0)
        out.before_first_byte += start < cold_first_byte  # the first call starts at 0, cold
        acct = engine.account(
            prompt, now=start, ready_at=start + cold_first_byte, output_tokens=s.output_tokens
        )
        usage = acct.usage
        out.add(usage)
        uncached = usage.input_tokens + usage.cache_creation_input_tokens
        finish = start + s.latency.duration(uncached, s.output_tokens)
        out.wall_seconds = max(out.wall_seconds, finish)
        heapq.heappush(free_at, finish)
        if i == 0 and s.scout and ttl is not None:
            released_at = start + cold_first_byte  # the rest wait for the scout's first byte
    out.cost_usd = cost(out.usage, model=model, batch=s.batch).total_usd
    if progress is not None:
        progress(1.0)
    return out
