"""Caching strategies for `cachewise simulate`: what each tool would send, given a request.

Each strategy is a small function from a request body (and the trace rows it has seen so far,
`{"started_at", "request"}`) to the body it would send. The peers' strategies follow their
default behaviour in their source and documentation as of late 2026 (docs/simulate.md):

- `none`: no caching, every marker removed.
- `as-is`: the trace's own markers.
- `seed`: one 5m breakpoint on the last system block (the seed article's pattern).
- `auto`: Anthropic's top-level automatic caching, 5m.
- `litellm`: LiteLLM's default injection points: the last system block and the last message's
  last block, 5m; they stand down when the request already carries a marker.
- `langchain`: LangChain's AnthropicPromptCachingMiddleware (2026-03): last system block, last
  tool, automatic tail, 5m, on top of the request's own markers.
- `pydantic-ai`: the request's message markers (CachePoints), instructions, the last tool not
  deferred, automatic tail, 5m; oldest message markers trimmed to fit 4.
- `spring-system-and-tools`: Spring AI SYSTEM_AND_TOOLS: last tool and last system block.
- `spring-conversation-history`: Spring AI CONVERSATION_HISTORY (PR #4546, 2.0): last tool, last
  system block, and the text of the last user message that is not a tool round.
- `cachewise`: the planner, online: it sees only the requests before this one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .body import (
    block_list,
    cache_control,
    copy_json,
    fit_markers,
    has_markers,
    last_message_blocks,
    mark_last,
    strip_markers,
    tool_list,
)
from .engine import MAX_BREAKPOINTS
from .plan import HISTORY, plan
from .trace import Row

__all__ = ["STRATEGIES", "Strategy"]

Seen = Sequence[Mapping[str, Any] | Row]  # the rows before this one: trace rows or `Row`s


class Strategy(Protocol):
    """A request, the rows seen before it, and (when known) when it is sent -> what is sent."""

    def __call__(
        self,
        body: Mapping[str, Any],
        seen: Seen,
        now: float | None = None,
    ) -> dict[str, Any]: ...


def _fresh(body: Mapping[str, Any]) -> dict[str, Any]:
    fresh: dict[str, Any] = strip_markers(dict(body))  # new containers: safe to mark
    return fresh


def none(body: Mapping[str, Any], seen: Seen, now: float | None = None) -> dict[str, Any]:
    return _fresh(body)


def as_is(body: Mapping[str, Any], seen: Seen, now: float | None = None) -> dict[str, Any]:
    return dict(body)


def seed(body: Mapping[str, Any], seen: Seen, now: float | None = None) -> dict[str, Any]:
    out = _fresh(body)
    mark_last(block_list(out, "system"))
    return out


def auto(body: Mapping[str, Any], seen: Seen, now: float | None = None) -> dict[str, Any]:
    out = _fresh(body)
    out["cache_control"] = cache_control()
    return out


def litellm(body: Mapping[str, Any], seen: Seen, now: float | None = None) -> dict[str, Any]:
    # The default points stand down when the client marked anything (PRs 33573, 33886).
    if has_markers(body):
        return as_is(body, seen)
    out = _fresh(body)
    mark_last(block_list(out, "system"))
    mark_last(last_message_blocks(out))
    return out


def langchain(body: Mapping[str, Any], seen: Seen, now: float | None = None) -> dict[str, Any]:
    # The middleware adds its three on top of whatever the client marked (more than 4 is a 400).
    out: dict[str, Any] = copy_json(dict(body))
    mark_last(block_list(out, "system"))
    mark_last(tool_list(out))
    out["cache_control"] = cache_control()
    return out


def pydantic_ai(body: Mapping[str, Any], seen: Seen, now: float | None = None) -> dict[str, Any]:
    # The client's markers in messages are its CachePoints, kept; instructions (taken as all
    # static: the marker goes on the last system block), the last tool that is not deferred,
    # and automatic caching; then the oldest CachePoints are dropped to fit.
    out = _fresh(body)
    if "messages" in body:
        out["messages"] = copy_json(body["messages"])
    mark_last(block_list(out, "system"))
    mark_last([t for t in tool_list(out) if isinstance(t, dict) and not t.get("defer_loading")])
    out["cache_control"] = cache_control()
    return fit_markers(out, MAX_BREAKPOINTS)


def spring_system_and_tools(
    body: Mapping[str, Any], seen: Seen, now: float | None = None
) -> dict[str, Any]:
    out = _fresh(body)
    mark_last(tool_list(out))
    mark_last(block_list(out, "system"))
    return out


def spring_conversation_history(
    body: Mapping[str, Any], seen: Seen, now: float | None = None
) -> dict[str, Any]:
    # Tools and system are eligible too; in messages, the text of the last user message that
    # is not a tool round (tool results are a message type of their own, not cached by default).
    out = spring_system_and_tools(body, seen)
    for message in reversed(out.get("messages") or []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        blocks = block_list(message, "content") or []
        texts = [b for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
        if texts:
            mark_last(texts)
            break
    return out


def cachewise_plan(body: Mapping[str, Any], seen: Seen, now: float | None = None) -> dict[str, Any]:
    return plan(_fresh(body), history=list(seen)[-HISTORY:], now=now).request


STRATEGIES: dict[str, Strategy] = {
    "none": none,
    "as-is": as_is,
    "seed": seed,
    "auto": auto,
    "litellm": litellm,
    "langchain": langchain,
    "pydantic-ai": pydantic_ai,
    "spring-system-and-tools": spring_system_and_tools,
    "spring-conversation-history": spring_conversation_history,
    "cachewise": cachewise_plan,
}
