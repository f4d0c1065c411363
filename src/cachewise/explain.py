"""`cachewise explain`: why a request read, or did not read, what came before it.

The engine replays the requests in time order and says what each one reads and writes; the miss
classifier (`cachewise.diagnosis`) says, for every breakpoint that wrote what an earlier request
had cached, why it did not read it. The request's cause is the costliest of those (a request that
read its system prompt but re-wrote its history is not a "hit"), else hit, cold start, or what
changed. A trace row's observed `usage`, when present, is checked against the engine's prediction.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .body import text_at
from .diagnosis import (
    ADVICE,
    CAUSES,
    Cause,
    Miss,
    diagnose,
    first_change,
    headline,
    lookback_advice,
    prefix_advice,
    shared_end,
    ttl_advice,
)
from .engine import LOOKBACK, Account, Engine, breakpoints, minimum_for
from .errors import InvalidRequest
from .request import Prompt
from .trace import Row, Step, replay, rows_from
from .usage import normalize_usage

__all__ = ["CAUSES", "Explainer", "Explanation", "explain", "explain_rows", "explain_trace"]


@dataclass(frozen=True)
class Explanation:
    """The expected cache outcome of one request, and its cause.

    `breakpoints` lists every breakpoint of the request: its path, TTL, tokens and outcome, and
    for one that missed an earlier entry, the cause and the tokens (and dollars) it missed."""

    request_index: int
    cause: Cause
    level: str | None
    path: str | None
    position: int | None
    expected_read_tokens: int
    read_tokens: int
    missed_tokens: int
    suggestion: str
    detail: str
    parameter: str | None = None
    diff: dict[str, str] | None = None
    usage: dict[str, Any] | None = None
    observed_usage: dict[str, Any] | None = None
    breakpoints: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def explain(prev: Mapping[str, Any] | Row, curr: Mapping[str, Any] | Row) -> Explanation:
    """Why `curr`, sent right after `prev`, reads what it reads.

    Raises:
        InputError: a request is malformed or names an unknown model.
    """
    return explain_rows(rows_from([prev, curr]))[-1]


def explain_trace(rows: Iterable[Mapping[str, Any] | Row]) -> list[Explanation]:
    """An explanation for every request after the first of a trace (bodies or trace rows)."""
    return explain_rows(rows_from(rows))


def explain_rows(rows: Sequence[Row]) -> list[Explanation]:
    steps = replay(rows)
    order = sorted(steps, key=lambda s: (s.start, s.index))
    out = []
    for n, step in enumerate(order):
        if n == 0 and step.index == order[0].index and len(steps) > 1:
            continue
        out.append(_explain(step, order[:n]))
    return sorted(out, key=lambda e: e.request_index)


class Explainer:
    """Explains calls one at a time, as they happen (for `wrap` and the proxy): its own engine
    follows the calls, and the last `window` of them are kept to compare with."""

    def __init__(self, window: int = 64) -> None:
        self.engine = Engine()
        self._steps: deque[Step] = deque(maxlen=window)
        self._lock = threading.Lock()
        self._count = 0

    def observe(
        self,
        prompt: Prompt,
        *,
        start: float,
        ready: float,
        workspace: str,
        usage: Mapping[str, Any] | None = None,
    ) -> Explanation:
        with self._lock:
            step = self._step(prompt, start, ready, workspace, usage)
            explanation = _explain(step, list(self._steps), self.engine.lookback)
            self._append(step)
        return explanation

    def follow(
        self, prompt: Prompt, *, start: float, ready: float, workspace: str
    ) -> Account | None:
        """Follow a call without explaining it, and return what the engine accounted (None for a
        request it refuses): a call the API says read is a hit, whatever the engine would say
        of it, and the diagnosis of every breakpoint is most of an explanation's cost."""
        with self._lock:
            step = self._step(prompt, start, ready, workspace, None)
            self._append(step)
        return step.account

    def _step(
        self,
        prompt: Prompt,
        start: float,
        ready: float,
        workspace: str,
        usage: Mapping[str, Any] | None,
    ) -> Step:
        row = Row(
            dict(prompt.body),
            started_at=start,
            workspace=workspace,
            usage=dict(usage) if usage else None,
        )
        try:
            account = self.engine.account(prompt, now=start, workspace=workspace, ready_at=ready)
        except InvalidRequest as exc:
            return Step(self._count, row, prompt, start, ready, workspace, None, exc)
        return Step(self._count, row, prompt, start, ready, workspace, account)

    def _append(self, step: Step) -> None:
        self._steps.append(step)
        self._count += 1


