"""The emulator: an offline Claude Messages API whose every usage number comes from the engine.

Point the official SDK, curl or an n8n HTTP Request node at it (`base_url=`) to see exactly what
the documented caching rules make of your requests, without a key and without spending money.

The engine is only ever touched from the event loop, between awaits, so each request's dry run
(to size its time to first byte) and its accounting are atomic. Parsing, which counts tokens and
can take a while for big prompts, runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import itertools
import math
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..catalog import catalog
from ..engine import Account, Engine
from ..errors import CachewiseError, InvalidRequest, UnknownModel
from ..request import Prompt, parse_request
from ..tokens import default_tokenizer
from ..usage import Usage
from .api import (
    ApiError,
    api_error_response,
    betas_of,
    check_body,
    check_version,
    error_body,
    headers,
    read_json,
)
from .batches import BatchStore
from .batches import routes as batch_routes
from .faults import FaultPlan, parse_faults
from .limits import RateLimiter, parse_limits
from .replies import build_reply, encode_event, message, sse_events

__all__ = ["EmulatorConfig", "EmulatorState", "create_app"]

MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass
class EmulatorConfig:
    """How the emulator behaves; every field has a `cachewise emulate` flag."""

    clock: Literal["real", "virtual"] = "real"
    ttft_ms: float = 400.0
    prefill_ms_per_1k: float = 25.0
    output_tokens_per_s: float = 80.0
    workspaces: Mapping[str, str] | None = None
    faults: str | None = None
    limits: str | None = None
    seed: int | None = None
    batch_concurrency: int = 4
    batch_cache: Literal["separate", "shared"] = "separate"
    legacy_lookback: bool = False
    eviction_rate: float = 0.0
    max_body_bytes: int = MAX_BODY_BYTES


class Clock:
    """Seconds since start (real) or since reset (virtual); both can be advanced by hand."""

    def __init__(self, virtual: bool) -> None:
        self.virtual = virtual
        self.reset()

    def reset(self) -> None:
        self._t0 = time.monotonic()
        self._offset = 0.0

    def now(self) -> float:
        return self._offset if self.virtual else time.monotonic() - self._t0 + self._offset

    def advance(self, seconds: float) -> float:
        self._offset += seconds
        return self.now()

    async def sleep_until(self, t: float) -> None:
        if not self.virtual:
            delay = t - self.now()
            if delay > 0:
                await asyncio.sleep(delay)


@dataclass
class Stats:
    """Requests by status, and the usage of those that succeeded."""

    requests: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)

    def record(self, status: int, usage: Usage | None = None) -> None:
        self.requests += 1
        self.by_status[str(status)] = self.by_status.get(str(status), 0) + 1
        if usage is not None:
            self.usage = self.usage + usage

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": dict(self.by_status),
            "usage": self.usage.to_api(),
        }


class EmulatorState:
    """Everything one emulator instance holds: the engine, the clock, faults, limits, batches."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = Clock(config.clock == "virtual")
        self.engine = Engine(
            legacy_lookback=config.legacy_lookback,
            eviction_rate=config.eviction_rate,
            seed=config.seed,
        )
        self.faults: FaultPlan = parse_faults(config.faults, config.seed)
        limits = parse_limits(config.limits)
        self.limiter = RateLimiter(limits) if limits else None
        self.stats = Stats()
        self.batches = BatchStore(self)
        self._numbers = itertools.count(1)
        self._ids = itertools.count(1)

    def reset(self) -> None:
        self.engine.reset()
        self.clock.reset()
        self.stats = Stats()
        self.faults = parse_faults(self.config.faults, self.config.seed)
        self._numbers = itertools.count(1)
        if self.limiter:
            self.limiter.buckets.clear()

    def next_id(self, prefix: str) -> str:
        return f"{prefix}_emu{next(self._ids):08d}"

    def workspace(self, request: Request) -> str:
        """The caller's workspace, from its key; 401 without one."""
        key = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if not key and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        if not key:
            raise ApiError(401, "authentication_error", "x-api-key header is required")
        mapped = (self.config.workspaces or {}).get(key)
        # A one-way hash: the key itself is never kept, logged or echoed.
        return mapped or "wrkspc_" + hashlib.sha256(key.encode()).hexdigest()[:24]

    def ttft(self, uncached_tokens: int, extra_ms: float = 0.0) -> float:
        c = self.config
        return (c.ttft_ms + c.prefill_ms_per_1k * uncached_tokens / 1000 + extra_ms) / 1000

    def output_seconds(self, tokens: int) -> float:
        tps = self.config.output_tokens_per_s
        return tokens / tps if tps > 0 else 0.0  # 0 means instant, for tests

    def metered_input(self, prompt: Prompt, account: Account) -> int:
        u = account.usage
        reads = u.cache_read_input_tokens if prompt.model.itpm_counts_cache_reads else 0
        return u.input_tokens + u.cache_creation_input_tokens + reads


