"""The emulator's replies: a deterministic assistant message in the API's `Message` shape, and the
same message as the API's server-sent events."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from ..engine import Account
from ..request import Prompt
from ..tokens import Tokenizer

__all__ = ["Reply", "build_reply", "sse_events"]


class Reply:
    """Content, stop reason and output tokens of one emulated response."""

    def __init__(self, content: list[dict[str, Any]], stop_reason: str, output_tokens: int) -> None:
        self.content = content
        self.stop_reason = stop_reason
        self.output_tokens = output_tokens


def build_reply(body: Mapping[str, Any], prompt: Prompt, tokenizer: Tokenizer) -> Reply:
    """What the emulated model answers: the same answer for the same request, every time."""
    version = prompt.model.framing.ctok_version
    max_tokens = int(body.get("max_tokens") or 0)
    if max_tokens == 0:
        return Reply([], "max_tokens", 0)
    digest = prompt.positions[-1].prefix_hash[:12] if prompt.positions else "empty"
    forced = _forced_tool(body)
    if forced is not None:
        schema = forced.get("input_schema")  # a server tool's is not checked: any value
        block = {
            "type": "tool_use",
            "id": f"toolu_emu{digest}",
            "name": forced["name"],
            "input": _example_input(schema if isinstance(schema, dict) else {}),
        }
        tokens = (
            prompt.model.framing.output_extra
            + tokenizer.count(forced["name"], version)
            + tokenizer.count(json.dumps(block["input"]), version)
        )
        return Reply([block], "tool_use", tokens)
    extra = prompt.model.framing.output_extra  # recorded: output_tokens = C(text) + 3
    text = f"Emulated reply {digest}: cachewise read {prompt.total_tokens} input tokens."
    tokens = tokenizer.count(text, version) + extra
    if tokens > max_tokens:
        words = text.split(" ")
        while words and tokenizer.count(" ".join(words), version) + extra > max_tokens:
            words.pop()
        text = " ".join(words)
        return Reply([{"type": "text", "text": text}], "max_tokens", max_tokens)
    return Reply([{"type": "text", "text": text}], "end_turn", tokens)


def message(
    msg_id: str,
    model: str,
    reply: Reply,
    account: Account,
    *,
    service_tier: str = "standard",
    inference_geo: str = "global",
    speed: str = "standard",
) -> dict[str, Any]:
    """The API's `Message` object."""
    usage = account.usage.to_api()
    usage["output_tokens"] = reply.output_tokens
    usage["service_tier"] = service_tier
    usage["inference_geo"] = inference_geo
    usage["speed"] = speed
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": reply.content,
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def sse_events(msg: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The message as the streaming API sends it: message_start (with the full usage, including
    `cache_creation`), a ping, each block as start/deltas/stop, message_delta with cumulative
    usage, message_stop."""
    usage = msg["usage"]
    start_usage = {**usage, "output_tokens": min(1, usage["output_tokens"])}
    yield (
        "message_start",
        {
            "type": "message_start",
            "message": {
                **msg,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        },
    )
    yield "ping", {"type": "ping"}
    for index, block in enumerate(msg["content"]):
        if block["type"] == "text":
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            for piece in _chunks(block["text"]):
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
        else:
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {**block, "input": {}},
                },
            )
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {
                        "type": "input_json_delta",
                        "partial_json": json.dumps(block["input"]),
                    },
                },
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
            "usage": {
                "input_tokens": usage["input_tokens"],
                "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                "cache_read_input_tokens": usage["cache_read_input_tokens"],
                "output_tokens": usage["output_tokens"],
            },
        },
    )
    yield "message_stop", {"type": "message_stop"}


def encode_event(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _chunks(text: str, size: int = 24) -> Iterator[str]:
    for i in range(0, len(text), size):
        yield text[i : i + size]


def _forced_tool(body: Mapping[str, Any]) -> dict[str, Any] | None:
    choice = body.get("tool_choice")
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and "name" in t]
    if not isinstance(choice, dict) or not tools:
        return None
    if choice.get("type") == "tool":
        return next((t for t in tools if t["name"] == choice.get("name")), None)
    if choice.get("type") == "any":
        return tools[0]
    return None


def _example_input(schema: Mapping[str, Any]) -> dict[str, Any]:
    """An input that satisfies a simple JSON schema's required properties."""
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    examples = {
        "string": "example",
        "integer": 1,
        "number": 1.0,
        "boolean": True,
        "array": [],
        "object": {},
    }
    out: dict[str, Any] = {}
    required = schema.get("required")
    for name in required if isinstance(required, list) else []:
        if not isinstance(name, str):
            continue  # a malformed schema (the parser rejects it first): nothing to fill
        spec = props.get(name)
        spec = spec if isinstance(spec, dict) else {}
        # The parser does not check a property's own schema: an enum may be anything.
        enum = spec.get("enum")
        enum = [v for v in enum if _json_safe(v)] if isinstance(enum, list) else []
        if enum:
            out[name] = enum[0]
        else:
            out[name] = examples.get(str(spec.get("type", "string")), "example")
    return out


def _json_safe(value: Any) -> bool:
    """A value the reply can carry: JSON has no NaN or infinity."""
    try:
        json.dumps(value, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return False
    return True


def request_id(seed: str) -> str:
    return "req_emu" + hashlib.sha256(seed.encode()).hexdigest()[:24]