def _explain(step: Step, earlier: Sequence[Step], lookback: int = LOOKBACK) -> Explanation:
    prompt, acct = step.prompt, step.account
    if acct is None:
        assert step.error is not None
        return _make(
            step,
            "invalid_request",
            0,
            detail=f"the API rejects it: {step.error.message}",
            path=step.error.path,
            suggestion="Fix the request; `cachewise lint` shows how.",
        )
    read = acct.usage.cache_read_input_tokens
    observed = _observed(step, read)
    if observed is not None:
        return observed
    bps = breakpoints(prompt)
    if not bps:
        end = shared_end(prompt, [s.prompt for s in earlier if _comparable(s, step)])
        shared = prompt.positions[end].cumulative if end is not None else 0
        return _make(
            step,
            "no_breakpoint",
            shared,
            missed=shared,
            detail="no cache_control marker: nothing is written or read"
            + (f"; {shared:,} tokens are shared with an earlier request" if shared else ""),
            suggestion="Add cache_control on the last stable block, or use `cachewise plan`.",
        )
    minimum, _ = minimum_for(prompt.model)
    if bps[-1].tokens < minimum:
        return _make(
            step,
            "below_minimum",
            0,
            path=bps[-1].path,
            detail=f"the prefix is {bps[-1].tokens:,} tokens, below {prompt.model.id}'s "
            f"minimum of {minimum:,}: cached nowhere, silently",
            suggestion="Caching cannot apply below the minimum; extend the cached prefix "
            "or accept full price.",
        )
    misses = diagnose(step, earlier, lookback=lookback)
    per_breakpoint = _per_breakpoint(step, misses)
    worst = headline(misses)
    if worst is not None:
        return _from_miss(step, worst, lookback, per_breakpoint)
    if read > 0:
        at = acct.read_position or 0
        return _make(
            step,
            "hit",
            read,
            position=acct.read_position,
            path=prompt.positions[at].path,
            detail=f"read {read:,} tokens written earlier",
            breakpoints=per_breakpoint,
        )
    explanation = _why_nothing_expected(step, earlier)
    return _with_breakpoints(explanation, per_breakpoint)


def _comparable(s: Step, step: Step) -> bool:
    return (
        s.account is not None
        and s.workspace == step.workspace
        and s.prompt.model.id == step.prompt.model.id
    )


