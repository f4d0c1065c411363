"""`cachewise lint`: what will go wrong with these requests' caching, before they are sent.

Every finding is the engine's answer or a comparison of parsed prompts, never a second copy of
the rules: the 400s come from `engine.violations`, minimums from `engine.minimum_for`, expiry,
races and lookback overflow from replaying the sequence through the engine. Only the volatile
content check (CW102) is a heuristic, and a sequence silences it for blocks that proved stable.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any, Literal

from .__about__ import __version__
from .body import text_at, value_at
from .diagnosis import (
    ADVICE,
    RULE_OF_CAUSE,
    before_last_turn,
    diagnose,
    first_change,
    lookback_advice,
    ttl_advice,
)
from .engine import LOOKBACK, breakpoints, minimum_for, violations
from .request import Prompt
from .trace import Row, Step, parse_row, replay, rows_from
from .volatile import find_volatile

__all__ = ["RULES", "Finding", "lint", "lint_rows", "to_sarif"]

Severity = Literal["error", "warning", "info"]

RULES: dict[str, tuple[Severity, str, str]] = {
    "CW001": (
        "error",
        "more than 4 breakpoints",
        "Keep at most 4 cache_control markers, "
        "counting the automatic one; `cachewise plan` places them for you.",
    ),
    "CW002": (
        "error",
        "a 1h breakpoint after a 5m one",
        "Put 1h markers before 5m ones in tools -> system -> messages order; a bare marker is 5m.",
    ),
    "CW003": (
        "error",
        "a marker where the API rejects it",
        "Move the marker to the nearest text, "
        "tool or tool_result block: not on thinking, empty text or inner content.",
    ),
    "CW004": (
        "error",
        "automatic caching conflicts with explicit markers",
        "Free a slot for the automatic marker, or give the last block the automatic marker's TTL.",
    ),
    "CW005": (
        "error",
        "pre-warm request with an option the API rejects",
        "Send max_tokens: 0 without stream, enabled thinking, structured output or a forced tool.",
    ),
    "CW101": (
        "warning",
        "a breakpoint below the model's minimum",
        "Move the breakpoint later, so its prefix reaches the minimum, or drop it.",
    ),
    "CW102": (
        "warning",
        "volatile content before a breakpoint",
        "Move what changes per request after the last breakpoint (into the user turn).",
    ),
    "CW103": (
        "warning",
        "the last breakpoint is on content unique to each request",
        "Put the breakpoint on the last block that requests share.",
    ),
    "CW104": (
        "warning",
        f"more than {LOOKBACK} positions back to the previous write",
        ADVICE["lookback_exceeded"].format(lookback=LOOKBACK),
    ),
    "CW105": (
        "info",
        "no breakpoint although the prefix could be cached",
        "Add cache_control on the last stable block, or run `cachewise plan`.",
    ),
    "CW106": (
        "warning",
        "tools added, removed or reordered between requests",
        "Send the same tools in the same order (sort them), or use defer_loading.",
    ),
    "CW107": (
        "warning",
        "the same JSON object with a different key order",
        "Serialize tool schemas and tool_use inputs with a stable key order.",
    ),
    "CW108": ("warning", "an earlier block changed", ADVICE["prefix_changed"]),
    "CW109": (
        "warning",
        "a parameter that invalidates a level changed",
        "Keep model, tool_choice, "
        "thinking, effort, speed and beta headers fixed across a conversation.",
    ),
    "CW110": ("warning", "the entry expired between uses", ADVICE["ttl_expired"]),
    "CW111": ("warning", "requests raced on a cold prefix", ADVICE["concurrent_write"]),
}

_RULE_OF_VIOLATION = {
    "max_breakpoints": "CW001",
    "ttl_order": "CW002",
    "marker_placement": "CW003",
    "automatic": "CW004",
    "prewarm": "CW005",
}
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Finding:
    """One problem: which rule, where (request and JSON Pointer), and what to do."""

    rule: str
    severity: Severity
    message: str
    request_index: int
    path: str
    suggestion: str
    file: str = "<memory>"
    line: int = 1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def lint(
    request_or_sequence: Mapping[str, Any] | Prompt | Iterable[Mapping[str, Any] | Row | Prompt],
    model: str | None = None,
    *,
    select: Sequence[str] = (),
    ignore: Sequence[str] = (),
) -> list[Finding]:
    """Lint one request body, or a sequence of bodies or trace rows.

    Args:
        request_or_sequence: a Messages API body, or several (bodies or trace-row dicts); a
            `Prompt` already parsed from a body is used as it is.
        model: lint as if every request used this model.
        select: only these rule codes (prefixes work: "CW1").
        ignore: not these rule codes (prefixes work).

    Raises:
        InputError: a request is malformed or names an unknown model.
    """
    if isinstance(request_or_sequence, Prompt) and model is None:
        # A prompt's findings follow from it alone: a server lints the same one call after call.
        prompt = request_or_sequence
        found = prompt.derived(
            "lint", lambda: tuple(lint_rows(rows_from([prompt.body]), prompts=[prompt]))
        )
        return [f for f in found if _wanted(f.rule, select, ignore)]
    items: list[Mapping[str, Any] | Row | Prompt]
    if isinstance(request_or_sequence, Mapping | Prompt):
        items = [request_or_sequence]
    else:
        items = list(request_or_sequence)
    parsed = [i if isinstance(i, Prompt) and model is None else None for i in items]
    rows = rows_from([i.body if isinstance(i, Prompt) else i for i in items])
    return lint_rows(rows, model, select=select, ignore=ignore, prompts=parsed)


def lint_rows(
    rows: Sequence[Row],
    model: str | None = None,
    *,
    select: Sequence[str] = (),
    ignore: Sequence[str] = (),
    prompts: Sequence[Prompt | None] | None = None,
) -> list[Finding]:
    """Lint trace rows (what `cachewise lint` reads from files); `prompts` may hold rows
    already parsed."""
    given = prompts or [None] * len(rows)
    parsed = [p if p is not None else parse_row(r, model) for r, p in zip(rows, given, strict=True)]
    stable = _stable_blocks(parsed) if len(parsed) > 1 else set()
    found: list[Finding] = []
    for i, (row, prompt) in enumerate(zip(rows, parsed, strict=True)):
        found += _single(i, row, prompt, stable)
    if len(rows) > 1:
        found += _sequence(rows, parsed, replay(rows, prompts=parsed))
    found = [f for f in found if _wanted(f.rule, select, ignore)]
    unique = {(f.request_index, f.rule, f.path, f.message): f for f in found}
    return sorted(
        unique.values(),
        key=lambda f: (f.request_index, _SEVERITY_ORDER[f.severity], f.rule, f.path),
    )


def _wanted(rule: str, select: Sequence[str], ignore: Sequence[str]) -> bool:
    if select and not any(rule.startswith(s.strip().upper()) for s in select):
        return False
    return not any(rule.startswith(s.strip().upper()) for s in ignore if s.strip())


def _finding(
    code: str, message: str, row: Row, index: int, path: str, suggestion: str | None = None
) -> Finding:
    severity, _, fix = RULES[code]
    return Finding(
        code, severity, message, index, path or "/", suggestion or fix, row.file, row.line
    )


# -- one request at a time ---------------------------------------------------------------------


def _single(i: int, row: Row, prompt: Prompt, stable: set[tuple[int, str]]) -> list[Finding]:
    out = [
        _finding(_RULE_OF_VIOLATION.get(v.rule or "", "CW003"), v.message, row, i, v.path or "/")
        for v in violations(prompt)
    ]
    minimum, assumed = minimum_for(prompt.model)
    bps = breakpoints(prompt)
    note = " (assumed: the model's minimum is unknown)" if assumed else ""
    # Only when nothing at all is cached: an early small breakpoint behind a larger one is harmless.
    if bps and bps[-1].tokens < minimum:
        bp = bps[-1]
        out.append(
            _finding(
                "CW101",
                f"the prefix up to this breakpoint is {bp.tokens:,} tokens, below "
                f"{prompt.model.id}'s minimum of {minimum:,}{note}: nothing is cached, silently",
                row,
                i,
                bp.path,
            )
        )
    last = bps[-1].position if bps else -1
    for p in prompt.positions[: last + 1]:
        if (p.index, p.digest) in stable:
            continue
        text, where = text_at(row.request, p.path)
        hit = find_volatile(text) if text else None
        if hit:
            out.append(
                _finding(
                    "CW102",
                    f"{hit.kind} {hit.text!r} sits before the breakpoint at "
                    f"{bps[-1].path}: if it changes per request, nothing after it is ever read",
                    row,
                    i,
                    where,
                )
            )
            break
    cacheable = [p for p in prompt.positions if p.cumulative >= minimum]
    if not bps and cacheable:
        out.append(
            _finding(
                "CW105",
                f"no breakpoint, although the first {cacheable[-1].cumulative:,} tokens "
                f"reach {prompt.model.id}'s minimum of {minimum:,}",
                row,
                i,
                "/",
            )
        )
    return out


def _stable_blocks(prompts: Sequence[Prompt]) -> set[tuple[int, str]]:
    """Blocks that several requests carry unchanged at the same place: proven stable."""
    seen: dict[tuple[int, str], int] = defaultdict(int)
    for prompt in prompts:
        for p in prompt.positions:
            seen[(p.index, p.digest)] += 1
    return {key for key, n in seen.items() if n > 1}


# -- across a sequence -------------------------------------------------------------------------


def _sequence(
    rows: Sequence[Row], prompts: Sequence[Prompt], steps: Sequence[Step]
) -> list[Finding]:
    out: list[Finding] = []
    by_workspace: dict[str, list[int]] = defaultdict(list)
    for step in steps:
        by_workspace[step.workspace].append(step.index)
    for indices in by_workspace.values():
        for prev_i, cur_i in pairwise(indices):
            out += _pair(
                rows[cur_i],
                cur_i,
                prompts[prev_i],
                prompts[cur_i],
                rows[prev_i].request,
                rows[cur_i].request,
            )
        out += _unique_tails(rows, prompts, indices)
    order = sorted(steps, key=lambda s: (s.start, s.index))
    for n, step in enumerate(order):
        out += _engine_findings(step, order[:n])
    return out


def _pair(
    row: Row,
    i: int,
    prev: Prompt,
    cur: Prompt,
    prev_body: Mapping[str, Any],
    cur_body: Mapping[str, Any],
) -> list[Finding]:
    out: list[Finding] = []
    prev_tools = [t.get("name") for t in prev_body.get("tools") or [] if isinstance(t, dict)]
    cur_tools = [t.get("name") for t in cur_body.get("tools") or [] if isinstance(t, dict)]
    if prev_tools != cur_tools:
        if sorted(map(str, prev_tools)) == sorted(map(str, cur_tools)):
            what = "reordered"
        else:
            added = sorted(set(map(str, cur_tools)) - set(map(str, prev_tools)))
            removed = sorted(set(map(str, prev_tools)) - set(map(str, cur_tools)))
            what = (
                ", ".join(
                    filter(
                        None,
                        [
                            f"added {added}" if added else "",
                            f"removed {removed}" if removed else "",
                        ],
                    )
                )
                or "changed"
            )
        out.append(
            _finding(
                "CW106",
                f"tools {what} since the previous request: the whole cache "
                "(tools, system and messages) is invalidated",
                row,
                i,
                "/tools",
            )
        )
    out += _key_order(row, i, prev, cur, prev_body, cur_body)
    changed = first_change(prev, cur)
    if changed is not None and changed >= min(len(prev.positions), len(cur.positions)):
        changed = None  # one is the other plus more turns: nothing earlier changed
    prev_bps = [bp.position for bp in breakpoints(prev)]
    if prev.model.id != cur.model.id:
        out.append(
            _finding(
                "CW109",
                f"model changed from {prev.model.id} to {cur.model.id}: the cache is per model",
                row,
                i,
                "/model",
            )
        )
    elif (
        changed is not None
        and prev_bps
        and changed <= prev_bps[-1]
        and before_last_turn(prev, changed)
    ):
        p = cur.positions[changed]
        if not (p.level == "tools" and prev_tools != cur_tools):
            out.append(
                _finding(
                    "CW108",
                    f"the {p.level} block at {p.path} differs from the previous request's: "
                    f"everything cached after it is invalidated",
                    row,
                    i,
                    p.path,
                )
            )
    elif changed is None:
        params = [name for _, name in cur.changed_params(prev)]
        if params:
            out.append(
                _finding(
                    "CW109",
                    f"{', '.join(params)} changed since the previous "
                    "request: the levels it renders into are invalidated",
                    row,
                    i,
                    "/" + params[0].split(".")[0],
                )
            )
    return out


def _key_order(
    row: Row,
    i: int,
    prev: Prompt,
    cur: Prompt,
    prev_body: Mapping[str, Any],
    cur_body: Mapping[str, Any],
) -> list[Finding]:
    out = []
    for a, b in zip(prev.positions, cur.positions, strict=False):
        if a.digest == b.digest or a.kind != b.kind or a.kind not in ("tool", "tool_use"):
            continue
        key = "input_schema" if a.kind == "tool" else "input"
        x, y = value_at(prev_body, a.path), value_at(cur_body, b.path)
        if not isinstance(x, dict) or not isinstance(y, dict):
            continue
        xv, yv = x.get(key), y.get(key)
        if xv != yv or _dump(xv) == _dump(yv):
            continue
        out.append(
            _finding(
                "CW107",
                f"{b.path}/{key} has the same content as the previous "
                "request's but a different key order: a different prefix",
                row,
                i,
                f"{b.path}/{key}",
            )
        )
    return out


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _unique_tails(
    rows: Sequence[Row], prompts: Sequence[Prompt], indices: list[int]
) -> list[Finding]:
    """CW103: a last breakpoint whose prefix no other request in the workspace shares."""
    out = []
    hashes = [{p.prefix_hash for p in prompts[i].positions} for i in indices]
    for n, i in enumerate(indices[:-1]):  # the last request has no later one to judge by
        bps = breakpoints(prompts[i])
        if not bps:
            continue
        tail = prompts[i].positions[bps[-1].position]
        others = [h for m, h in enumerate(hashes) if m != n]
        if not any(tail.prefix_hash in h for h in others):
            out.append(
                _finding(
                    "CW103",
                    f"the last breakpoint ({bps[-1].path}) covers content no other request "
                    "shares: it pays the write premium and is never read",
                    rows[i],
                    i,
                    bps[-1].path,
                )
            )
    return out


def _engine_findings(step: Step, earlier: Sequence[Step]) -> list[Finding]:
    """CW104, CW110 and CW111: the misses the engine's replay shows (`cachewise.diagnosis`), one
    per rule and request (the costliest)."""
    out: dict[str, Finding] = {}
    misses = sorted(diagnose(step, earlier), key=lambda m: (m.missed_usd, m.missed_tokens))
    for miss in misses:
        code = RULE_OF_CAUSE.get(miss.cause)
        bp, row, i = miss.breakpoint, step.row, step.index
        at = step.prompt.positions[miss.at]
        if code == "CW111":
            message = (
                f"started at {step.start:g}s, before the response that writes this prefix had "
                "begun: both requests pay the write"
            )
            out[code] = _finding(code, message, row, i, bp.path)
        elif code == "CW110":
            gap = step.start - miss.earlier.start
            message = f"the cache entry for {bp.path} had expired (TTL {bp.ttl}) by {step.start:g}s"
            advice = ttl_advice(step.prompt, bp.ttl, gap)
            out[code] = _finding(code, message, row, i, bp.path, advice)
        elif code == "CW104":
            message = (
                f"the previous write at {at.path} is {bp.position - at.index + 1} positions "
                f"before the breakpoint at {bp.path}; the lookback checks {LOOKBACK}"
                if bp.position >= at.index
                else f"the previous write at {at.path} is after the last breakpoint "
                f"({bp.path}): no lookback reaches it"
            )
            advice = lookback_advice(at.path, LOOKBACK)
            out[code] = _finding(code, message, row, i, bp.path, advice)
    return list(out.values())


def to_sarif(findings: Sequence[Finding]) -> dict[str, Any]:
    """SARIF 2.1.0, for code-scanning UIs."""
    level = {"error": "error", "warning": "warning", "info": "note"}
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "cachewise",
                        "version": __version__,
                        "informationUri": "https://pypi.org/project/cachewise/",
                        "rules": [
                            {
                                "id": code,
                                "name": title.replace(" ", "-"),
                                "shortDescription": {"text": title},
                                "help": {"text": fix},
                                "defaultConfiguration": {"level": level[sev]},
                            }
                            for code, (sev, title, fix) in RULES.items()
                        ],
                    }
                },
                "results": [
                    {
                        "ruleId": f.rule,
                        "level": level[f.severity],
                        "message": {"text": f"{f.message}. {f.suggestion}"},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": f.file},
                                    "region": {"startLine": f.line},
                                },
                                "logicalLocations": [
                                    {"fullyQualifiedName": f.path, "kind": "member"}
                                ],
                            }
                        ],
                    }
                    for f in findings
                ],
            }
        ],
    }
