"""`cachewise plan`: place the cache breakpoints and choose their TTLs.

The planner proposes a few candidate breakpoints from the shape of the request (and, with
history, from what earlier requests shared and how far apart they came), keeps the client's own
valid markers, fits the budget of 4 and the 1h-before-5m order, and checks the result with the
engine's validation: a plan always lints clean. It changes nothing but `cache_control`, unless the
caller opts in to `sort_tools`, `canonical_json` or `move_volatile`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from itertools import pairwise
from typing import Any, Literal

from .body import (
    TTL,
    strip_markers,
    volatile_system,
    with_marker,
    with_sorted_keys,
    with_sorted_tools,
    with_volatile_last,
)
from .catalog import catalog
from .diagnosis import shared_end
from .engine import LOOKBACK, MAX_BREAKPOINTS, breakpoints, minimum_for, violations
from .rent import hourly_cap
from .request import Marker, Position, Prompt, parse_request
from .trace import Row, parse_row, rows_from

__all__ = ["HISTORY", "Plan", "PlannedBreakpoint", "plan"]

TtlChoice = Literal["auto", "5m", "1h"]

# How many earlier requests of a workspace the planner learns from when it plans online (the
# proxy, `wrap`, `simulate`'s cachewise strategy): enough to see a rhythm of gaps and what a
# workload shares, few enough to follow a change of workload within minutes.
HISTORY = 50


@dataclass(frozen=True)
class PlannedBreakpoint:
    """A breakpoint of the plan: where, with which TTL, how many tokens it covers, and why."""

    path: str
    ttl: TTL
    tokens: int
    why: str


@dataclass(frozen=True)
class Plan:
    """The request with breakpoints placed, the breakpoints, and what the planner decided;
    `prompt` is the planned request already parsed (pass it on to `lint` or the engine)."""

    request: dict[str, Any]
    breakpoints: list[PlannedBreakpoint]
    notes: list[str] = field(default_factory=list)
    # `request` parsed: the planner re-marks its own parse (markers are no part of a position's
    # identity), so a caller that sends the plan needs no parse of its own.
    prompt: Prompt | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "breakpoints": [asdict(b) for b in self.breakpoints],
            "notes": self.notes,
        }


@dataclass
class _Candidate:
    position: Position
    why: str
    priority: int


def plan(
    request: Mapping[str, Any] | Prompt,
    history: Iterable[Mapping[str, Any] | Row] | None = None,
    ttl: TtlChoice = "auto",
    *,
    sort_tools: bool = False,
    canonical_json: bool = False,
    move_volatile: bool = False,
    now: float | None = None,
) -> Plan:
    """Place breakpoints on `request`.

    Args:
        request: a Messages API body, or a `Prompt` already parsed from one.
        history: earlier requests of the same workload (bodies or trace rows, with `started_at`
            for TTL choices), from which the planner learns what is stable.
        ttl: "5m" or "1h" for every new breakpoint, or "auto" to choose by break-even from the
            history's gaps (5m without history).
        sort_tools: sort tool definitions by name (changes the request).
        canonical_json: sort keys inside tool schemas and tool_use inputs (changes the request).
        move_volatile: move volatile system blocks after the stable ones (changes the request).
        now: when this request is sent, on the history's clock: the gap since a prefix's last
            use counts toward its TTL choice.

    Raises:
        InvalidRequest: the request is malformed.
        UnknownModel: its model is not in the catalog.
    """
    notes: list[str] = []
    # The API's 400 before any edit: the edits walk a body they may assume is well formed.
    parsed = request if isinstance(request, Prompt) else parse_request(request)
    source = dict(parsed.body)
    body, volatile = _transform(source, sort_tools, canonical_json, move_volatile, notes)
    changed = sort_tools or canonical_json or move_volatile
    prompt = parse_request(body) if changed else parsed
    rows = rows_from(history or [])
    past = [parse_row(r) for r in rows]

    rejected = violations(prompt)
    if rejected:
        first = rejected[0].message
        notes.append(f"your cache_control markers are rejected by the API ({first}); replaced")
        body = strip_markers(body)
        prompt = parse_request(body)
    kept = breakpoints(prompt)
    if kept:
        notes.append(f"kept your {len(kept)} breakpoint(s)")

    minimum, assumed = minimum_for(prompt.model)
    if assumed:
        notes.append(f"{prompt.model.id}'s minimum is unknown; assumed {minimum:,} tokens")
    candidates = _candidates(prompt, past, volatile, notes)
    taken = {bp.position for bp in kept}
    budget = MAX_BREAKPOINTS - len(kept)
    chosen: list[_Candidate] = []
    for c in sorted(candidates, key=lambda c: (c.priority, -c.position.index)):
        if c.position.index in taken:
            continue
        if c.position.cumulative < minimum:
            notes.append(
                f"skipped {c.position.path}: {c.position.cumulative:,} tokens is below "
                f"the minimum of {minimum:,}"
            )
            continue
        if len(chosen) >= budget:
            notes.append(f"no breakpoint slot left for {c.position.path} ({c.why})")
            continue
        chosen.append(c)
        taken.add(c.position.index)
    chosen.sort(key=lambda c: c.position.index)

    ttls = _ttls(prompt, chosen, kept, rows, past, ttl, notes, now)
    planned = body
    for c, t in zip(chosen, ttls, strict=True):
        planned = with_marker(planned, c.position.path, t)
    # Markers are not part of any hash or count: the planned prompt is this one, re-marked.
    result = _remarked(prompt, {c.position.index: t for c, t in zip(chosen, ttls, strict=True)})
    problems = violations(result)
    if problems:  # the plan must lint clean; if our reasoning missed a rule, send it unplanned
        notes.append(f"plan withdrawn, the API would reject it: {problems[0].message}")
        planned, result = body, prompt
    whys = {c.position.index: c.why for c in chosen}
    out = [
        PlannedBreakpoint(
            bp.path if not bp.automatic else "/cache_control",
            bp.ttl,
            bp.tokens,
            whys.get(bp.position, "automatic (yours)" if bp.automatic else "yours"),
        )
        for bp in breakpoints(result)
    ]
    if not out:
        notes.append("no breakpoint: nothing in this request reaches the minimum or repeats")
    return Plan(planned, out, notes, prompt=replace(result, body=planned))


# -- where ---------------------------------------------------------------------------------------


def _candidates(
    prompt: Prompt, past: Sequence[Prompt], volatile_text: Mapping[str, str], notes: list[str]
) -> list[_Candidate]:
    pos = prompt.positions
    eligible = [p for p in pos if p.eligible]
    if not eligible:
        return []
    volatile = {p.index for p in pos if p.level == "system" and p.path in volatile_text}
    last_message = max((p.message for p in pos if p.message is not None), default=None)
    messages = {p.message for p in pos if p.message is not None}
    out: list[_Candidate] = []

    static = [p for p in eligible if p.level != "messages"]
    if volatile and _recurs(static, past):
        notes.append(
            "the system prompt has volatile-looking content, but the history shows each "
            "version of it used several times: it is cached whole"
        )
    elif volatile:
        first = min(volatile)
        before = [p for p in static if p.index < first]
        minimum, _ = minimum_for(prompt.model)
        if before and before[-1].cumulative >= minimum:
            static = before
            notes.append(
                f"{pos[first].path} looks volatile ({volatile_text[pos[first].path]}); the "
                "stable prefix ends before it (--move-volatile moves it later)"
            )
        else:  # nothing stable comes first: caching it whole pays off if a version repeats once
            notes.append(
                f"{pos[first].path} looks volatile ({volatile_text[pos[first].path]}) and nothing "
                "stable comes before it: cached whole (--move-volatile moves it later)"
            )
    extends = _extends(prompt, past)
    shared = shared_end(prompt, past)
    conversation = len(messages) > 1 or extends is not None
    if static:
        out.append(
            _Candidate(
                static[-1], "end of the stable tools and system prefix", 2 if conversation else 1
            )
        )
        tools = [p for p in static if p.level == "tools"]
        if tools and tools[-1] is not static[-1] and volatile:
            out.append(_Candidate(tools[-1], "tool definitions, ahead of a system that varies", 4))
    if not conversation and last_message is not None:
        # A single turn of a big block then a short one (a document, then the question about
        # it): the big block is what other requests are likely to share.
        turn = [p for p in eligible if p.message == last_message]
        if len(turn) >= 2 and turn[-1].tokens * 10 < turn[-2].tokens:
            out.append(_Candidate(turn[-2], "end of a large block before the question", 2))
    if shared is not None and not conversation:
        spot = _last_eligible(eligible, shared)
        if spot is not None and (not static or spot.index > static[-1].index):
            out.append(_Candidate(spot, "end of the prefix the history shares", 1))
    if conversation:
        tail = eligible[-1]
        out.append(_Candidate(tail, "end of the conversation, for the next turn to read", 1))
        prev_tail = _previous_tail(prompt, past, extends, last_message)
        if prev_tail is not None and tail.index - prev_tail.index >= LOOKBACK:
            out.append(
                _Candidate(
                    prev_tail,
                    f"the previous turn's write, {tail.index - prev_tail.index} "
                    f"positions back (beyond the {LOOKBACK}-position lookback)",
                    1,
                )
            )
    return out


def _recurs(static: Sequence[Position], past: Sequence[Prompt]) -> bool:
    """Whether the history's versions of the static prefix were each used at least twice on
    average: then a write at its end pays for itself (break-even is one read)."""
    if not static or not past:
        return False
    index = static[-1].index
    versions = [p.positions[index].prefix_hash for p in past if len(p.positions) > index]
    return bool(versions) and len(versions) >= 2 * len(set(versions))


def _last_eligible(eligible: Sequence[Position], index: int) -> Position | None:
    found = [p for p in eligible if p.index <= index]
    return found[-1] if found else None


def _extends(prompt: Prompt, past: Sequence[Prompt]) -> Prompt | None:
    """The latest earlier prompt this one extends (a conversation's previous turn), if any."""
    for earlier in reversed(past):
        n = len(earlier.positions)
        if (
            0 < n < len(prompt.positions)
            and prompt.positions[n - 1].prefix_hash == earlier.positions[n - 1].prefix_hash
        ):
            return earlier
    return None


def _previous_tail(
    prompt: Prompt, past: Sequence[Prompt], extends: Prompt | None, last_message: int | None
) -> Position | None:
    """Where the previous turn wrote: its last breakpoint, if the history has it; else the end
    of the message before the last assistant turn (the previous request's last block)."""
    if extends is not None:
        bps = breakpoints(extends)
        if bps:
            return prompt.positions[bps[-1].position]
        return prompt.positions[len(extends.positions) - 1]
    if last_message is None or last_message < 2:
        return None
    earlier = [
        p
        for p in prompt.positions
        if p.message is not None and p.message <= last_message - 2 and p.eligible
    ]
    return earlier[-1] if earlier else None


# -- how long ------------------------------------------------------------------------------------


def _ttls(
    prompt: Prompt,
    chosen: Sequence[_Candidate],
    kept: Sequence[Any],
    rows: Sequence[Row],
    past: Sequence[Prompt],
    ttl: TtlChoice,
    notes: list[str],
    now: float | None = None,
) -> list[TTL]:
    if ttl != "auto":
        wanted: list[TTL] = [ttl] * len(chosen)
    else:
        times = [r.started_at for r in rows]
        wanted = [_best_ttl(prompt, c.position, past, times, now) for c in chosen]
        if not any(t is not None for t in times):
            notes.append("no history times: 5m; with --history the TTL follows the gaps")
    # The API's order: a 1h breakpoint may not follow a 5m one. Theirs are fixed; ours adapt.
    fixed = {bp.position: bp.ttl for bp in kept}
    out: list[TTL] = []
    for c, t in zip(chosen, wanted, strict=True):
        before_5m = any(p < c.position.index and v == "5m" for p, v in fixed.items())
        after_1h = any(p > c.position.index and v == "1h" for p, v in fixed.items())
        if t == "1h" and before_5m:
            t = "5m"
            notes.append(f"{c.position.path}: 5m, because a 5m marker of yours comes first")
        elif t == "5m" and after_1h:
            t = "1h"
        out.append(t)
    for k in range(len(out) - 2, -1, -1):  # an earlier breakpoint is at least as long-lived
        if out[k + 1] == "1h" and out[k] == "5m":
            out[k] = "1h"
    return out


def _best_ttl(
    prompt: Prompt,
    position: Position,
    past: Sequence[Prompt],
    times: Sequence[float | None],
    now: float | None = None,
) -> TTL:
    """The TTL for a write of this prefix, by its gaps between uses (its past uses, and this one
    at `now`) and the model's prices: the rule whose cost docs/simulate.md bounds.

    Once the prefix has been idle past 5 minutes, 1h: an hour's entry kept alive by hourly reads
    prices any later gap near what hindsight could (`simulate`'s keep-alives). Two exceptions: a
    prefix the client marks 5m keeps 5m through a first such pause that one keep-alive would
    have bridged (one pause cannot be told from the end of traffic, and following the client
    then costs nothing against its markers); and a prefix whose pauses all outlast what hourly
    reads can bridge for less than an input is rewritten 5m. Before any such pause, while the
    prefix has few gaps of its own, those of the other prefixes at the same place (other
    tenants, other documents) decide by break-even: a workload's rhythm is usually shared, and
    learning it per prefix costs a rewrite or two.
    """
    groups: dict[str, list[float]] = {}
    latest: Prompt | None = None
    for p, t in zip(past, times, strict=False):
        if t is not None and len(p.positions) > position.index:
            groups.setdefault(p.positions[position.index].prefix_hash, []).append(t)
            if p.positions[position.index].prefix_hash == position.prefix_hash:
                latest = p
    own = sorted(groups.pop(position.prefix_hash, []))
    if now is not None and own and now > own[-1]:
        own.append(now)
    prices = prompt.model.prices
    if prices is None:
        return "5m"
    five, hour = catalog().ttl_seconds["5m"], catalog().ttl_seconds["1h"]
    gaps = [b - a for a, b in pairwise(own)]
    paused = [g for g in gaps if g > five]
    if paused:
        marker = latest.positions[position.index].marker if latest is not None else None
        if len(paused) == 1 and paused[0] < 2 * five and marker is not None and marker.ttl == "5m":
            return "5m"
        horizon = hour * (hourly_cap(prices) + 1)
        return "5m" if all(g > horizon for g in paused) else "1h"
    if len(gaps) < 3:
        gaps += [b - a for uses in groups.values() for a, b in pairwise(sorted(uses))]
    if not gaps:
        return "5m"
    costs = {}
    for ttl, life, write in (
        ("5m", five, prices.cache_write_5m),
        ("1h", hour, prices.cache_write_1h),
    ):
        read = sum(1 for gap in gaps if gap < life)  # a count, then two products: Decimal is slow
        costs[ttl] = write + prices.cache_read * read + write * (len(gaps) - read)
    return "1h" if costs["1h"] < costs["5m"] else "5m"


# -- edits ---------------------------------------------------------------------------------------


def _remarked(prompt: Prompt, ttls: Mapping[int, TTL]) -> Prompt:
    positions = tuple(
        replace(p, marker=Marker(ttls[p.index], p.path, p.path.strip("/").replace("/", ".")))
        if p.index in ttls
        else p
        for p in prompt.positions
    )
    return replace(prompt, positions=positions)


def _transform(
    body: dict[str, Any],
    sort_tools: bool,
    canonical_json: bool,
    move_volatile: bool,
    notes: list[str],
) -> tuple[dict[str, Any], dict[str, str]]:
    """The opted-in edits, and the system blocks that look volatile (pointer -> kind)."""
    if sort_tools and isinstance(body.get("tools"), list):
        body = with_sorted_tools(body)
        notes.append("sorted tools by name (--sort-tools)")
    if canonical_json:
        body = with_sorted_keys(body)
        notes.append("sorted JSON keys in tool schemas and tool_use inputs (--canonical-json)")
    volatile = volatile_system(body)
    if move_volatile and volatile and isinstance(body.get("system"), list):
        body = with_volatile_last(body)
        moved = len(volatile)
        notes.append(
            f"moved {moved} volatile system block(s) after the stable ones (--move-volatile)"
        )
        volatile = volatile_system(body)  # the same blocks, now last
    return body, volatile