def _from_miss(
    step: Step, miss: Miss, lookback: int, per_breakpoint: list[dict[str, Any]]
) -> Explanation:
    """The request explained by its costliest miss."""
    prompt, bp = step.prompt, miss.breakpoint
    p = prompt.positions[miss.at]
    read = step.account.usage.cache_read_input_tokens if step.account else 0
    also = f"; it read {read:,} tokens before that" if read else ""
    common: dict[str, Any] = {
        "missed": miss.missed_tokens,
        "path": p.path,
        "position": miss.at,
        "level": p.level,
        "breakpoints": per_breakpoint,
    }
    expected = read + miss.missed_tokens
    if miss.cause == "concurrent_write":
        return _make(
            step,
            "concurrent_write",
            expected,
            detail=f"started at {step.start:g}s, before the response writing {p.path} had "
            f"begun: it paid the write again{also}",
            suggestion=ADVICE["concurrent_write"],
            **common,
        )
    if miss.cause == "ttl_expired":
        gap = step.start - miss.earlier.start
        return _make(
            step,
            "ttl_expired",
            expected,
            detail=f"the entry for {p.path} (TTL {bp.ttl}) had expired by {step.start:g}s{also}",
            suggestion=ttl_advice(prompt, bp.ttl, gap),
            **common,
        )
    if miss.cause == "lookback_exceeded":
        where = (
            f"{bp.position - miss.at + 1} positions before the breakpoint at {bp.path}; the "
            f"lookback checks {lookback}"
            if bp.position >= miss.at
            else f"after the last breakpoint ({bp.path}): no lookback reaches it"
        )
        return _make(
            step,
            "lookback_exceeded",
            expected,
            detail=f"the entry at {p.path} is {where}{also}",
            suggestion=lookback_advice(p.path, lookback),
            **common,
        )
    if miss.cause == "param_changed":
        names = [name for _, name in prompt.changed_params(miss.earlier.prompt)]
        return _make(
            step,
            "param_changed",
            expected,
            parameter=miss.parameter,
            detail=f"{', '.join(names)} changed since the previous request; it renders into "
            f"the {miss.level} level, so the entry at {p.path} no longer matches{also}",
            suggestion=ADVICE["param_changed"],
            **{**common, "level": miss.level},
        )
    if miss.cause == "prefix_changed":
        return _make(
            step,
            "prefix_changed",
            expected,
            diff=_diff(miss.earlier, step, p.path),
            detail=f"the {p.level} block at {p.path} differs from the previous request's, so "
            f"nothing after it matches{also}",
            suggestion=prefix_advice(p.level),
            **common,
        )
    return _make(
        step,
        "likely_server_side",
        expected,
        detail=f"the entry at {p.path} was evicted (the engine's eviction knob){also}",
        suggestion=ADVICE["likely_server_side"],
        **common,
    )


def _per_breakpoint(step: Step, misses: Sequence[Miss]) -> list[dict[str, Any]]:
    by_position = {m.breakpoint.position: m for m in misses}
    assert step.account is not None
    out = []
    for b in step.account.breakpoints:
        miss = by_position.get(b.breakpoint.position)
        out.append(
            {
                "path": b.breakpoint.path,
                "ttl": b.breakpoint.ttl,
                "tokens": b.breakpoint.tokens,
                "automatic": b.breakpoint.automatic,
                "outcome": b.outcome,
                "cause": miss.cause if miss else ("hit" if b.outcome == "hit" else None),
                "missed_tokens": miss.missed_tokens if miss else 0,
                "missed_usd": float(miss.missed_usd) if miss else 0.0,
            }
        )
    return out


def _with_breakpoints(e: Explanation, per_breakpoint: list[dict[str, Any]]) -> Explanation:
    return replace(e, breakpoints=per_breakpoint)


def _why_nothing_expected(step: Step, earlier: Sequence[Step]) -> Explanation:
    """Nothing earlier could have been read here: another model or workspace holds the prefix,
    or it is the first of its kind."""
    prompt = step.prompt
    sibling = [s for s in earlier if s.workspace == step.workspace and s.account is not None]
    if (
        sibling
        and sibling[-1].prompt.model.id != prompt.model.id
        and _same_content(sibling[-1].prompt, prompt)
    ):
        other = sibling[-1].prompt
        return _make(
            step,
            "model_changed",
            -1,
            path="/model",
            parameter="model",
            missed=_cached_tokens(sibling[-1]),
            detail=f"the previous request used {other.model.id}; the cache is per model",
            suggestion="Keep a conversation on one model; a switch starts a cold cache.",
        )
    elsewhere = [
        s
        for s in earlier
        if s.workspace != step.workspace
        and s.prompt.model.id == prompt.model.id
        and s.account is not None
        and _shares_an_entry(prompt, s)
    ]
    if elsewhere:
        return _make(
            step,
            "workspace_changed",
            -1,
            missed=_cached_tokens(elsewhere[-1]),
            detail=f"workspace {elsewhere[-1].workspace!r} cached this prefix, but this "
            f"request runs in {step.workspace!r}: caches are per workspace",
            suggestion="Send the requests that share a prefix with keys of one workspace.",
        )
    if any(_comparable(s, step) for s in earlier):
        return _make(
            step,
            "cold_start",
            0,
            detail="the earlier requests wrote nothing this one "
            "can read (no cacheable breakpoint in the shared prefix)",
            suggestion="Put a breakpoint on the last block the requests share.",
        )
    return _make(
        step,
        "cold_start",
        0,
        detail="the first request with this prefix in this "
        "workspace and model: the write is expected",
        suggestion="Nothing to fix; requests within the TTL will read it.",
    )


