"""The oracle of `cachewise simulate`: a lower bound on what any caching of a trace can cost.

Cut every prompt into segments: the tokens of one position, named by the hash of the prefix that
ends there, per workspace and model. A segment's *uses* are the requests that contain it. Whatever
breakpoints, TTLs and extra requests (keep-alives, pre-warms) a strategy sends, each use pays for
the segment's tokens one of four prices, and the engine's rules say which are possible:

- input, or a 5m or 1h write;
- a read, only when an entry holding the segment is alive, and only when the request shares at
  least the model's minimum with earlier requests;
- an entry stays alive only if a request reads it at least once per TTL: a later use, or a
  keep-alive read in between, which pays the read price for the segment too.

A strategy sends each request at its start in the trace, or later only while a warm gate holds
it for the pending write of an earlier request; so gaps are measured from the latest an earlier
request can be held (until every earlier write in its workspace and model is readable).

For each segment this is a small problem solved exactly by dynamic programming over its uses,
with three states (no entry, a 5m entry, a 1h entry); the bound is the sum over segments, plus
the framing after the last block and the output (none for a pre-warm), which no strategy changes.

It is a bound, not always reachable. It lets each segment choose on its own (a real request has
four breakpoints and one read point), ignores the lookback window, and lets an entry be read the
moment its write starts. It prices a segment at the cheapest band a request holding it can have
(a ping that stops at the segment is smaller than the request), and a tools segment of a fast
request at standard speed (a standard request shares the tools level). And it grants moves that
need hindsight or other tokens to pay: a segment joins a 1h entry for the price of a read where
its request has later blocks another request shares (the 1h write is paid by those blocks); and
a keep-alive sent before a 5m entry expires may read it and write a 1h entry one block longer,
ending in the next use's next block, which that use then reads (one read per hour of gap, not
one per five minutes). A hypothesis test and hand-made strategies with such pings check that no
strategy goes below it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import astuple, dataclass
from decimal import Decimal
from typing import Any

from .catalog import Prices, catalog, get_model
from .engine import alive, billed_output, minimum_for, unmarked, violations
from .request import Position, Prompt
from .trace import Row, timeline
from .usage import Usage

__all__ = ["oracle"]

MTOK = Decimal(1_000_000)
ZERO = Decimal(0)
NONE, FIVE, HOUR = 0, 1, 2
# Actions a use takes for a segment, and the usage field each is billed under.
INPUT, WRITE_5M, WRITE_1H, READ = "input", "write_5m", "write_1h", "read"


@dataclass(frozen=True, slots=True)  # one per request and segment: tens of thousands
class _Use:
    request: int  # index into the time-ordered requests of the trace
    at: float  # its start in the trace: the earliest it can be sent
    latest: float  # the latest: a warm gate may hold it for earlier requests' pending writes
    prices: Prices
    can_read: bool  # seen before, in a request sharing at least the minimum
    joins_1h: bool  # may join a 1h entry that later tokens of this request pay for
    extends: bool  # the request has blocks after this segment (a longer entry can end there)


@dataclass
class _Plan:
    """The cheapest way through one segment's uses, per token (prices are per million)."""

    per_mtok: Decimal
    actions: list[str]  # one per use
    keep_alives: int