async def parse(body: Mapping[str, Any], betas: list[str]) -> Prompt:
    try:
        return await run_in_threadpool(parse_request, body, betas=betas)
    except UnknownModel as exc:
        raise ApiError(404, "not_found_error", f"model: {exc.model}") from None
    except InvalidRequest as exc:
        raise ApiError(exc.status, exc.error_type, exc.message) from None


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
    number = next(st._numbers)
    rid = st.next_id("req")
    workspace: str | None = None
    try:
        workspace = st.workspace(request)
        version = check_version(request)
        body = await read_json(request, st.config.max_body_bytes)
        check_body(body, version)
        prompt = await parse(body, betas_of(request))
        fault = st.faults.pick(number)
        if fault is not None and fault.kind in ("429", "529", "500"):
            raise _fault_error(fault.kind, fault.param)
        try:
            probe = st.engine.account(prompt, now=arrival, workspace=workspace, commit=False)
        except InvalidRequest as exc:
            raise ApiError(400, exc.error_type, exc.message) from None
        limit_key = (workspace, prompt.model.id)
        if st.limiter is not None:
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
        reply = build_reply(body, prompt, default_tokenizer())
        slow = fault.param if fault is not None and fault.kind == "slow" else 0.0
        uncached = probe.usage.input_tokens + probe.usage.cache_creation_input_tokens
        ready = arrival + st.ttft(uncached, slow)
        account = st.engine.account(
            prompt,
            now=arrival,
            workspace=workspace,
            ready_at=ready,
            output_tokens=reply.output_tokens,
        )
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
    if body.get("stream"):
        # The response begins at its first byte, headers included: a client that waits for the
        # headers (the SDK's stream manager does) has waited for the first byte.
        await st.clock.sleep_until(ready)
        return StreamingResponse(
            _stream(st, msg, ready, output_time, midstream=midstream, dropped=dropped),
            media_type="text/event-stream",
            headers={**hdrs, "cache-control": "no-cache"},
        )
    await st.clock.sleep_until(ready + output_time)
    if dropped:
        return _Dropped()
    return JSONResponse(msg, headers=hdrs)


async def _stream(
    st: EmulatorState,
    msg: dict[str, Any],
    ready: float,
    output_time: float,
    *,
    midstream: bool,
    dropped: bool,
) -> AsyncIterator[bytes]:
    await st.clock.sleep_until(ready)
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
            if pace > 0 and not st.clock.virtual:
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
        body = await read_json(request, st.config.max_body_bytes)
        check_body(body, version, need_max_tokens=False)
        prompt = await parse(body, betas_of(request))
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
    n = max(1, min(1000, int(limit))) if limit.isdigit() else 20
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


def _loopback_only(request: Request) -> None:
    host = request.client.host if request.client else ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        if host in ("testclient", "localhost"):
            return
    raise ApiError(403, "permission_error", "the emulator's control API answers loopback only")


async def control(request: Request) -> Response:
    st: EmulatorState = request.app.state.emulator
    rid = st.next_id("req")
    try:
        _loopback_only(request)
        action = request.path_params["action"]
        now = st.clock.now()
        if action == "cache" and request.method == "GET":
            return JSONResponse(
                {
                    "now": now,
                    "entries": [
                        {
                            "workspace": e.workspace,
                            "model": e.model,
                            "position": e.position,
                            "tokens": e.tokens,
                            "ttl": e.ttl,
                            "expires_at": e.expires_at,
                            "readable": e.readable(now, st.engine.expiry_grace),
                            "readable_at": e.readable_at,
                            "reads": e.reads,
                            "writes": e.writes,
                            "prefix_hash": e.prefix_hash,
                        }
                        for e in st.engine.snapshot(now)
                    ],
                }
            )
        if action == "clock" and request.method == "POST":
            data = await read_json(request, 4096)
            seconds = data.get("advance_seconds") if isinstance(data, dict) else None
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
                raise ApiError(
                    400,
                    "invalid_request_error",
                    "advance_seconds: Input should be a non-negative number",
                )
            return JSONResponse({"now": st.clock.advance(float(seconds))})
        if action == "reset" and request.method == "POST":
            st.reset()
            return JSONResponse({"now": st.clock.now()})
        if action == "stats" and request.method == "GET":
            return JSONResponse({"now": now, **st.stats.to_json()})
        raise ApiError(404, "not_found_error", f"no control endpoint {request.method} {action}")
    except ApiError as err:
        return api_error_response(err, rid)


async def not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        error_body(404, "not_found_error", f"Not found: {request.url.path}", "req_emu"), 404
    )


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        error_body(
            405,
            "invalid_request_error",
            f"Method {request.method} not allowed on {request.url.path}",
            "req_emu",
        ),
        405,
    )


async def server_error(request: Request, exc: Exception) -> Response:
    # Anything we did not foresee still answers in the API's shape; CachewiseError is ours.
    kind = "invalid_request_error" if isinstance(exc, CachewiseError) else "api_error"
    status = 400 if isinstance(exc, CachewiseError) else 500
    return JSONResponse(error_body(status, kind, str(exc), "req_emu"), status)


def create_app(config: EmulatorConfig | None = None) -> Starlette:
    """The emulator as an ASGI app (serve it with uvicorn, or use `cachewise.testing.Emulator`)."""
    state = EmulatorState(config or EmulatorConfig())
    app = Starlette(
        routes=[
            Route("/v1/messages", create_message, methods=["POST"]),
            Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
            *batch_routes(),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
            Route("/_emulator/{action}", control, methods=["GET", "POST"]),
        ],
        exception_handlers={404: not_found, 405: method_not_allowed, Exception: server_error},
    )
    app.state.emulator = state
    return app
