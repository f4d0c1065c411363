"""Why a request did not read what earlier requests cached: the one miss classifier.

`explain` and `lint` both render it. A miss is a breakpoint of the request that wrote (or left
uncached) tokens an earlier request's cache entry held. Its cause comes from the engine's own
answer when the request's prefix matched the entry exactly (the lookback passed the entry while it
was still being written, after it had expired, beyond its reach, or the eviction knob drew it),
and otherwise from comparing the prompt with the latest comparable one (a block changed before
the new turn, or a parameter folded into a level changed). Each cause has one rule code and one
piece of advice, here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from .catalog import catalog
from .cost import MTOK, break_even_reads
from .engine import LOOKBACK, Breakpoint, BreakpointAccount, EntryState, breakpoints, minimum_for
from .request import Prompt
from .trace import Step

__all__ = [
    "ADVICE",
    "CAUSES",
    "RULE_OF_CAUSE",
    "Cause",
    "Miss",
    "before_last_turn",
    "diagnose",
    "first_change",
    "headline",
    "lookback_advice",
    "prefix_advice",
    "shared_end",
    "shared_length",
    "ttl_advice",
]

Cause = Literal[
    "hit",
    "cold_start",
    "prefix_changed",
    "ttl_expired",
    "below_minimum",
    "lookback_exceeded",
    "concurrent_write",
    "model_changed",
    "workspace_changed",
    "param_changed",
    "no_breakpoint",
    "likely_server_side",
    "invalid_request",
]
CAUSES: tuple[str, ...] = Cause.__args__  # type: ignore[attr-defined]

# The lint rule that reports each cause before a request is sent.
RULE_OF_CAUSE: dict[str, str] = {
    "concurrent_write": "CW111",
    "ttl_expired": "CW110",
    "lookback_exceeded": "CW104",
    "prefix_changed": "CW108",
    "param_changed": "CW109",
    "below_minimum": "CW101",
    "no_breakpoint": "CW105",
}

ADVICE: dict[str, str] = {
    "concurrent_write": "Let one request go first and release the rest at its first byte (the "
    "warm gate: cachewise.wrap, cachewise run --scout).",
    "ttl_expired": "Use the 1h TTL when requests come more than 5 minutes apart, or send a "
    "keep-alive read within the TTL.",
    "lookback_exceeded": "Add a breakpoint within {lookback} positions of the previous write.",
    "prefix_changed": "Keep history append-only: never edit, reorder or re-serialize earlier "
    "blocks.",
    "param_changed": "Keep tool_choice, thinking, effort, speed, images and beta headers fixed "
    "across requests that share a prefix.",
    "likely_server_side": "An isolated server-side miss; nothing to change.",
}

_TIMING: dict[EntryState, Cause] = {
    "pending": "concurrent_write",
    "expired": "ttl_expired",
    "beyond": "lookback_exceeded",
    "evicted": "likely_server_side",
}


@dataclass(frozen=True)
class Miss:
    """A breakpoint that did not read what an earlier request had cached, and why.

    `at` is the position of the entry it could have read (or, for `prefix_changed`, of the first
    block that changed); `missed_tokens` is what it would have read, and `missed_usd` what not
    reading it cost (written instead of read, or sent as input)."""

    cause: Cause
    breakpoint: Breakpoint
    at: int
    missed_tokens: int
    missed_usd: Decimal
    earlier: Step
    parameter: str | None = None
    level: str | None = None


def diagnose(step: Step, earlier: Sequence[Step], *, lookback: int = LOOKBACK) -> list[Miss]:
    """Each breakpoint of the step that missed an earlier entry, with its costliest miss, in
    breakpoint order. Only steps of the same workspace and model count as earlier."""
    acct = step.account
    if acct is None:
        return []
    prompt = step.prompt
    same = [
        s
        for s in earlier
        if s.account is not None
        and s.workspace == step.workspace
        and s.prompt.model.id == prompt.model.id
    ]
    if not same:
        return []
    minimum, _ = minimum_for(prompt.model)
    mine = [b for b in acct.breakpoints if b.breakpoint.tokens >= minimum]
    read_at = -1 if acct.read_position is None else acct.read_position
    found: dict[int, Miss] = {}

    def keep(miss: Miss | None) -> None:
        if miss is None or miss.missed_tokens <= 0:
            return
        best = found.get(miss.breakpoint.position)
        if best is None or (miss.missed_usd, miss.missed_tokens) > (
            best.missed_usd,
            best.missed_tokens,
        ):
            found[miss.breakpoint.position] = miss

    for s in same:  # entries this prompt shares exactly: the engine says why it did not read them
        for q in _cached_positions(s, minimum):
            if read_at < q < len(prompt.positions) and _same_prefix(prompt, s.prompt, q):
                keep(_timing_miss(step, s, q, mine, lookback))
    prev = same[-1]  # entries it would share, but for a change
    change = first_change(prev.prompt, prompt)
    for q in _cached_positions(prev, minimum):
        if q > read_at and not (q < len(prompt.positions) and _same_prefix(prompt, prev.prompt, q)):
            keep(_change_miss(step, prev, q, change, mine))
    return [found[p] for p in sorted(found)]


def headline(misses: Sequence[Miss]) -> Miss | None:
    """The miss that cost the most (dollars, then tokens)."""
    return max(misses, key=lambda m: (m.missed_usd, m.missed_tokens), default=None)


def _cached_positions(step: Step, minimum: int) -> list[int]:
    """Where an earlier request left a cache entry: its breakpoints that reach the minimum."""
    return [bp.position for bp in breakpoints(step.prompt) if bp.tokens >= minimum]


def _same_prefix(a: Prompt, b: Prompt, q: int) -> bool:
    return a.positions[q].prefix_hash == b.positions[q].prefix_hash


def _covering(mine: Sequence[BreakpointAccount], q: int) -> BreakpointAccount | None:
    return next((b for b in mine if b.breakpoint.position >= q), None)


def _timing_miss(
    step: Step, s: Step, q: int, mine: Sequence[BreakpointAccount], lookback: int
) -> Miss | None:
    bp = _covering(mine, q)
    if bp is None:  # no breakpoint at or after the entry: nothing looked for it
        return _miss(step, s, "lookback_exceeded", mine[-1] if mine else None, q)
    state = bp.unread.get(q)
    if state is None:
        if bp.breakpoint.position - q + 1 <= lookback:
            return None  # no entry there when this request ran (none was ever created)
        state = "beyond"
    return _miss(step, s, _TIMING[state], bp, q)


def _change_miss(
    step: Step, prev: Step, q: int, change: int | None, mine: Sequence[BreakpointAccount]
) -> Miss | None:
    prompt = step.prompt
    if change is None or change > q:  # the same blocks, folded differently: a parameter
        params = prompt.changed_params(prev.prompt)
        if not params or q >= len(prompt.positions):
            return None
        level, name = params[0]
        return _miss(step, prev, "param_changed", _covering(mine, q), q, name, level)
    if change >= len(prompt.positions) or not before_last_turn(prompt, change):
        return None  # a shorter prompt, or the new turn itself: what requests are meant to vary
    p = prompt.positions[change]
    bp = _covering(mine, change) or (mine[-1] if mine else None)
    return _miss(step, prev, "prefix_changed", bp, change, level=p.level, tokens_from=q)


def _miss(
    step: Step,
    earlier: Step,
    cause: Cause,
    bp: BreakpointAccount | None,
    at: int,
    parameter: str | None = None,
    level: str | None = None,
    *,
    tokens_from: int | None = None,
) -> Miss | None:
    if bp is None or step.account is None:
        return None
    usage = step.account.usage
    cached = earlier.prompt.positions[tokens_from if tokens_from is not None else at].cumulative
    tokens = min(cached, bp.breakpoint.tokens) - usage.cache_read_input_tokens
    prices = step.prompt.model.prices_for(step.prompt.total_tokens, step.prompt.speed)
    usd = Decimal(0)
    if prices is not None:
        if bp.outcome == "wrote":
            paid = prices.cache_write_1h if bp.breakpoint.ttl == "1h" else prices.cache_write_5m
        else:
            paid = prices.input
        usd = Decimal(max(0, tokens)) * (paid - prices.cache_read) / MTOK
    return Miss(cause, bp.breakpoint, at, tokens, usd, earlier, parameter, level)


def before_last_turn(prompt: Prompt, index: int) -> bool:
    """Whether a position lies before the request's last message: history, system or tools.
    The last message is the new turn, which requests are meant to vary."""
    last = max((p.message for p in prompt.positions if p.message is not None), default=None)
    p = prompt.positions[index]
    return p.message is None or p.message != last


# -- comparing prompts ---------------------------------------------------------------------------


def first_change(prev: Prompt, cur: Prompt) -> int | None:
    """The first position whose block differs (or where one prompt ends before the other), or
    None when neither changed a block the other has."""
    for k, (a, b) in enumerate(zip(prev.positions, cur.positions, strict=False)):
        if a.digest != b.digest or a.level != b.level:
            return k
    if len(cur.positions) < len(prev.positions):
        return len(cur.positions) if len(cur.positions) else None
    return None


def shared_end(prompt: Prompt, past: Sequence[Prompt]) -> int | None:
    """The last position this prompt shares (same prefix) with any earlier one."""
    shared = max((shared_length(prompt, earlier) for earlier in past), default=0)
    return shared - 1 if shared else None


def shared_length(a: Prompt, b: Prompt) -> int:
    """How many leading positions two prompts share. A prefix hash covers everything before
    it, so equal hashes at one position mean equal hashes at every earlier one: a binary
    search, not a scan (a planner compares each request with dozens of earlier ones)."""
    lo, hi = 0, min(len(a.positions), len(b.positions))
    while lo < hi:
        mid = (lo + hi) // 2
        if a.positions[mid].prefix_hash == b.positions[mid].prefix_hash:
            lo = mid + 1
        else:
            hi = mid
    return lo


# -- advice ----------------------------------------------------------------------------------------


def prefix_advice(level: str | None) -> str:
    """What keeps a level's prefix stable."""
    if level == "tools":
        return "Send the same tools in the same order with stable JSON (sort them by name)."
    if level == "system":
        return (
            "Keep the system prompt identical; move what changes (dates, ids, per-user data) "
            "after the last breakpoint."
        )
    return ADVICE["prefix_changed"]


def ttl_advice(prompt: Prompt, ttl: str, gap: float | None) -> str:
    """Expiry advice: with the gap seen, whether the 1h TTL fits it, and when it pays."""
    reads = break_even_reads(prompt.model, "1h")
    pays = f", and a 1h write pays for itself after {reads} read(s)" if reads else ""
    hour = catalog().ttl_seconds["1h"]
    if ttl == "5m" and gap is not None and gap < hour:
        return f"Use ttl 1h: the gap here was {gap:g}s (over 5 minutes, under an hour){pays}."
    return ADVICE["ttl_expired"]


def lookback_advice(path: str, lookback: int) -> str:
    return f"Add a breakpoint at {path}, or within {lookback} positions of it."