def _renewals(since: float, at: float, ttl: float) -> int:
    """How many reads in between keep an entry renewed at `since` alive until `at`, by the
    engine's own test of expiry, so that floating point rounds alike."""
    k = int(max(0.0, at - since) // ttl)
    while k > 0 and alive(since + k * ttl, at):
        k -= 1
    return k


def _moves(
    use: _Use, state: int, since: float, ka_price: Decimal, ttl: dict[int, float]
) -> Iterator[tuple[int, Decimal, str, int]]:
    """(next state, price, action, keep-alive reads) for one use, from `state`, the entry last
    renewed at `since`."""
    p = use.prices
    yield NONE, p.input, INPUT, 0
    yield FIVE, p.cache_write_5m, WRITE_5M, 0
    yield HOUR, p.cache_write_1h, WRITE_1H, 0
    if state == NONE:
        return
    if not use.can_read:  # relaxed: the entry lives on as if this use had renewed it
        yield state, p.input, INPUT, 0
        return
    kas = _renewals(since, use.at, ttl[state])
    yield state, kas * ka_price + p.cache_read, READ, kas
    if state == FIVE and use.joins_1h:
        yield HOUR, kas * ka_price + p.cache_read, READ, kas
    if state == FIVE and use.extends and kas:
        # Or, before the 5m entry expires, a keep-alive that reads it and writes a 1h entry a
        # few tokens longer, ending in this use's next block, which this use then reads. The
        # segment keeps that hour if later requests share the longer prefix. If not, it is
        # still not lost: the same live 5m entry could have fed more pings, each writing a 1h
        # entry into a later use, so the bound goes on as if a 5m entry were renewed here.
        pings = 1 + _renewals(since + ttl[FIVE], use.at, ttl[HOUR])
        after = HOUR if use.joins_1h else FIVE
        yield after, pings * ka_price + p.cache_read, READ, pings


def _solve(uses: Sequence[_Use], ttl: dict[int, float]) -> _Plan:
    best: dict[int, Decimal] = {NONE: Decimal(0)}
    # per use: state -> (previous state, action, keep-alive reads before this use)
    steps: list[dict[int, tuple[int, str, int]]] = []
    previous: _Use | None = None
    for use in uses:
        # The shortest the gap can be: the earlier use sent as late as a gate may hold it.
        since = previous.latest if previous else use.at
        ka_price = min(use.prices.cache_read, previous.prices.cache_read) if previous else ZERO
        nxt: dict[int, Decimal] = {}
        step: dict[int, tuple[int, str, int]] = {}
        for state, paid in best.items():
            for to, price, action, kas in _moves(use, state, since, ka_price, ttl):
                if to not in nxt or paid + price < nxt[to]:
                    nxt[to], step[to] = paid + price, (state, action, kas)
        best, previous = nxt, use
        steps.append(step)
    state = min(best, key=lambda s: best[s])
    total, actions, keep_alives = best[state], [], 0
    for step in reversed(steps):
        state, action, kas = step[state]
        actions.append(action)
        keep_alives += kas
    actions.reverse()
    return _Plan(total, actions, keep_alives)


@dataclass
class OracleResult:
    """What the bound charges, in the shape of a strategy's outcome."""

    usage: Usage
    cost_usd: Decimal
    writes: int  # requests that write some segment
    reads: int  # requests that read some segment
    keep_alives: int  # keep-alive reads the bound pays for, counted per group of segments


def oracle(rows: Sequence[Row], *, model: str | None = None) -> OracleResult:
    """The lower bound described in the module docstring."""
    ttl = {FIVE: float(catalog().ttl_seconds["5m"]), HOUR: float(catalog().ttl_seconds["1h"])}
    requests: list[tuple[float, Row, Prompt]] = []
    first_byte: list[float] = []
    for at, ready, row in timeline(rows):
        prompt = _unmarked(row, model)
        if prompt is not None:  # else no strategy pays for it
            requests.append((at, row, prompt))
            first_byte.append(ready - at)

    # Which positions of each request recur in another request of its workspace and model.
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for _, row, prompt in requests:
        for p in prompt.positions:
            counts[(row.workspace or "default", prompt.model.id, p.prefix_hash)] += 1

    segments: dict[tuple[str, str, str], tuple[int, list[_Use]]] = {}
    prices_seen: dict[Prices, Prices] = {}  # a few distinct ones, shared by every use
    readable: dict[tuple[str, str], float] = {}  # per space: the latest an entry can turn readable
    for index, (at, row, prompt) in enumerate(requests):
        space = (row.workspace or "default", prompt.model.id)
        # A gate holds a request at most until every earlier write in its space is readable.
        latest = max(at, readable.get(space, at))
        readable[space] = max(readable.get(space, latest), latest + first_byte[index])
        minimum, _ = minimum_for(prompt.model)
        prices = prompt.model.prices_for(prompt.total_tokens, prompt.speed)
        if prices is None:
            continue
        shared_at = max(
            (p.index for p in prompt.positions if (*space, p.prefix_hash) in segments),
            default=-1,
        )
        if shared_at >= 0 and prompt.positions[shared_at].cumulative < minimum:
            shared_at = -1
        recurs_to = max(
            (p.index for p in prompt.positions if counts[(*space, p.prefix_hash)] > 1), default=-1
        )
        for p in prompt.positions:
            key = (*space, p.prefix_hash)
            use = _Use(
                index,
                at,
                latest,
                prices_seen.setdefault(cheapest := _cheapest(prompt, p, prices), cheapest),
                can_read=p.index <= shared_at,
                joins_1h=p.index < recurs_to,
                extends=p.index < len(prompt.positions) - 1,
            )
            segments.setdefault(key, (p.tokens, []))[1].append(use)

    usage, total = Usage(), Decimal(0)
    for _, row, prompt in requests:
        # Output, and the framing after the last block, which no breakpoint can reach.
        cached = prompt.positions[-1].cumulative if prompt.positions else 0
        output = billed_output(prompt, row.output_tokens)
        rest = Usage(input_tokens=prompt.total_tokens - cached, output_tokens=output)
        prices = prompt.model.prices_for(prompt.total_tokens, prompt.speed)
        if prices is not None:  # priced at the request's band and speed, like its segments
            total += (rest.input_tokens * prices.input + rest.output_tokens * prices.output) / MTOK
        usage = usage + rest
    wrote: set[int] = set()
    read: set[int] = set()
    solved: dict[tuple[Any, ...], _Plan] = {}
    pings: dict[tuple[int, ...], int] = {}  # per set of uses: the keep-alives its segments need
    for tokens, uses in segments.values():
        signature = tuple((u.request, u.prices, u.can_read, u.joins_1h, u.extends) for u in uses)
        if signature not in solved:
            solved[signature] = _solve(uses, ttl)
        requests_of = tuple(u.request for u in uses)
        pings[requests_of] = max(pings.get(requests_of, 0), solved[signature].keep_alives)
        plan = solved[signature]
        total += Decimal(tokens) * plan.per_mtok / MTOK
        usage = usage + Usage(cache_read_input_tokens=tokens * plan.keep_alives)
        for use, action in zip(uses, plan.actions, strict=True):
            usage = usage + _billed(action, tokens)
            if action == READ:
                read.add(use.request)
            elif action != INPUT:
                wrote.add(use.request)
    return OracleResult(usage, total, len(wrote), len(read), sum(pings.values()))


def _unmarked(row: Row, model: str | None) -> Prompt | None:
    """The row's request without markers. Markers are no part of a position's identity or count
    and a request the API accepts with them it accepts without them, so a row parsed already
    (as replayed) is used as it is: the bound holds no second parse of the trace."""
    parsed = row.prompt
    replayed = parsed is not None and (model is None or parsed.model.id == get_model(model).id)
    if parsed is not None and replayed and not violations(parsed):
        return parsed
    return unmarked({**row.request, "model": model} if model else row.request)


def _cheapest(prompt: Prompt, position: Position, prices: Prices) -> Prices:
    """The lowest prices a request holding this segment can be billed at: a keep-alive or a
    pre-warm that stops at the segment has only its cumulative tokens (price bands), and one at
    standard speed shares the tools level with fast requests."""
    speed = "standard" if position.level == "tools" else prompt.speed
    small = prompt.model.prices_for(position.cumulative, speed) or prices
    return Prices(*(min(a, b) for a, b in zip(astuple(small), astuple(prices), strict=True)))


def _billed(action: str, tokens: int) -> Usage:
    if action == READ:
        return Usage(cache_read_input_tokens=tokens)
    if action == WRITE_5M:
        return Usage(ephemeral_5m_input_tokens=tokens)
    if action == WRITE_1H:
        return Usage(ephemeral_1h_input_tokens=tokens)
    return Usage(input_tokens=tokens)
