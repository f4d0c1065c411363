"""Reading and editing Messages API request bodies: JSON in, JSON out.

The API reads `cache_control` as a marker on a few kinds of objects only (the body, tools, system
blocks, content blocks, and the inner blocks of tool results and documents); anywhere else, in a
tool's schema or a tool_use input, a key of that name is content. Every edit here follows that
map, and none parses, counts tokens or decides what the cache does: `request` describes a body,
the engine judges it, and the planner and the strategies edit it with these functions.

Editing functions named `with_...` return a copy and leave their argument alone; those that
take a block list or a fresh copy (`mark_last`, `fit_markers`, `block_list`) edit it in place.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from .errors import InvalidRequest
from .validate import MAX_DEPTH, TOO_DEEP
from .volatile import find_volatile

__all__ = [
    "TTL",
    "UNMARKABLE",
    "block_holders",
    "block_list",
    "cache_control",
    "compact_encoder",
    "content_blocks",
    "copy_json",
    "fit_markers",
    "has_markers",
    "last_message_blocks",
    "mark_last",
    "markable",
    "marker_holders",
    "strip_markers",
    "text_at",
    "text_blocks",
    "tool_list",
    "value_at",
    "volatile_system",
    "with_marker",
    "with_sorted_keys",
    "with_sorted_tools",
    "with_volatile_last",
]

TTL = Literal["5m", "1h"]

# Blocks that cannot carry cache_control themselves (cached only along with the turn around them).
# Tuples, not sets, for the kinds of blocks: a body's "type" may be any JSON value (an object,
# in a hostile one), and `in` a tuple compares it where `in` a set would hash it and raise.
UNMARKABLE = ("thinking", "redacted_thinking")


# -- reading -------------------------------------------------------------------------------------


def text_at(body: Mapping[str, Any], pointer: str) -> tuple[str, str]:
    """The text a position (JSON Pointer) of a request body holds, and the pointer to it."""
    node: Any = body
    for part in pointer.strip("/").split("/"):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, str) and part == "0":
            return node, pointer.rsplit("/", 1)[0]  # a string `system` or `content`
        else:
            return "", pointer
    if isinstance(node, str):
        return node, pointer
    if isinstance(node, dict):
        for key in ("text", "description", "content"):
            if isinstance(node.get(key), str):
                return node[key], f"{pointer}/{key}"
    return "", pointer


def value_at(body: Mapping[str, Any], pointer: str) -> Any:
    """The value at a JSON Pointer of a request body, or None."""
    node: Any = body
    for part in pointer.strip("/").split("/"):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return None
    return node


def tool_list(body: Mapping[str, Any]) -> list[Any]:
    """The body's tool definitions (none when absent or not a list)."""
    tools = body.get("tools")
    return tools if isinstance(tools, list) else []


def text_blocks(value: Any) -> Any:
    """The blocks a `system` or `content` value stands for: a string is one text block ("" is
    none, as the API renders it); anything else is returned as it is."""
    if isinstance(value, str):
        return [{"type": "text", "text": value}] if value else []
    return value


def block_list(holder: dict[str, Any], key: str) -> list[Any] | None:
    """The block list under `key` (`system`, or a message's `content`), a string made its text
    blocks in place; None when there is no list."""
    if isinstance(holder.get(key), str):
        holder[key] = text_blocks(holder[key])
    value = holder.get(key)
    return value if isinstance(value, list) else None


def last_message_blocks(body: dict[str, Any]) -> list[Any] | None:
    """The block list of the last message (see `block_list`), or None."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    return block_list(messages[-1], "content") if messages else None


def volatile_system(body: Mapping[str, Any]) -> dict[str, str]:
    """The system blocks whose text looks volatile: pointer -> the kind of content found."""
    system = body.get("system")
    blocks = [{"text": system}] if isinstance(system, str) else system
    found: dict[str, str] = {}
    for j, block in enumerate(blocks if isinstance(blocks, list) else []):
        hit = (
            find_volatile(block["text"])
            if isinstance(block, dict) and isinstance(block.get("text"), str)
            else None
        )
        if hit:
            found[f"/system/{j}"] = hit.kind
    return found


# -- markers -------------------------------------------------------------------------------------


def marker_holders(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every object of a request body where the API reads `cache_control` as a marker: the body
    itself, tools, system blocks, message content blocks, and the inner blocks of tool results and
    documents. A key of that name anywhere else (a tool's schema, a tool_use input) is content."""
    yield body
    for key in ("tools", "system"):
        blocks = body.get(key)
        for block in blocks if isinstance(blocks, list) else []:
            yield from block_holders(block)
    if isinstance(body.get("messages"), list):
        yield from content_blocks(body["messages"])


def content_blocks(messages: list[Any]) -> Iterator[dict[str, Any]]:
    """Every content block of the messages, the inner blocks of tool results and documents too."""
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            yield from block_holders(block)


def block_holders(block: Any) -> Iterator[dict[str, Any]]:
    """A block (or tool) and the inner blocks of its content that may carry a marker."""
    if not isinstance(block, dict):
        return
    yield block
    inner = block.get("content") if block.get("type") == "tool_result" else None
    if block.get("type") == "document" and isinstance(block.get("source"), dict):
        inner = block["source"].get("content")
    if isinstance(inner, list):
        yield from (b for b in inner if isinstance(b, dict))


