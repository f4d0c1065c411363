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

from .plan import plan
from .request import content_blocks, copy_json, has_markers, marker_holders, strip_markers
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


CC: dict[str, Any] = {"type": "ephemeral"}


def _blocks(body: dict[str, Any], key: str) -> list[dict[str, Any]] | None:
    """The block list of `system` or a message (a string becomes one text block)."""
    value = body.get(key)
    if isinstance(value, str):  # as the parser reads it: "" is no block at all
        body[key] = [{"type": "text", "text": value}] if value else []
    return body.get(key) if isinstance(body.get(key), list) else None


def _mark_last(blocks: list[Any] | None) -> bool:
    if blocks:
        for block in reversed(blocks):
            if isinstance(block, dict) and block.get("type") not in (
                "thinking",
                "redacted_thinking",
            ):
                if block.get("type") == "text" and not block.get("text"):
                    continue
                block["cache_control"] = dict(CC)
                return True
    return False


def _tools(body: dict[str, Any]) -> list[Any]:
    tools = body.get("tools")
    return tools if isinstance(tools, list) else []


def _last_message_blocks(body: dict[str, Any]) -> list[Any] | None:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    return _blocks(messages[-1], "content") if messages else None


def _fresh(body: Mapping[str, Any]) -> dict[str, Any]:
    fresh: dict[str, Any] = strip_markers(dict(body))  # new containers: safe to mark
    return fresh


def none(body: Mapping[str, Any], seen: Seen, now: float | None = None) -> dict[str, Any]:
    return _fresh(body)


def as_is(body: Mapping[str, Any], seen: Seen, now: float | None = None) -> dict[str, Any]:
    return dict(body)


def seed(body: Mapping[str, Any], seen: Seen, now: float | None = None) -> dict[str, Any]:
    out = _fresh(body)
    _mark_last(_blocks(out, "system"))
    return out


def auto(body: Mapping[str, Any], seen: Seen, now: float | None = None) -> dict[str, Any]:
    out = _fresh(body)
    out["cache_control"] = dict(CC)
    return out


def litellm(body: Mapping[str, Any], seen: Seen, now: float | None = None) -> dict[str, Any]:
    # The default points stand down when the client marked anything (PRs 33573, 33886).
    if has_markers(body):
        return as_is(body, seen)
    out = _fresh(body)
    _mark_last(_blocks(out, "system"))
    _mark_last(_last_message_blocks(out))
    return out


def langchain(body: Mapping[str, Any], seen: Seen, now: float | None = None) -> dict[str, Any]:
    # The middleware adds its three on top of whatever the client marked (more than 4 is a 400).
    out: dict[str, Any] = copy_json(dict(body))
    _mark_last(_blocks(out, "system"))
    _mark_last(_tools(out))
    out["cache_control"] = dict(CC)
    return out


def pydantic_ai(body: Mapping[str, Any], seen: Seen, now: float | None = None) -> dict[str, Any]:
    # The client's markers in messages are its CachePoints, kept; instructions (taken as all
    # static: the marker goes on the last system block), the last tool that is not deferred,
    # and automatic caching; then the oldest CachePoints are dropped to fit.
    out = _fresh(body)
    if "messages" in body:
        out["messages"] = copy_json(body["messages"])
    _mark_last(_blocks(out, "system"))
    _mark_last([t for t in _tools(out) if isinstance(t, dict) and not t.get("defer_loading")])
    out["cache_control"] = dict(CC)
    return _fit(out)


def spring_system_and_tools(
    body: Mapping[str, Any], seen: Seen, now: float | None = None
) -> dict[str, Any]:
    out = _fresh(body)
    _mark_last(_tools(out))
    _mark_last(_blocks(out, "system"))
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
        blocks = _blocks(message, "content") or []
        texts = [b for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
        if texts:
            _mark_last(texts)
            break
    return out


def cachewise_plan(body: Mapping[str, Any], seen: Seen, now: float | None = None) -> dict[str, Any]:
    return plan(_fresh(body), history=list(seen)[-50:], now=now).request


def _fit(body: dict[str, Any]) -> dict[str, Any]:
    """Drop the oldest message markers until the markers (automatic one included) fit in 4."""

    def count(value: Any) -> int:
        return sum(holder.get("cache_control") is not None for holder in marker_holders(value))

    for message in body.get("messages") or []:
        if count(body) <= 4:
            break
        for holder in content_blocks([message]):
            holder.pop("cache_control", None)
    return body


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
