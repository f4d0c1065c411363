"""The hardening contract, checked on one body: every face ends it in the API's own 4xx, a clean
error that says where, or success; never a 500, another exception, or a cache write for a request
that then fails.

Each check returns the outcome's name (for counting) and raises `Breach` when the contract does
not hold; any other exception escaping a check is a breach too (the caller says so). Shared by
tests/test_fuzz.py and bench/fuzz.py.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import httpx2

from cachewise import Engine, InputError, InvalidRequest, UnknownModel, lint, parse_request, plan
from cachewise.engine import violations
from cachewise.lint import RULES
from cachewise.server.app import create_app
from cachewise.testing import TEST_CONFIG
from fuzzing import wire

__all__ = [
    "Breach",
    "check_app",
    "check_core",
    "check_messages",
    "check_route",
    "emulator_client",
    "plain_json",
]

HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01", "content-type": "application/json"}
# A request that writes an entry, sent before the body under test, so that a request answered
# 4xx has something it could wrongly read, refresh or overwrite.
WARM = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 8,
    "system": [{"type": "text", "text": "lantern " * 3000, "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": "hi"}],
}


class Breach(AssertionError):
    """A contract breach: what was answered, and why that is not allowed."""


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise Breach(what)


def engine_state(engine: Engine) -> Any:
    """Everything a request could change in the engine: entries, their queue, its dice."""
    return (copy.deepcopy(engine.entries), len(engine._forget_queue), engine._rng.getstate())


def plain_json(value: Any) -> bool:
    """Whether `value` is strict JSON a client library would send unchanged: no NaN or
    infinity, no lone surrogate, not nested deeper than any parser reads."""
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode()
    except (ValueError, RecursionError, UnicodeEncodeError):
        return False
    stack, depth = [(value, 0)], 0
    while stack:
        item, d = stack.pop()
        depth = max(depth, d)
        if isinstance(item, dict):
            stack += [(v, d + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, d + 1) for v in item]
    return depth <= 200


# -- in process ----------------------------------------------------------------------------------


def _clean_invalid(exc: InvalidRequest) -> str:
    _require(400 <= exc.status < 500, f"InvalidRequest with status {exc.status}")
    _require(bool(exc.message) and isinstance(exc.message, str), "InvalidRequest without text")
    json.dumps(exc.to_api())  # its body must be writable as the API's error
    return f"{exc.status} {exc.error_type}"


def check_core(body: Any) -> str:
    """parse_request, the engine, lint and plan on `body`; the parse's outcome."""
    try:
        prompt = parse_request(body)
    except InvalidRequest as exc:
        outcome, prompt = _clean_invalid(exc), None
    except UnknownModel:
        outcome, prompt = "404 not_found_error", None
    else:
        outcome = "2xx"
        engine = Engine(eviction_rate=0.2, seed=7)
        engine.account(parse_request(WARM), now=0)
        before = engine_state(engine)
        try:
            engine.account(prompt, now=1, commit=False)
            _require(engine_state(engine) == before, "a dry run changed the engine")
            engine.account(prompt, now=2)
            engine.account(prompt, now=3)  # warm now: the reads
        except InvalidRequest as exc:
            outcome = _clean_invalid(exc)
            _require(engine_state(engine) == before, f"the engine changed for a 4xx: {exc}")
    if isinstance(body, Mapping):
        _check_lint(body)
    _check_plan(body, prompt)
    return outcome


def _check_lint(body: Mapping[str, Any]) -> None:
    try:
        findings = lint(body)
    except InputError as exc:
        _require(exc.file is not None and exc.line is not None, f"InputError unlocated: {exc}")
        return
    for f in findings:
        _require(f.rule in RULES and f.path.startswith("/"), f"odd finding {f}")


def _check_plan(body: Any, prompt: Any) -> None:
    _plan_once(body, prompt, {})
    _plan_once(body, prompt, {"sort_tools": True, "canonical_json": True, "move_volatile": True})


