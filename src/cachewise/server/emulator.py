"""The emulator: an offline Claude Messages API whose every usage number comes from the engine.

Point the official SDK, curl or an n8n HTTP Request node at it (`base_url=`) to see exactly what
the documented caching rules make of your requests, without a key and without spending money.
These are its Messages, count_tokens, models and control routes; Message Batches are in
`batches`, the state both share in `state`, and `app` puts them together.

The engine is only ever touched from the event loop, between awaits, so each request's dry run
(to size its time to first byte) and its accounting are atomic, and so is `Engine.begin` when its
response starts. Parsing, which counts tokens and can take a while for big prompts, runs in a
worker thread.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..catalog import catalog
from ..errors import InputError, InvalidRequest, UnknownModel
from ..request import Prompt
from ..tokens import default_tokenizer
from .api import (
    ApiError,
    JsonAnswer,
    api_error_response,
    check_body,
    check_version,
    headers,
    read_json,
)
from .replies import build_reply, encode_event, message, sse_events
from .state import EmulatorState

__all__ = ["routes"]


def _model_warning(prompt: Prompt) -> dict[str, str]:
    m = prompt.model
    if m.status == "active":
        return {}
    return {
        "x-cachewise-warning": f"{m.id} is {m.status} on the Claude API; emulated for replaying "
        "recorded traffic"
    }


# -- /v1/messages --------------------------------------------------------------------------------


async def create_message(request: Request) -> Response:
    st: EmulatorState = request.app.state.emulator
    arrival = st.clock.now()
    started = time.monotonic()  # latency is waited in wall time, whichever clock the cache is on
    number = st.next_number()
    rid = st.next_id("req")
    workspace: str | None = None
    try:
        workspace = st.workspace(request)
        version = check_version(request)
        body, prompt = await st.reader.read(request, st.config.max_body_bytes)
        check_body(body, version)
        fault = st.faults.pick(number)
        if fault is not None and fault.kind in ("429", "529", "500"):
            raise _fault_error(fault.kind, fault.param)
        limit_key = (workspace, prompt.model.id)
        if st.limiter is not None:
            # A request the limit refuses must not touch the cache: measure it with a dry run.
            try:
                probe = st.engine.account(prompt, now=arrival, workspace=workspace, commit=False)
            except InvalidRequest as exc:
                raise ApiError(400, exc.error_type, exc.message) from None
            wait = st.limiter.admit(limit_key, arrival, st.metered_input(prompt, probe))
            if wait:
                raise ApiError(
                    429,
                    "rate_limit_error",
                    _RATE_LIMIT_TEXT,
                    {
                        "retry-after": str(max(1, math.ceil(wait))),
                        **st.limiter.headers(limit_key, arrival),
                    },
                )
        # The reply follows from the body alone; a body seen before has the same parse.
        reply = (
            prompt.derived("reply", lambda: build_reply(body, prompt, default_tokenizer()))
            if prompt.body is body
            else build_reply(body, prompt, default_tokenizer())
        )
        # One account: its entries stay pending until we know when its first byte comes, which
        # depends on what it did not read.
        try:
            account = st.engine.account(
                prompt,
                now=arrival,
                workspace=workspace,
                ready_at=math.inf,
                output_tokens=reply.output_tokens,
            )
        except InvalidRequest as exc:
            raise ApiError(400, exc.error_type, exc.message) from None
        slow = fault.param if fault is not None and fault.kind == "slow" else 0.0
        uncached = account.usage.input_tokens + account.usage.cache_creation_input_tokens
        first_byte = st.ttft(uncached, slow)
        st.engine.begin(account, st.clock.ready_at(arrival + first_byte))
    except ApiError as err:
        st.stats.record(err.status)
        return api_error_response(err, rid, workspace)

    if st.limiter is not None:
        st.limiter.charge_output(limit_key, arrival, reply.output_tokens)
    st.stats.record(200, account.usage)
    msg = message(
        st.next_id("msg"),
        prompt.model.id,
        reply,
        account,
        inference_geo=str(body.get("inference_geo") or "global"),
        speed=prompt.speed,
    )
    extra = {**_model_warning(prompt)}
    if st.limiter is not None:
        extra.update(st.limiter.headers(limit_key, arrival))
    hdrs = headers(rid, workspace, extra)
    output_time = st.output_seconds(reply.output_tokens)
    dropped = fault is not None and fault.kind == "drop"
    midstream = fault is not None and fault.kind == "midstream"
    # A stream begins at its first byte, headers included (a client that waits for the headers,
    # as the SDK's stream manager does, has waited for the first byte); a JSON response once it
    # is complete. Either way it has begun once we return, a dropped connection's too.
    stream = bool(body.get("stream"))
    await _sleep_until(started + first_byte + (0.0 if stream else output_time))
    st.engine.begin(account, st.clock.now())
    if stream:
        return StreamingResponse(
            _stream(msg, output_time, midstream=midstream, dropped=dropped),
            media_type="text/event-stream",
            headers={**hdrs, "cache-control": "no-cache"},
        )
    if dropped:
        return _Dropped()
    return JsonAnswer(msg, headers=hdrs)


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def _stream(
    msg: dict[str, Any], output_time: float, *, midstream: bool, dropped: bool
) -> AsyncIterator[bytes]:
    events = list(sse_events(msg))
    deltas = sum(1 for name, _ in events if name == "content_block_delta") or 1
    pace = output_time / deltas
    for name, data in events:
        if name == "content_block_delta":
            if midstream:
                yield encode_event(
                    "error",
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    },
                )
                return
            if dropped:
                raise ConnectionAbortedError("fault injection: connection dropped mid-stream")
            if pace > 0:
                await asyncio.sleep(pace)
        yield encode_event(name, data)


class _Dropped(Response):
    """A response that starts and then breaks off, as a dropped connection looks to a client."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"id":', "more_body": True})
        raise ConnectionAbortedError("fault injection: connection dropped")


