"""`cachewise simulate`: replay a trace under every caching strategy, and against a lower bound.

The engine replays the trace on a virtual clock for each strategy (a request's entries become
readable `ttft_ms` after it starts); the cost model prices each request's usage. The `cachewise`
strategy also has the warm gate: a request that would race a pending write of its prefix waits
until that entry is readable, and the wait is reported.

The oracle (`cachewise.oracle`) is a documented lower bound: per segment of the prompts, the
cheapest sequence of input, writes, reads and keep-alive reads the caching rules allow, with full
knowledge of the trace. No strategy can cost less.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .catalog import catalog, get_model
from .cost import cost
from .engine import Account, Engine, billed_output, first_cacheable, unmarked
from .errors import InputError, InvalidRequest, UnknownModel
from .keepalive import KeepAlivePolicy, ping
from .oracle import oracle
from .rent import five_minute_cap, hourly_cap
from .request import Prompt, parse_request
from .strategies import STRATEGIES, Strategy
from .trace import Row, check_models, rows_from, timeline
from .usage import Tally, Usage

__all__ = ["Outcome", "oracle_bound", "simulate"]


@dataclass
class Outcome(Tally):
    """One strategy's replay of the trace: its requests summed (a rejected one counts as an error,
    billed as its retry without markers), its keep-alive reads and warm-gate waits."""

    name: str = ""
    wait_seconds: float = 0.0
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


def _body(row: Row, model: str | None) -> dict[str, Any]:
    return {**row.request, "model": model} if model else dict(row.request)


def _as_replayed(row: Row, model: str | None) -> bool:
    """Whether the row's parsed request is the one replayed (the same model)."""
    return row.prompt is not None and (model is None or row.prompt.model.id == get_model(model).id)


