"""`cachewise simulate`: replay a trace under every caching strategy, and against a lower bound.

The engine replays the trace on a virtual clock for each strategy (a request's entries become
readable `ttft_ms` after it starts); the cost model prices each request's usage. The `cachewise`
strategy also has the warm gate: a request that would race a pending write of its prefix waits
until that entry is readable, and the wait is reported.

The oracle is a documented lower bound, not an exact optimum: no placement of breakpoints, TTLs
or keep-alive reads can cost less. Each request pays input price for the tokens no earlier
request in its workspace and model shares, and read price for the longest shared prefix (when it
reaches the model's minimum); every prefix segment that is ever read pays, once, the difference
between the cheapest write (5m) and input. It ignores expiry, the lookback window and the
4-breakpoint budget, all of which can only add cost.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .catalog import catalog
from .cost import Usage, cost, normalize_usage
from .engine import Engine, first_cacheable, minimum_for
from .errors import InvalidRequest, UnknownModel
from .request import Prompt, parse_request, strip_markers
from .strategies import STRATEGIES, Strategy
from .trace import DEFAULT_TTFT_MS, SEQUENTIAL_GAP_S, Row, rows_from

__all__ = ["Outcome", "oracle_bound", "simulate"]

MTOK = Decimal(1_000_000)


@dataclass
class Outcome:
    """One strategy's replay of the trace."""

    name: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: Decimal = Decimal(0)
    writes: int = 0
    reads: int = 0
    wait_seconds: float = 0.0
    errors: int = 0
    keep_alives: int = 0
    ratio_to_oracle: float | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "usage": self.usage.to_api(),
            "cost_usd": float(self.cost_usd),
            "ratio_to_oracle": self.ratio_to_oracle,
            "writes": self.writes,
            "reads": self.reads,
            "wait_seconds": round(self.wait_seconds, 3),
            "errors": self.errors,
            "keep_alives": self.keep_alives,
            "note": self.note,
        }


def _timeline(rows: Sequence[Row]) -> list[tuple[float, Row]]:
    starts: list[float] = []
    for row in rows:
        starts.append(
            row.started_at
            if row.started_at is not None
            else (starts[-1] + SEQUENTIAL_GAP_S if starts else 0.0)
        )
    return sorted(zip(starts, rows, strict=True), key=lambda pair: pair[0])


def _body(row: Row, model: str | None) -> dict[str, Any]:
    return {**row.request, "model": model} if model else dict(row.request)


def _output(row: Row) -> int:
    return int((row.usage or {}).get("output_tokens") or 0)


def replay_strategy(
    rows: Sequence[Row],
    name: str,
    strategy: Strategy,
    *,
    model: str | None = None,
    gate: bool = False,
    keep_alive: bool = False,
) -> Outcome:
    """The trace replayed with each request as `strategy` would send it (with `gate`, the warm
    gate; with `keep_alive`, max_tokens: 0 reads that keep an entry alive through gaps no longer
    than the longest gap seen so far)."""
    engine = Engine()
    out = Outcome(name)
    seen: list[dict[str, Any]] = []
    alive = _KeepAlive(engine, out) if keep_alive else None
    for start, row in _timeline(rows):
        body = _body(row, model)
        sent = strategy(body, seen, start)
        seen.append({"started_at": start, "request": body})
        workspace = row.workspace or "default"
        ttft = (row.ttft_ms if row.ttft_ms is not None else DEFAULT_TTFT_MS) / 1000
        try:
            prompt = parse_request(sent)
            if alive is not None:
                alive.until(start)
            if gate:
                start = _after_pending_write(engine, prompt, start, workspace, out)
            acct = engine.account(
                prompt,
                now=start,
                workspace=workspace,
                ready_at=start + ttft,
                output_tokens=_output(row),
            )
            usage = normalize_usage(acct.usage())
        except (InvalidRequest, UnknownModel):
            out.errors += 1  # the API would reject it: priced as if sent with no caching
            try:
                prompt = parse_request(STRATEGIES["none"](body, []))
            except (InvalidRequest, UnknownModel):
                continue
            usage = Usage(input_tokens=prompt.total_tokens, output_tokens=_output(row))
        out.usage = out.usage + usage
        out.cost_usd += cost(usage, model=prompt.model).total_usd
        out.writes += usage.cache_creation_input_tokens > 0
        out.reads += usage.cache_read > 0
        if alive is not None and usage.cache_read + usage.cache_creation_input_tokens:
            alive.used(prompt, sent, start, workspace)
    return out


