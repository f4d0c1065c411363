"""Malformed bodies are the API's 400, with its field path and words, in every front end: the
parser (and so lint, plan, wrap and run) and the emulator, never an exception from deep inside."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest

from cachewise import Engine, InvalidRequest, parse_request
from cachewise.server.app import create_app
from cachewise.testing import TEST_CONFIG
from cachewise.validate import UNPAIRED_SURROGATE
from conftest import CC, block, request, text, tool

FORCED = {
    **request(tools=[tool("lookup")], tool_choice={"type": "tool", "name": "lookup"}),
}

Edit = Callable[[dict[str, Any]], None]


def at(path: str, value: Any) -> Edit:
    """Set the value at a dotted path (creating nothing: the path must exist up to its parent)."""

    def edit(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return edit


def user(*blocks: dict[str, Any]) -> Edit:
    return at("messages", [{"role": "user", "content": list(blocks)}])


# (what, edit, the API's message or the start of it); the texts are the API's where one was seen.
CASES: list[tuple[str, Edit, str]] = [
    (
        "a tool_result's inner text is a number",
        user(
            {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": 12}]}
        ),
        "messages.0.content.0.tool_result.content.0.text.text: Input should be a valid string",
    ),
    (
        "a text document's data is a number",
        user(
            {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": 3.5},
            }
        ),
        "messages.0.content.0.document.source.text.data: Input should be a valid string",
    ),
    ("no messages", at("messages", []), "messages: at least one message is required"),
    (
        "max_tokens far beyond any model",
        at("max_tokens", 10**30),
        "max_tokens: 1000000000000000000000000000000 > 2147483647, which is the maximum",
    ),
    ("max_tokens negative", at("max_tokens", -1), "max_tokens: must be greater than or equal to 0"),
    (
        "a forced choice without tools",
        at("tool_choice", {"type": "any"}),
        "tool_choice.any: may only be specified while providing tools",
    ),
    (
        "a forced tool that is not there",
        lambda b: b.update(tools=[tool("lookup")], tool_choice={"type": "tool", "name": "find"}),
        "Tool 'find' not found in provided tools",
    ),
    (
        "speed of the wrong type",
        at("speed", ["fast"]),
        "speed: Input should be 'standard' or 'fast'",
    ),
    (
        "inference_geo an object",
        at("inference_geo", {}),
        "inference_geo: Input should be a valid string",
    ),
    (
        "inference_geo unknown",
        at("inference_geo", "mars"),
        "inference_geo: must be one of ['global', 'us']",
    ),
    (
        "image data that is not base64",
        user(
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": "%%%"},
            }
        ),
        "messages.0.content.0.image.source.base64.data: invalid base64 data",
    ),
    (
        "an image source that is a number",
        user({"type": "image", "source": 5}),
        "messages.0.content.0.image.source: Input does not match the expected shape.",
    ),
    (
        "tool_result content that is a number",
        user({"type": "tool_result", "tool_use_id": "t1", "content": 5}),
        "messages.0.content.0.tool_result.content: Input should be a valid array",
    ),
    (
        "tool_use input that is a list",
        at(
            "messages",
            [
                {"role": "user", "content": "Q"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "n", "input": [1]}],
                },
            ],
        ),
        "messages.1.content.0.tool_use.input: Input should be an object",
    ),
    (
        "a thinking block in a user turn",
        user({"type": "thinking", "thinking": "hmm", "signature": "s"}),
        "messages.0.content.0: `thinking` blocks may only appear in assistant messages",
    ),
    (
        "citations that are a number",
        user(
            {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": "d"},
                "citations": 5,
            }
        ),
        "messages.0.content.0.document.citations: Input should be an object",
    ),
    (
        "a schema whose required names are objects",
        at(
            "tools",
            [{**tool("lookup"), "input_schema": {"type": "object", "required": [{"a": 1}]}}],
        ),
        "tools.0.custom.input_schema: JSON schema is invalid.",
    ),
    ("stream that is a string", at("stream", "yes"), "stream: Input should be a valid boolean"),
    ("system that is a number", at("system", 5), "system: Input should be a valid array"),
    ("a temperature out of range", at("temperature", 2), "temperature: range: 0..1"),
    (
        "metadata with extra fields",
        at("metadata", {"who": 1}),
        "metadata.who: Extra inputs are not permitted",
    ),
    (
        "a role that does not exist",
        at("messages", [{"role": "bot", "content": "x"}]),
        'messages: Unexpected role "bot"',
    ),
    ("a block without a type", user({"text": "x"}), "messages.0.content.0.type: Field required"),
    (
        "an empty text block",
        user({"type": "text", "text": ""}),
        "messages: text content blocks must be non-empty",
    ),
    (
        "two tools of one name",
        at("tools", [tool("lookup"), tool("lookup")]),
        "tools: Tool names must be unique.",
    ),
    (
        "an unpaired surrogate in tool_choice",
        lambda b: b.update(tools=[tool("lookup")], tool_choice={"type": "tool", "name": "\ud800"}),
        "Tool '\ud800' not found",
    ),
    (
        "an unpaired surrogate in a forced tool's name",
        lambda b: b.update(tools=[tool("\ud800")], tool_choice={"type": "tool", "name": "\ud800"}),
        "The request body is not valid JSON: no low surrogate in string",
    ),
    (
        "an unpaired surrogate in the text",
        at("system", "You are \ud800 terse."),
        "The request body is not valid JSON: no low surrogate in string",
    ),
]


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": [value]}
    return value


@pytest.mark.parametrize(("what", "edit", "message"), CASES, ids=[c[0] for c in CASES])
def test_the_parser_rejects_it_as_the_api_does(what: str, edit: Edit, message: str) -> None:
    body = request(system=[block(text(200, "v"), CC)])
    edit(body)
    with pytest.raises(InvalidRequest) as err:
        parse_request(body)
    assert err.value.message.startswith(message), err.value.message
    assert err.value.status == 400 and err.value.path and err.value.path.startswith("/")


def test_a_body_nested_thousands_deep_is_a_400_not_a_recursion_error() -> None:
    body = request(tools=[{**tool("deep"), "input_schema": {"type": "object", "x": nested(5000)}}])
    with pytest.raises(InvalidRequest, match="nested too deeply"):
        parse_request(body)


@pytest.fixture
def asgi() -> Iterator[httpx2.Client]:
    transport = httpx2.ASGITransport(app=create_app(TEST_CONFIG))
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    import asyncio

    class Sync:
        """A thin synchronous face over the async ASGI transport, for table-driven tests."""

        def post(self, path: str, content: bytes) -> httpx2.Response:
            async def go() -> httpx2.Response:
                async with httpx2.AsyncClient(
                    transport=transport, base_url="http://127.0.0.1"
                ) as c:
                    return await c.post(path, content=content, headers=headers)

            return asyncio.run(go())

    yield Sync()  # type: ignore[misc]


@pytest.mark.parametrize(("what", "edit", "message"), CASES, ids=[c[0] for c in CASES])
def test_the_emulator_answers_the_api_400_and_writes_nothing(
    asgi: Any, what: str, edit: Edit, message: str
) -> None:
    body = request(system=[block(text(200, "v"), CC)])
    edit(body)
    raw = json.dumps(body).encode()
    if b"\\ud800" in raw:  # the body's JSON itself is refused, before any field is read
        message = UNPAIRED_SURROGATE
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        response = asgi.post(path, raw)
        assert response.status_code == 400, (path, response.text)
        error = response.json()
        assert error["type"] == "error" and error["request_id"]
        assert error["error"]["type"] == "invalid_request_error"
        assert error["error"]["message"].startswith(message)
    # nothing was written for a request that failed
    assert asgi.post("/v1/messages/count_tokens", json.dumps(request()).encode()).status_code == 200


def test_a_valid_body_still_parses_after_every_check() -> None:
    body = copy.deepcopy(FORCED)
    body["messages"] = [
        {
            "role": "user",
            "content": [
                block("Q"),
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "t", "signature": "s"},
                {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": "x"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [block("found")],
                    "is_error": False,
                }
            ],
        },
    ]
    body.update(metadata={"user_id": "u1"}, stop_sequences=["END"], temperature=0.3, top_k=5)
    assert Engine().account(parse_request(body), now=0).usage.prompt_tokens > 0