# -- comparisons ---------------------------------------------------------------------------------


def _shares_an_entry(prompt: Prompt, s: Step) -> bool:
    """Whether an entry the earlier request cached is a prefix of this prompt."""
    minimum, _ = minimum_for(s.prompt.model)
    return any(
        bp.tokens >= minimum
        and bp.position < len(prompt.positions)
        and prompt.positions[bp.position].prefix_hash == s.prompt.positions[bp.position].prefix_hash
        for bp in breakpoints(s.prompt)
    )


def _cached_tokens(step: Step) -> int:
    acct = step.account
    return 0 if acct is None else acct.usage.prompt_tokens - acct.usage.input_tokens


def _same_content(a: Prompt, b: Prompt) -> bool:
    n = min(len(a.positions), len(b.positions))
    return n > 0 and first_change(a, b) in (None, n)


def _diff(prev: Step, cur: Step, path: str) -> dict[str, str] | None:
    before, _ = text_at(prev.row.request, path)
    after, _ = text_at(cur.row.request, path)
    if not before and not after:
        return None
    k = next(
        (i for i, (x, y) in enumerate(zip(before, after, strict=False)) if x != y),
        min(len(before), len(after)),
    )
    start = max(0, k - 30)

    def clip(text: str) -> str:
        return ("…" if start else "") + text[start : k + 40] + ("…" if len(text) > k + 40 else "")

    return {"before": clip(before), "after": clip(after)}


def _observed(step: Step, predicted_read: int) -> Explanation | None:
    usage = step.row.usage
    if usage is None:
        return None
    seen = normalize_usage(usage)
    if seen.cache_read_input_tokens == predicted_read:
        return None
    direction = "less" if seen.cache_read_input_tokens < predicted_read else "more"
    return _make(
        step,
        "likely_server_side",
        predicted_read,
        missed=max(0, predicted_read - seen.cache_read_input_tokens),
        detail=f"the engine expected a read of {predicted_read:,} tokens; the API "
        f"reported {seen.cache_read_input_tokens:,} ({direction})",
        suggestion="Isolated server-side misses are reported upstream and unresolved; if "
        "it repeats, compare the requests byte for byte (`cachewise lint`).",
    )


def _make(
    step: Step,
    cause: Cause,
    expected: int,
    *,
    missed: int = 0,
    path: str | None = None,
    position: int | None = None,
    level: str | None = None,
    parameter: str | None = None,
    diff: dict[str, str] | None = None,
    detail: str = "",
    suggestion: str = "",
    breakpoints: list[dict[str, Any]] | None = None,
) -> Explanation:
    acct = step.account
    read = acct.usage.cache_read_input_tokens if acct is not None else 0
    if expected < 0:  # what the earlier cache could have supplied, had the cause not been
        expected = missed
    return Explanation(
        request_index=step.index,
        cause=cause,
        level=level,
        path=path,
        position=position,
        expected_read_tokens=expected,
        read_tokens=read,
        missed_tokens=max(0, missed),
        suggestion=suggestion,
        detail=detail,
        parameter=parameter,
        diff=diff,
        usage=acct.usage.to_api() if acct is not None else None,
        observed_usage=step.row.usage,
        breakpoints=breakpoints or [],
    )
