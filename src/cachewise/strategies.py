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
- `pydantic-ai`: pydantic-ai-slim 2.68.0 with `anthropic_cache`: the request's message markers
  (CachePoints), instructions, the last tool not deferred, automatic tail, 5m; a CachePoint on
  the last block replaces the automatic marker; the oldest message markers trimmed to fit 4;
  earlier TTLs raised to the longest after them.
- `pydantic-ai-messages`: the same with `anthropic_cache_messages`: a 5m marker on the last
  block instead of the automatic one.
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


# pydantic-ai's rules, as pydantic-ai-slim 2.68.0 applies them (models/anthropic): the blocks a
# breakpoint may sit on, and the order the API reads breakpoints in.
_PYDANTIC_CACHEABLE = (  # a tuple: see `body.UNMARKABLE`
    "text",
    "tool_use",
    "server_tool_use",
    "image",
    "tool_result",
    "document",
    "mcp_tool_result",
)


def _pydantic_tail(out: dict[str, Any]) -> dict[str, Any] | None:
    """The block automatic caching would mark: the last cacheable (or already marked) block of
    the last message."""
    for block in reversed(last_message_blocks(out) or []):
        if isinstance(block, dict) and (
            "cache_control" in block or block.get("type") in _PYDANTIC_CACHEABLE
        ):
            return block
    return None


def _pydantic_ai(body: Mapping[str, Any], *, tail: bool) -> dict[str, Any]:
    # The client's markers in messages are its CachePoints, kept; then the instructions (taken
    # as all static: the last system block) and the tool definitions (the last tool that is not
    # deferred), 5m; then the conversation: the top-level automatic marker (`anthropic_cache`),
    # or with `tail` a 5m marker on the last block (`anthropic_cache_messages`).
    out = _fresh(body)
    if "messages" in body:
        out["messages"] = copy_json(body["messages"])
    system = block_list(out, "system") or []
    mark_last(system)
    tools = tool_list(out)
    mark_last([t for t in tools if isinstance(t, dict) and not t.get("defer_loading")])
    last = _pydantic_tail(out)
    if tail and last is not None and "cache_control" not in last:
        last["cache_control"] = cache_control()
    # A CachePoint on the block automatic caching would mark wins: the top-level marker goes.
    automatic = not tail and not (last is not None and "cache_control" in last)
    # Four at most: tool markers and the system one are kept, the oldest message markers go.
    carriers = [b for b in [*tools, *system] if isinstance(b, dict) and "cache_control" in b]
    budget = MAX_BREAKPOINTS - automatic - len(carriers)
    messages = [m for m in out.get("messages") or [] if isinstance(m, dict)]
    marked = [
        b
        for m in messages
        if isinstance(m.get("content"), list)
        for b in m["content"]
        if isinstance(b, dict) and "cache_control" in b
    ]
    for block in marked[: max(0, len(marked) - max(budget, 0))]:
        del block["cache_control"]
    carriers += marked[-budget:] if budget > 0 else []
    # A longer TTL may not follow a shorter one: earlier breakpoints are raised to the longest
    # after them, the automatic one (5m) last.
    longest = "5m"
    for block in reversed(carriers):
        ttl = (
            block["cache_control"].get("ttl", "5m")
            if isinstance(block["cache_control"], dict)
            else "5m"
        )
        if ttl == "1h":
            longest = "1h"
        elif longest == "1h":
            block["cache_control"] = cache_control("1h")
    if automatic:
        out["cache_control"] = cache_control()
    return out


def pydantic_ai(body: Mapping[str, Any], seen: Seen, now: float | None = None) -> dict[str, Any]:
    return _pydantic_ai(body, tail=False)


def pydantic_ai_messages(
    body: Mapping[str, Any], seen: Seen, now: float | None = None
) -> dict[str, Any]:
    return _pydantic_ai(body, tail=True)


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
    "pydantic-ai-messages": pydantic_ai_messages,
    "spring-system-and-tools": spring_system_and_tools,
    "spring-conversation-history": spring_conversation_history,
    "cachewise": cachewise_plan,
}