def _plan_once(body: Any, prompt: Any, edits: dict[str, bool]) -> None:
    try:
        planned = plan(body, **edits)
    except (InvalidRequest, UnknownModel) as exc:
        _require(prompt is None, f"plan refused a body that parses: {exc}")
        return
    _require(prompt is not None, "plan accepted a body the parser refuses")
    result = parse_request(planned.request)
    # A plan never makes a request the API accepts one it rejects. It cannot mend what is not a
    # marker (a pre-warm that streams, a whitespace-only text block), so those may stay.
    left = {v.rule for v in violations(result)}
    _require(left <= {v.rule for v in violations(prompt)}, f"the plan breaks {left}")


# -- the emulator --------------------------------------------------------------------------------


def emulator_client(**config: Any) -> tuple[Any, httpx2.AsyncClient]:
    """A fresh emulator app (virtual clock, no latency) and a client calling it in process."""
    app = create_app(replace(TEST_CONFIG, **config))
    transport = httpx2.ASGITransport(app=app)
    # The emulator answers loopback Host names only (DNS rebinding): so the base URL.
    return app, httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1")


def _api_error(r: httpx2.Response) -> str:
    _require(r.status_code < 500, f"{r.status_code}: {r.text[:500]}")
    answer = r.json()
    _require(
        set(answer) == {"type", "error", "request_id"} and answer["type"] == "error",
        f"not the API's error shape: {answer}",
    )
    error = answer["error"]
    _require(set(error) == {"type", "message"}, f"not the API's error shape: {answer}")
    _require(isinstance(error["type"], str) and isinstance(error["message"], str), str(answer))
    _require(r.headers.get("request-id") == answer["request_id"], "request-id header differs")
    return f"{r.status_code} {error['type']}"


async def check_messages(app: Any, body: Any, stream: bool) -> str:
    """The body sent once to /v1/messages, straight into the ASGI app (no HTTP client: the
    long run's cheap face); streamed or not as `stream` says, when it is an object."""
    sent = {**body, "stream": stream} if isinstance(body, dict) else body
    before = engine_state(app.state.emulator.engine)
    status, hdrs, raw = await asgi_call(app, "POST", "/v1/messages", wire(sent))
    r = httpx2.Response(status, headers=hdrs, content=raw)
    if status >= 300:
        outcome = _api_error(r)
        _require(engine_state(app.state.emulator.engine) == before, f"the engine changed: {r.text}")
        return outcome
    if r.headers["content-type"].startswith("text/event-stream"):
        _events(r.text)
        return "2xx stream"
    _message(r.json())
    return "2xx"


async def asgi_call(
    app: Any, method: str, path: str, body: bytes
) -> tuple[int, list[tuple[str, str]], bytes]:
    """One request into an ASGI app, as a loopback client with a key and a version sends it."""
    sent = False
    status, hdrs, chunks = 0, [], []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            hdrs.extend((k.decode("latin-1"), v.decode("latin-1")) for k, v in message["headers"])
        else:
            chunks.append(message.get("body", b""))

    headers = [
        (k.lower().encode(), v.encode()) for k, v in {**HEADERS, "host": "127.0.0.1"}.items()
    ]
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    return status, hdrs, b"".join(chunks)


async def check_route(client: httpx2.AsyncClient, method: str, url: str, body: Any = None) -> str:
    """Any other route (models, a batch by id, the control API), any query or path: an answer
    or the API's error, never a 500."""
    content = None if body is None else wire(body)
    r = await client.request(method, url, content=content, headers=HEADERS)
    if r.status_code >= 300:
        return _api_error(r)
    r.json()
    return "2xx"


def _message(msg: Any) -> None:
    _require(msg["type"] == "message" and msg["role"] == "assistant", f"not a message: {msg}")
    for key in ("input_tokens", "output_tokens", "cache_read_input_tokens"):
        _require(isinstance(msg["usage"][key], int) and msg["usage"][key] >= 0, f"usage {key}")
    for block in msg["content"]:
        _require(block["type"] in ("text", "tool_use"), f"odd block {block}")
        if block["type"] == "tool_use":
            _require(isinstance(block["input"], dict), "tool_use input is not an object")