class _KeepAlive:
    """Keep-alive reads for the cachewise strategy: a `max_tokens: 0` request carrying only the
    first breakpoint, sent just before the entry would expire, for as long as the longest gap
    between uses seen so far says a next use may still come. Billed like any request."""

    MARGIN = 10.0

    def __init__(self, engine: Engine, out: Outcome) -> None:
        self.engine, self.out = engine, out
        self.last: dict[tuple[str, str], tuple[float, float, Prompt]] = {}
        self.longest_gap = 0.0

    def used(self, prompt: Prompt, sent: dict[str, Any], at: float, workspace: str) -> None:
        first = first_cacheable(prompt)
        if first is None:
            return
        key = (workspace, prompt.positions[first.position].prefix_hash)
        if key in self.last:
            self.longest_gap = max(self.longest_gap, at - self.last[key][0])
        body = _only_first_marker(sent, first.path)
        ttl = float(catalog().ttl_seconds[first.ttl])
        self.last[key] = (at, ttl, parse_request({**body, "max_tokens": 0}))

    def until(self, now: float) -> None:
        for key, (used_at, ttl, ping) in list(self.last.items()):
            t = used_at + ttl - self.MARGIN
            while t < now and t - used_at < self.longest_gap - self.MARGIN:
                acct = self.engine.account(ping, now=t, workspace=key[0], ready_at=t)
                usage = normalize_usage(acct.usage())
                self.out.usage = self.out.usage + usage
                self.out.cost_usd += cost(usage, model=ping.model).total_usd
                self.out.keep_alives += 1
                t += ttl - self.MARGIN


def _only_first_marker(body: dict[str, Any], path: str) -> dict[str, Any]:
    from .plan import _mark

    return _mark(strip_markers(body), path, "5m")


def _after_pending_write(
    engine: Engine, prompt: Prompt, start: float, workspace: str, out: Outcome
) -> float:
    """The warm gate: wait until a prefix being written by a request in flight is readable."""
    probe = engine.account(prompt, now=start, workspace=workspace, commit=False)
    ready = start
    for b in probe.breakpoints:
        if b.pending_at is None:
            continue
        position = prompt.positions[b.pending_at]
        for entry in engine.entries.values():
            if entry.workspace == workspace and entry.prefix_hash == position.prefix_hash:
                ready = max(ready, entry.readable_at)
    out.wait_seconds += ready - start
    return ready


def oracle_bound(rows: Sequence[Row], *, model: str | None = None) -> Outcome:
    """The lower bound described in the module docstring."""
    out = Outcome("oracle", note="lower bound (see `cachewise.simulate`): no strategy costs less")
    seen: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)  # hash -> position tokens
    read_segments: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    premium = Decimal(0)
    for _, row in _timeline(rows):
        try:
            prompt = parse_request(_body(row, model) | {"cache_control": None})
        except (InvalidRequest, UnknownModel):
            continue
        key = (row.workspace or "default", prompt.model.id)
        minimum, _ = minimum_for(prompt.model)
        shared_at = max(
            (p.index for p in prompt.positions if p.prefix_hash in seen[key]), default=None
        )
        shared = prompt.positions[shared_at].cumulative if shared_at is not None else 0
        if shared < minimum:
            shared, shared_at = 0, None
        if shared_at is not None:
            for p in prompt.positions[: shared_at + 1]:
                if p.prefix_hash not in read_segments[key]:
                    read_segments[key][p.prefix_hash] = p.tokens
                    prices = prompt.model.prices_for(prompt.total_tokens)
                    if prices is not None:
                        premium += Decimal(p.tokens) * (prices.cache_write_5m - prices.input) / MTOK
        for p in prompt.positions:
            seen[key].setdefault(p.prefix_hash, p.tokens)
        usage = Usage(
            input_tokens=prompt.total_tokens - shared, cache_read=shared, output_tokens=_output(row)
        )
        out.usage = out.usage + usage
        out.cost_usd += cost(usage, model=prompt.model).total_usd
        out.reads += shared > 0
    out.cost_usd += premium
    out.writes = sum(len(v) > 0 for v in read_segments.values())  # at least one per shared tree
    return out


def simulate(
    rows: Iterable[Mapping[str, Any] | Row],
    strategies: Sequence[str] | None = None,
    *,
    model: str | None = None,
) -> list[Outcome]:
    """Every strategy's cost on the trace, and the oracle's, sorted by cost."""
    rows = rows_from(rows)
    names = list(strategies or STRATEGIES)
    unknown = [n for n in names if n not in STRATEGIES and n != "oracle"]
    if unknown:
        from .errors import InputError

        raise InputError(
            f"unknown strategy {unknown[0]!r}; known: {', '.join(STRATEGIES)}", field="--strategy"
        )
    oracle = oracle_bound(rows, model=model)
    outcomes = [
        replay_strategy(
            rows, n, STRATEGIES[n], model=model, gate=n == "cachewise", keep_alive=n == "cachewise"
        )
        for n in names
        if n != "oracle"
    ]
    outcomes.append(oracle)
    for o in outcomes:
        o.ratio_to_oracle = (
            round(float(o.cost_usd / oracle.cost_usd), 4) if oracle.cost_usd else None
        )
    return sorted(outcomes, key=lambda o: o.cost_usd)