def _parsed(body: dict[str, Any]) -> Prompt | None:
    try:
        return parse_request(body)
    except (InvalidRequest, UnknownModel):
        return None


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
    gate; with `keep_alive`, the keep-alive reads `KeepAlivePolicy` sends, also after the last
    row: an online strategy does not know the trace has ended)."""
    engine = Engine()
    out = Outcome(name=name)
    seen: list[Row] = []
    alive = _KeepAlive(engine, out) if keep_alive else None
    for start, ready, row in timeline(rows):
        first_byte = ready - start  # held by the gate, it still answers as quickly
        body = _body(row, model)
        workspace = row.workspace or "default"
        acct: Account | None = None
        sent = body
        try:
            sent = strategy(body, seen, start)
            # A strategy changes markers only: its request is the row's, marked its way.
            base = row.prompt if _as_replayed(row, model) else None
            prompt = base.remarked(sent) if base is not None else parse_request(sent)
            if gate:
                start = _after_pending_write(engine, prompt, start, workspace, out)
            if alive is not None:  # after the gate: a ping must not come after a later request
                alive.until(start)
            acct = engine.account(
                prompt,
                now=start,
                workspace=workspace,
                ready_at=start + first_byte,
                output_tokens=row.output_tokens,
            )
            usage = acct.usage
            rejected = False
        except (InvalidRequest, UnknownModel, InputError):
            # The API bills a rejected request nothing. If only the strategy's markers broke
            # it, the caller resends it without them: that retry is what it costs.
            rejected = True
            bare = unmarked(body)
            if bare is None:
                out.add(error=True)
                continue  # nor does it reach the cache, or the history later requests see
            prompt = bare
            output = billed_output(prompt, row.output_tokens)
            usage = Usage(input_tokens=prompt.total_tokens, output_tokens=output)
        price = cost(usage, model=prompt.model, speed=prompt.speed).total_usd
        out.add(usage, price, error=rejected)
        if alive is not None:
            alive.used(prompt, sent, start, workspace, acct)
        parsed = row.prompt if _as_replayed(row, model) else _parsed(body)
        if parsed is not None:  # the planner reads its history parsed
            seen.append(Row(body, started_at=start, prompt=parsed))
    if alive is not None:
        alive.until(math.inf)
    return out


class _KeepAlive:
    """Keep-alive reads for the cachewise strategy, as `KeepAlivePolicy` decides them: a
    `max_tokens: 0` request carrying only the first breakpoint, billed like any request. The
    entry's TTL is what the client can know: its marker when the response wrote it, else what
    was learned before."""

    def __init__(self, engine: Engine, out: Outcome) -> None:
        self.engine, self.out = engine, out
        self.policy: KeepAlivePolicy | None = None
        self.pings: dict[tuple[str, str], Prompt] = {}
        self.ttls: dict[tuple[str, str], float] = {}
        self.last_use: dict[tuple[str, str], float] = {}
        self.long_idle: set[tuple[str, str]] = set()  # prefixes idle past an hourly keep-alive
        self.spent: dict[tuple[str, str], int] = {}  # per prefix: 5m keep-alives past the first

    def used(
        self, prompt: Prompt, sent: dict[str, Any], at: float, workspace: str, acct: Account | None
    ) -> None:
        if self.policy is None:
            prices = prompt.model.prices_for(prompt.total_tokens)
            worth = prices.cache_read / (prices.cache_write_5m - prices.cache_read) if prices else 0
            self.policy = KeepAlivePolicy(threshold=float(worth))
        first = first_cacheable(prompt)
        taken = acct is not None and acct.usage.prompt_tokens > acct.usage.input_tokens
        if first is None or acct is None or not taken:
            self.policy.sent(workspace, at)
            return
        position = prompt.positions[first.position]
        key = (workspace, position.prefix_hash)
        outcome = next(
            b.outcome for b in acct.breakpoints if b.breakpoint.position == first.position
        )
        if outcome == "wrote" or key not in self.ttls:
            self.ttls[key] = float(catalog().ttl_seconds[first.ttl])
        self.pings[key] = parse_request(ping(sent, first.path, first.ttl))
        # Ski rental (`cachewise.rent`; docs/simulate.md, "How far from the best"): a 5m entry
        # gets one keep-alive per idle period on the evidence, more only from a budget over its
        # prefix's life; a 1h entry gets hourly ones until they would cost an input, on the
        # evidence until its prefix has been idle past an hour once, whatever it says after.
        hour = float(catalog().ttl_seconds["1h"])
        last = self.last_use.get(key)
        if last is not None and at - last > hour - self.policy.margin:
            self.long_idle.add(key)
        self.last_use[key] = at
        prices = prompt.model.prices_for(position.cumulative)
        budget, rent = 0, False
        if prices is not None and self.ttls[key] < hour:
            cap = five_minute_cap(prices)
            budget = min(cap, 1 + max(0, cap - self.spent.get(key, 0)))
        elif prices is not None:
            budget, rent = hourly_cap(prices), key in self.long_idle
        self.policy.used(
            key,
            at=at,
            ttl=self.ttls[key],
            tail=position.digest,
            digests=frozenset(p.digest for p in prompt.positions),
            budget=budget,
            rent=rent,
        )

    def until(self, now: float) -> None:
        if self.policy is None:
            return
        for key, t in self.policy.due(now):
            ping = self.pings[key]
            acct = self.engine.account(ping, now=t, workspace=key[0], ready_at=t)
            usage = acct.usage  # billed, but not one of the trace's requests: no call counted
            self.out.usage = self.out.usage + usage
            self.out.cost_usd += cost(usage, model=ping.model, speed=ping.speed).total_usd
            self.out.keep_alives += 1
            kept = self.policy.prefixes.get(key)
            if self.ttls[key] < catalog().ttl_seconds["1h"] and kept and kept.pings > 1:
                self.spent[key] = self.spent.get(key, 0) + 1


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
    """The oracle's lower bound (`cachewise.oracle`) as an outcome."""
    bound = oracle(rows, model=model)
    return Outcome(
        name="oracle",
        usage=bound.usage,
        cost_usd=bound.cost_usd,
        writes=bound.writes,
        reads=bound.reads,
        keep_alives=bound.keep_alives,
        note="lower bound (see `cachewise.oracle`): no strategy costs less",
    )


def simulate(
    rows: Iterable[Mapping[str, Any] | Row],
    strategies: Sequence[str] | None = None,
    *,
    model: str | None = None,
) -> list[Outcome]:
    """Every strategy's cost on the trace, and the oracle's, sorted by cost.

    Raises:
        InputError: a strategy, or a row's model, is unknown (before anything is replayed).
        UnknownModel: `model` is not in the catalog.
    """
    given = rows_from(rows)
    check_models(given, model)
    names = list(strategies or STRATEGIES)
    unknown = [n for n in names if n not in STRATEGIES and n != "oracle"]
    if unknown:
        from .errors import InputError

        raise InputError(
            f"unknown strategy {unknown[0]!r}; known: {', '.join(STRATEGIES)}", field="--strategy"
        )
    # Each request parsed once (as replayed: with `model`), for every strategy's history; a row
    # the caller parsed already is not parsed again.
    parsed = [
        r if _as_replayed(r, model) else replace(r, prompt=_parsed(_body(r, model))) for r in given
    ]
    oracle = oracle_bound(parsed, model=model)
    outcomes = [
        replay_strategy(
            parsed,
            n,
            STRATEGIES[n],
            model=model,
            gate=n == "cachewise",
            keep_alive=n == "cachewise",
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