def _events(text: str) -> None:
    """Every event parses, its data's type is its name, the stream starts and stops as the API's
    does, and each tool_use block's input_json_delta pieces join into a JSON object."""
    names, partial = [], {}
    for chunk in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.split("\n"))
        data = json.loads(lines["data"])
        _require(data["type"] == lines["event"], f"event {lines['event']} holds {data['type']}")
        names.append(lines["event"])
        if data["type"] == "content_block_start" and data["content_block"]["type"] == "tool_use":
            partial[data["index"]] = ""
        if data["type"] == "content_block_delta" and data["delta"]["type"] == "input_json_delta":
            partial[data["index"]] += data["delta"]["partial_json"]
        if data["type"] == "message_start":
            _message({**data["message"], "content": []})
    _require(names[0] == "message_start" and names[-1] == "message_stop", f"events {names}")
    for joined in partial.values():
        _require(isinstance(json.loads(joined), dict), f"input_json_delta joins to {joined!r}")


async def check_app(app: Any, client: httpx2.AsyncClient, body: Any, stream: bool) -> list[str]:
    """The body sent to /v1/messages (as JSON, then streamed or not as `stream` says, the second
    time over what the first wrote), count_tokens and a batch; the outcome of each."""
    state = app.state.emulator
    await client.post("/v1/messages", content=wire(WARM), headers=HEADERS)
    outcomes = []
    for sent in (body, {**body, "stream": stream} if isinstance(body, dict) else body):
        before = engine_state(state.engine)
        r = await client.post("/v1/messages", content=wire(sent), headers=HEADERS)
        if r.status_code >= 300:
            outcomes.append(_api_error(r))
            _require(engine_state(state.engine) == before, f"the engine changed for {r.text}")
        elif r.headers["content-type"].startswith("text/event-stream"):
            _events(r.text)
            outcomes.append("2xx stream")
        else:
            _message(r.json())
            outcomes.append("2xx")
    outcomes.append(await _count_tokens(client, body))
    outcomes.append(await _batch(client, body))
    return outcomes


async def _count_tokens(client: httpx2.AsyncClient, body: Any) -> str:
    r = await client.post("/v1/messages/count_tokens", content=wire(body), headers=HEADERS)
    if r.status_code >= 300:
        outcome = _api_error(r)
    else:
        tokens = r.json()["input_tokens"]
        _require(isinstance(tokens, int) and tokens > 0, f"input_tokens {tokens}")
        outcome = "2xx"
    if plain_json(body):  # what is sent as it is must get the parser's own verdict
        try:
            expected = f"2xx {parse_request(body).total_tokens}"
        except InvalidRequest as exc:
            expected = f"{exc.status} {exc.error_type}"
        except UnknownModel:
            expected = "404 not_found_error"
        got = f"2xx {r.json()['input_tokens']}" if outcome == "2xx" else outcome
        _require(got == expected, f"count_tokens answered {got}, the parser {expected}")
    return "count_tokens " + outcome


async def _batch(client: httpx2.AsyncClient, body: Any) -> str:
    requests = [{"custom_id": "one", "params": body}, {"custom_id": "two", "params": body}]
    r = await client.post(
        "/v1/messages/batches", content=wire({"requests": requests}), headers=HEADERS
    )
    if r.status_code >= 300:
        return "batch " + _api_error(r)
    batch = r.json()
    for _ in range(1000):
        if batch["processing_status"] == "ended":
            break
        await asyncio.sleep(0)
        batch = (await client.get(f"/v1/messages/batches/{batch['id']}", headers=HEADERS)).json()
    _require(batch["processing_status"] == "ended", "the batch never ended")
    r = await client.get(f"/v1/messages/batches/{batch['id']}/results", headers=HEADERS)
    kinds = []
    for line in r.text.splitlines():
        result = json.loads(line)["result"]
        if result["type"] == "errored":
            error = result["error"]["error"]
            # api_error is the batch's catch-all for an exception nobody foresaw.
            _require(error["type"] != "api_error", f"a batch request crashed: {error}")
            kinds.append(f"errored {error['type']}")
        else:
            _require(result["type"] == "succeeded", f"result {result}")
            _message(result["message"])
            kinds.append("succeeded")
    return "batch " + "/".join(sorted(set(kinds)))
