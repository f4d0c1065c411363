"""`cachewise explain`: why a request read, or did not read, what came before it.

The engine replays the requests in time order and says what each one reads and writes; this
module names the cause by comparing each request with the earlier ones it should have read from.
A trace row's observed `usage`, when present, is checked against the engine's prediction.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .body import text_at
from .cost import break_even_reads
from .engine import Engine, breakpoints, minimum_for
from .errors import InvalidRequest
from .request import Prompt
from .trace import Row, Step, replay, rows_from
from .usage import normalize_usage

__all__ = ["CAUSES", "Explainer", "Explanation", "explain", "explain_rows", "explain_trace"]

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


@dataclass(frozen=True)
class Explanation:
    """The expected cache outcome of one request, and its cause."""

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
        row = Row(
            dict(prompt.body),
            started_at=start,
            workspace=workspace,
            usage=dict(usage) if usage else None,
        )
        with self._lock:
            try:
                account = self.engine.account(
                    prompt, now=start, workspace=workspace, ready_at=ready
                )
                step = Step(self._count, row, prompt, start, ready, workspace, account)
            except InvalidRequest as exc:
                step = Step(self._count, row, prompt, start, ready, workspace, None, exc)
            explanation = _explain(step, list(self._steps))
            self._steps.append(step)
            self._count += 1
        return explanation


def _explain(step: Step, earlier: Sequence[Step]) -> Explanation:
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
    bps = breakpoints(prompt)
    same = [
        s
        for s in earlier
        if s.workspace == step.workspace
        and s.prompt.model.id == prompt.model.id
        and s.account is not None
    ]
    expected_at = _expected_position(prompt, same)
    expected = prompt.positions[expected_at].cumulative if expected_at is not None else 0
    observed = _observed(step, read)
    if observed is not None:
        return observed

    if not bps:
        shared = _shared_tokens(prompt, same)
        return _make(
            step,
            "no_breakpoint",
            expected,
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
    if expected_at is not None and read >= expected:
        return _make(
            step,
            "hit",
            expected,
            position=acct.read_position,
            path=prompt.positions[acct.read_position or 0].path,
            detail=f"read {read:,} tokens written earlier",
        )
    if expected_at is not None:
        return _why_not_read(step, expected_at, expected, read)
    return _why_nothing_expected(step, same, earlier)


def _why_not_read(step: Step, at: int, expected: int, read: int) -> Explanation:
    acct = step.account
    assert acct is not None
    p = step.prompt.positions[at]
    missed = expected - read
    for b in acct.breakpoints:
        if b.pending_at is not None:
            return _make(
                step,
                "concurrent_write",
                expected,
                missed=missed,
                path=p.path,
                position=at,
                level=p.level,
                detail=f"started at {step.start:g}s, before the response writing "
                f"{p.path} had begun: it paid the write again",
                suggestion="Let one request go first and release the rest at its first "
                "byte (the warm gate: cachewise.wrap, cachewise run --scout).",
            )
        if b.expired_at is not None:
            reads = break_even_reads(step.prompt.model, "1h")
            return _make(
                step,
                "ttl_expired",
                expected,
                missed=missed,
                path=p.path,
                position=at,
                level=p.level,
                detail=f"the entry for {p.path} (TTL {b.breakpoint.ttl}) had expired "
                f"by {step.start:g}s",
                suggestion=f"Use ttl 1h for gaps between 5 minutes and an hour (a 1h "
                f"write pays for itself after {reads} read(s)), or send a "
                "keep-alive read within the TTL.",
            )
        if b.beyond_at is not None:
            return _make(
                step,
                "lookback_exceeded",
                expected,
                missed=missed,
                path=p.path,
                position=at,
                level=p.level,
                detail=f"the entry at {p.path} is {b.breakpoint.position - at + 1} "
                f"positions before the breakpoint at {b.breakpoint.path}; the "
                "lookback checks 20",
                suggestion=f"Add a breakpoint at {p.path}, or within 20 positions of it.",
            )
    if acct.evicted:
        return _make(
            step,
            "likely_server_side",
            expected,
            missed=missed,
            path=p.path,
            detail="the entry was evicted (the engine's eviction knob)",
            suggestion="An isolated server-side miss; nothing to change.",
        )
    return _make(
        step,
        "lookback_exceeded",
        expected,
        missed=missed,
        path=p.path,
        position=at,
        level=p.level,
        detail=f"no breakpoint's 20-position window reaches {p.path}",
        suggestion=f"Add a breakpoint at {p.path}, or within 20 positions of it.",
    )


def _why_nothing_expected(step: Step, same: Sequence[Step], earlier: Sequence[Step]) -> Explanation:
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
        and _expected_position(prompt, [s]) is not None
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
    if not same:
        return _make(
            step,
            "cold_start",
            0,
            detail="the first request with this prefix in this "
            "workspace and model: the write is expected",
            suggestion="Nothing to fix; requests within the TTL will read it.",
        )
    prev = same[-1]
    change = _first_change(prev.prompt, prompt)
    if change is None:
        params = [f"{level}.{name}" for level, name in prompt.changed_params(prev.prompt)]
        if params:
            level = "system" if any(p.startswith("system.") for p in params) else "messages"
            return _make(
                step,
                "param_changed",
                -1,
                level=level,
                parameter=params[0].split(".", 1)[1],
                missed=_cached_tokens(prev),
                detail=f"{', '.join(q.split('.', 1)[1] for q in params)} changed since the "
                f"previous request; it renders into the {level} level",
                suggestion="Keep tool_choice, thinking, effort, speed, images and beta "
                "headers fixed across requests that share a prefix.",
            )
        return _make(
            step,
            "cold_start",
            0,
            detail="the earlier requests wrote nothing this one "
            "can read (no cacheable breakpoint in the shared prefix)",
            suggestion="Put a breakpoint on the last block the requests share.",
        )
    p = (
        prompt.positions[change]
        if change < len(prompt.positions)
        else prev.prompt.positions[change]
    )
    return _make(
        step,
        "prefix_changed",
        -1,
        level=p.level,
        path=p.path,
        position=change,
        missed=_cached_tokens(prev),
        diff=_diff(prev, step, p.path),
        detail=f"the {p.level} block at {p.path} differs from the previous request's, so "
        "nothing after it matches",
        suggestion=_prefix_advice(p.level),
    )


def _prefix_advice(level: str) -> str:
    if level == "tools":
        return "Send the same tools in the same order with stable JSON (sort them by name)."
    if level == "system":
        return (
            "Keep the system prompt identical; move what changes (dates, ids, per-user data) "
            "after the last breakpoint."
        )
    return "Keep the history append-only: never edit, reorder or re-serialize earlier blocks."


# -- comparisons ---------------------------------------------------------------------------------


def _expected_position(prompt: Prompt, earlier: Sequence[Step]) -> int | None:
    """The furthest position where an earlier request wrote an entry this prompt shares, whatever
    the TTL, timing or lookback window would say."""
    best = None
    for s in earlier:
        minimum, _ = minimum_for(s.prompt.model)
        for bp in breakpoints(s.prompt):
            if bp.tokens < minimum or bp.position >= len(prompt.positions):
                continue
            if (
                prompt.positions[bp.position].prefix_hash
                == s.prompt.positions[bp.position].prefix_hash
            ):
                best = bp.position if best is None else max(best, bp.position)
    return best


def _shared_tokens(prompt: Prompt, earlier: Sequence[Step]) -> int:
    best = 0
    for s in earlier:
        for a, b in zip(prompt.positions, s.prompt.positions, strict=False):
            if a.prefix_hash != b.prefix_hash:
                break
            best = max(best, a.cumulative)
    return best


def _cached_tokens(step: Step) -> int:
    acct = step.account
    return 0 if acct is None else acct.usage.prompt_tokens - acct.usage.input_tokens


def _first_change(prev: Prompt, cur: Prompt) -> int | None:
    for k, (a, b) in enumerate(zip(prev.positions, cur.positions, strict=False)):
        if a.digest != b.digest or a.level != b.level:
            return k
    if len(cur.positions) < len(prev.positions):
        return len(cur.positions) if len(cur.positions) else None
    return None


def _same_content(a: Prompt, b: Prompt) -> bool:
    n = min(len(a.positions), len(b.positions))
    return n > 0 and all(a.positions[k].digest == b.positions[k].digest for k in range(n))


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
    )