_RATE_LIMIT_TEXT = (
    "This request would exceed the rate limit for your organization of input tokens "
    "per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. "
    "You can see the response headers for current usage. Please reduce the prompt "
    "length or the maximum tokens requested, or try again later."
)


def _fault_error(kind: str, param: float) -> ApiError:
    if kind == "429":
        return ApiError(
            429,
            "rate_limit_error",
            _RATE_LIMIT_TEXT,
            {"retry-after": str(max(0, math.ceil(param)))},
        )
    if kind == "529":
        return ApiError(529, "overloaded_error", "Overloaded")
    return ApiError(500, "api_error", "Internal server error")


# -- count_tokens and models ---------------------------------------------------------------------


async def count_tokens(request: Request) -> Response:
    st: EmulatorState = request.app.state.emulator
    rid = st.next_id("req")
    workspace = None
    try:
        workspace = st.workspace(request)
        version = check_version(request)
        body, prompt = await st.reader.read(request, st.config.max_body_bytes)
        check_body(body, version, need_max_tokens=False)
    except ApiError as err:
        return api_error_response(err, rid, workspace)
    return JSONResponse({"input_tokens": prompt.total_tokens}, headers=headers(rid, workspace))


def _model_json(m: Any) -> dict[str, Any]:
    return {
        "type": "model",
        "id": m.id,
        "display_name": m.name,
        "created_at": f"{catalog().as_of}T00:00:00Z",
    }


async def list_models(request: Request) -> Response:
    st: EmulatorState = request.app.state.emulator
    rid = st.next_id("req")
    try:
        workspace = st.workspace(request)
    except ApiError as err:
        return api_error_response(err, rid)
    models = list(catalog().models)
    after, before = request.query_params.get("after_id"), request.query_params.get("before_id")
    ids = [m.id for m in models]
    if after in ids:
        models = models[ids.index(after) + 1 :]
    elif before in ids:
        models = models[: ids.index(before)]
    limit = request.query_params.get("limit", "20")
    n = max(1, min(1000, int(limit))) if limit.isascii() and limit.isdigit() else 20
    page = models[:n]
    return JSONResponse(
        {
            "data": [_model_json(m) for m in page],
            "has_more": len(models) > n,
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
        },
        headers=headers(rid, workspace),
    )


async def get_model(request: Request) -> Response:
    st: EmulatorState = request.app.state.emulator
    rid = st.next_id("req")
    try:
        workspace = st.workspace(request)
        name = request.path_params["model_id"]
        try:
            model = catalog().get(name)
        except UnknownModel:
            raise ApiError(404, "not_found_error", f"model: {name}") from None
    except ApiError as err:
        return api_error_response(err, rid)
    return JSONResponse(_model_json(model), headers=headers(rid, workspace))


# -- control API ---------------------------------------------------------------------------------


async def control(request: Request) -> Response:
    st: EmulatorState = request.app.state.emulator
    rid = st.next_id("req")
    try:
        action = request.path_params["action"]
        now = st.clock.now()
        if action == "cache" and request.method == "GET":
            return JSONResponse({"now": now, "entries": st.cache(now)})
        if action == "clock" and request.method == "POST":
            data = await read_json(request, 4096)
            seconds = data.get("advance_seconds") if isinstance(data, dict) else None
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise ApiError(
                    400, "invalid_request_error", "advance_seconds: Input should be a number"
                )
            try:
                return JSONResponse({"now": st.clock.advance(seconds)})
            except InputError as exc:
                raise ApiError(400, "invalid_request_error", f"advance_seconds: {exc}") from None
        if action == "reset" and request.method == "POST":
            st.reset()
            return JSONResponse({"now": st.clock.now()})
        if action == "stats" and request.method == "GET":
            return JSONResponse({"now": now, **st.stats.to_json()})
        raise ApiError(404, "not_found_error", f"no control endpoint {request.method} {action}")
    except ApiError as err:
        return api_error_response(err, rid)


def routes() -> list[Route]:
    return [
        Route("/v1/messages", create_message, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
        Route("/_emulator/{action}", control, methods=["GET", "POST"]),
    ]