def has_markers(body: Mapping[str, Any]) -> bool:
    """Whether a request body carries a cache marker anywhere the API reads one."""
    return any(holder.get("cache_control") is not None for holder in marker_holders(dict(body)))


def markable(block: Mapping[str, Any]) -> bool:
    """Whether the API accepts a marker on this block: not thinking, and not empty text."""
    kind = block.get("type")
    return kind not in UNMARKABLE and not (kind == "text" and not block.get("text"))


def cache_control(ttl: TTL = "5m") -> dict[str, Any]:
    """A fresh `cache_control` value with this TTL (5m, the API's default, is left implicit)."""
    return {"type": "ephemeral", "ttl": "1h"} if ttl == "1h" else {"type": "ephemeral"}


# -- edits ---------------------------------------------------------------------------------------


def compact_encoder(*, allow_nan: bool) -> Callable[[Any], str]:
    """`json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=allow_nan)`, by one
    C encoder made once: `JSONEncoder.encode` makes a new one per call, most of what a small
    value costs. It keeps no record of the containers it is inside, so a value that contains
    itself recurses until Python stops it (a RecursionError): give it JSON-shaped data."""
    from json import encoder

    plain = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=allow_nan)
    make = getattr(encoder, "c_make_encoder", None)  # CPython's, not in the stubs
    if make is None:  # a Python without the json accelerator
        return plain.encode
    chunks = make(None, plain.default, encoder.encode_basestring, None, ":", ",", False, False,
                  allow_nan)  # fmt: skip
    return lambda value: "".join(chunks(value, 0))


def copy_json(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars): several times faster than
    `copy.deepcopy` on a big request.

    Raises:
        InvalidRequest: nested deeper than the API takes (`validate.MAX_DEPTH`): a hostile
            body is the API's refusal, not a RecursionError.
    """
    return _copy(value, MAX_DEPTH)


_CONTAINERS = (dict, list)  # not a union: `isinstance` with one is twice as slow


def _copy(value: Any, room: int) -> Any:
    if isinstance(value, _CONTAINERS):
        if not room:
            raise InvalidRequest(TOO_DEEP, path="/")
        if isinstance(value, dict):
            return {k: _copy(v, room - 1) for k, v in value.items()}
        return [_copy(v, room - 1) for v in value]
    return value


def strip_markers(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a request body without its cache markers (see `marker_holders`)."""
    out: dict[str, Any] = copy_json(dict(body))
    for holder in marker_holders(out):
        holder.pop("cache_control", None)
    return out


def with_marker(body: Mapping[str, Any], pointer: str, ttl: TTL) -> dict[str, Any]:
    """A copy of `body` with a marker at `pointer`; only the containers on the way are copied."""
    top = dict(body)
    node: Any = top
    for part in pointer.strip("/").split("/"):
        child = node[int(part)] if isinstance(node, list) else node[part]
        child = text_blocks(child)  # the same prompt: a string is its text block
        child = list(child) if isinstance(child, list) else dict(child)
        if isinstance(node, list):
            node[int(part)] = child
        else:
            node[part] = child
        node = child
    node["cache_control"] = cache_control(ttl)
    return top


def mark_last(blocks: list[Any] | None) -> bool:
    """Put a 5m marker on the last markable block of `blocks`, in place; whether there was one."""
    for block in reversed(blocks or []):
        if isinstance(block, dict) and markable(block):
            block["cache_control"] = cache_control()
            return True
    return False


def fit_markers(body: dict[str, Any], limit: int) -> dict[str, Any]:
    """Drop the oldest message markers, in place, until the markers (the automatic one included)
    are at most `limit`."""

    def count() -> int:
        return sum(holder.get("cache_control") is not None for holder in marker_holders(body))

    for message in body.get("messages") or []:
        if count() <= limit:
            break
        for holder in content_blocks([message]):
            holder.pop("cache_control", None)
    return body


# -- opt-in edits (they change the prompt, not only its markers) ---------------------------------


def with_sorted_tools(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with the tool definitions sorted by name."""
    out = dict(body)
    if isinstance(out.get("tools"), list):
        out["tools"] = sorted(
            out["tools"], key=lambda t: str(t.get("name", "")) if isinstance(t, dict) else ""
        )
    return out


def with_sorted_keys(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with the keys sorted inside tool schemas and tool_use inputs."""
    out: dict[str, Any] = copy_json(dict(body))
    for tool in tool_list(out):
        if isinstance(tool, dict) and isinstance(tool.get("input_schema"), dict):
            tool["input_schema"] = _sorted(tool["input_schema"])
    for message in out.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                block["input"] = _sorted(block.get("input"))
    return out


def with_volatile_last(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with the system blocks that look volatile (`volatile_system`) moved after the stable
    ones, in their order; a string system is one block and stays."""
    out = dict(body)
    system, volatile = out.get("system"), volatile_system(out)
    if isinstance(system, list):
        staying = [b for j, b in enumerate(system) if f"/system/{j}" not in volatile]
        moving = [b for j, b in enumerate(system) if f"/system/{j}" in volatile]
        out["system"] = staying + moving
    return out


def _sorted(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True)) if value is not None else value
