"""The proxy: the Messages API's paths, with cachewise between the client and the API.

A client changes its base URL and nothing else. A `POST /v1/messages` is read once (its parse is
remembered by the hash of its bytes), planned when it carries no markers of its own, linted,
held at the warm gate while another call writes its prefix, and sent upstream: its own bytes when
nothing changed, the planned body's otherwise. The answer comes back as it arrives (a stream
event by event), and the call's ledger row is committed before the answer's last bytes leave, so
a client that got an answer has a row. Every other path passes through untouched.

The upstream is fixed when the proxy starts: a request's path is appended to it, never joined,
so no request can point the proxy elsewhere. The client's key goes upstream and nowhere else: the
ledger and the metrics name a workspace by the key's one-way hash.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..engine import violations
from ..gate import Gate, LocalGate
from ..ledger import key_workspace, open_ledger
from ..pipeline import Call, Pipeline, PlanOption
from ..spool import Recorder
from .api import ApiError, ErrorResponse, api_error_response, betas_of, error_body, read_body
from .guard import Guard
from .metrics import Metrics
from .net import ANTHROPIC_API
from .reading import RequestReader
from .sse import EventSplitter, StreamUsage
from .upstream import Upstream, UpstreamError, UpstreamResponse
from .writer import LedgerWriter

__all__ = ["ProxyConfig", "create_proxy_app"]

LintMode = Literal["off", "warn", "strict"]
TOKEN_HEADER = "x-cachewise-token"
# The API's own cap on a Messages request body.
MAX_BODY_BYTES = 32 * 1024 * 1024

# Not forwarded: they describe one hop (RFC 9110 §7.6.1), or are recomputed, or are ours.
_HOP_BY_HOP = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        TOKEN_HEADER,
    }
)
# Not returned as the upstream sent them: one hop's own, or what our server writes itself.
_NOT_RETURNED = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "date",
        "server",
    }
)


@dataclass
class ProxyConfig:
    """How the proxy runs (the options of `cachewise proxy`).

    Args:
        upstream: the API's base URL (the real API, or an emulator's).
        plan: "auto" places breakpoints on requests that carry none; "off" sends them as they come.
        lint: "strict" answers a request the API would reject with the API's 400 and sends
            nothing; "warn" names findings in an `x-cachewise-findings` response header.
        gate: the warm gate (`LocalGate` for one proxy; a Redis gate for a fleet).
        ledger: the ledger's path or URL; None: the default ledger; "off": none.
        auth_token: when set, every request must carry it in `x-cachewise-token`.
        loopback: whether the proxy is bound to loopback only (then only loopback Host names
            are answered, against DNS rebinding).
        store_prompts: also keep each request body in the ledger.
        max_body_bytes: the largest Messages body read (larger: the API's 413).
        include_emulated: whether the dashboard at `/` counts calls the emulator answered.
        rate_limit: an input-tokens-per-minute bucket shared by the fleet (`RedisRateLimit`):
            each call takes its estimate before it goes, and settles with what the API counted.
        timeout: seconds to wait for the upstream to connect, and between its bytes.
    """

    upstream: str = ANTHROPIC_API
    plan: PlanOption = "auto"
    lint: LintMode = "warn"
    gate: Gate = field(default_factory=LocalGate)
    ledger: str | None = None
    auth_token: str | None = None
    loopback: bool = True
    store_prompts: bool = False
    max_body_bytes: int = MAX_BODY_BYTES
    timeout: float = 600.0
    include_emulated: bool = False
    rate_limit: Any = None


class Proxy:
    """The proxy's state: the pipeline, the upstream client, the ledger's writer, the metrics."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.upstream = config.upstream.rstrip("/")
        self.metrics = Metrics()
        self.writer: LedgerWriter | None = None
        if config.ledger != "off":
            self.writer = LedgerWriter(Recorder(open_ledger(config.ledger)))
        self.pipeline = Pipeline(
            recorder=None,  # rows go through the writer, many per commit
            plan=config.plan,
            lint=config.lint != "off",
            source="proxy",
            store_prompts=config.store_prompts,
        )
        self.reader = RequestReader()
        self.client = Upstream(self.upstream, timeout=config.timeout)

    async def aclose(self) -> None:
        """Close the running loop's upstream connections (and the gate's, if it keeps any)."""
        await self.client.aclose()
        for part in (self.config.gate, self.config.rate_limit):
            part_close = getattr(part, "aclose", None)
            if part_close is not None:
                await part_close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    # -- /v1/messages ------------------------------------------------------------------------

    async def messages(self, request: Request) -> Response:
        raw = await read_body(request, self.config.max_body_bytes)
        workspace = _workspace(request.headers)
        try:
            body, prompt = await self.reader.parse(raw, tuple(betas_of(request)))
            call = self.pipeline.prepare(body, workspace=workspace, prompt=prompt)
        except ApiError:  # the API says what is wrong with it: sent as it came
            call = Call(_loads(raw), None, workspace)
        if call.prompt is not None and self.config.lint == "strict":
            refused = violations(call.prompt)
            if refused:
                first = refused[0]
                await self._commit(call, error=first.error_type, http_status=first.status)
                err = ApiError(first.status, first.error_type, first.message)
                return api_error_response(err, "req_cachewise_lint")
        sent = _dumps(call.body) if call.planned else raw
        if call.key is not None:
            call.ticket = await self.config.gate.acquire_async(call.key, call.ttl_seconds)
        estimate = await self._pace(call)
        try:
            response = await self.client.send(
                "POST", _target(request), _forwarded(request.headers), sent
            )
        except UpstreamError as exc:
            await self._release(call, ok=False)
            await self._settle(call, estimate, None)
            return await self._unreachable(call, exc)
        call.first_byte = time.time()
        await self._release(call, ok=response.status < 400)
        headers = {**_returned(response.headers), **self._ours(call)}
        if (response.header("content-type") or "").startswith("text/event-stream"):
            return StreamingResponse(
                self._relay(call, sent, response, estimate),
                status_code=response.status,
                headers=headers,
            )
        try:
            data = await response.read()
        except UpstreamError as exc:
            return await self._unreachable(call, exc)
        finally:
            response.close()
        answer = _loads(data)
        error = answer.get("error") if answer.get("type") == "error" else None
        await self._commit(
            call,
            usage=answer.get("usage") if isinstance(answer.get("usage"), dict) else None,
            message_id=answer.get("id") if isinstance(answer.get("id"), str) else None,
            request_id=response.header("request-id"),
            error=_error_type(error, response.status),
            http_status=response.status,
            sent=sent,
        )
        await self._settle(call, estimate, answer.get("usage"))
        return Response(data, status_code=response.status, headers=headers)

    async def _relay(
        self, call: Call, sent: bytes, response: UpstreamResponse, estimate: int
    ) -> AsyncIterator[bytes]:
        """The stream, event by event as each arrives; the row is committed just before the
        last event (`message_stop`) goes, so the client's stream ends after its row exists."""
        splitter, seen = EventSplitter(), StreamUsage()
        committed = False
        broken: str | None = None
        rid = response.header("request-id")
        try:
            async for chunk in response.chunks():
                for event in splitter.feed(chunk):
                    if seen.see(event) == "message_stop" and not committed:
                        committed = True
                        await self._commit(
                            call,
                            usage=seen.usage,
                            message_id=seen.message_id,
                            request_id=rid,
                            error=seen.error,
                            http_status=response.status,
                            sent=sent,
                        )
                        await self._settle(call, estimate, seen.usage)
                    yield event
            rest = splitter.rest()
            if rest:
                yield rest
        except UpstreamError as exc:
            broken = f"upstream_{exc.name}"
        finally:
            response.close()
            if not committed:  # cut short (upstream broke, or the client left): still billed
                rec = self.pipeline.row(
                    call,
                    usage=seen.usage,
                    message_id=seen.message_id,
                    request_id=rid,
                    error=seen.error or broken or "stream_incomplete",
                    http_status=response.status,
                    sent=sent,
                )
                if rec is not None:  # not awaited: a cancelled task may not wait, the row is kept
                    self.metrics.observe(rec)
                    if self.writer is not None:
                        self.writer.submit(rec, call.body if self.config.store_prompts else None)

    async def _commit(self, call: Call, **outcome: Any) -> None:
        rec = self.pipeline.row(call, **outcome)
        if rec is None:
            return
        self.metrics.observe(rec)
        if self.writer is not None:
            await self.writer.submit(rec, call.body if self.config.store_prompts else None)

    async def _pace(self, call: Call) -> int:
        """Take the call's input tokens from the shared bucket (waiting, bounded, while it is
        short); the estimate taken. A call whose prefix is warm will read it: that part does not
        count toward the limit."""
        limit = self.config.rate_limit
        if limit is None or call.prompt is None:
            return 0
        estimate = call.prompt.total_tokens
        if call.ticket is not None and call.ticket.role in ("warm", "follower"):
            estimate -= call.key_tokens
        await limit.acquire_async(estimate)
        return estimate

    async def _settle(self, call: Call, estimate: int, usage: Any) -> None:
        limit = self.config.rate_limit
        if limit is None or not estimate or call.prompt is None:
            return
        from ..ratelimit import counted_input

        actual = counted_input(usage, call.prompt.model.id) if isinstance(usage, dict) else 0
        await limit.settle_async(estimate, actual)

    async def _release(self, call: Call, *, ok: bool) -> None:
        if call.ticket is not None and call.ticket.role == "scout":
            await self.config.gate.release_async(call.ticket, ok=ok)

    async def _unreachable(self, call: Call, exc: UpstreamError) -> Response:
        kind = "timeout_error" if exc.timeout else "api_error"
        status = 504 if exc.timeout else 502
        await self._commit(call, error=f"upstream_{exc.name}", http_status=status)
        return ErrorResponse(
            error_body(
                status,
                kind,
                f"cachewise proxy: the upstream {self.upstream} did not answer ({exc.name})",
                "req_cachewise_upstream",
            ),
            status,
        )

    def _ours(self, call: Call) -> dict[str, str]:
        """What the proxy tells the client about the call, in response headers."""
        ours = {
            "x-cachewise-breakpoints": ", ".join(
                f"{b['path']}={b['ttl']}" for b in call.intended or ()
            )
            or "none",
            "x-cachewise-plan": "planned" if call.planned else "as-sent",
        }
        if call.ticket is not None:
            ours["x-cachewise-gate"] = call.ticket.role
        if self.config.lint == "warn" and call.findings:
            ours["x-cachewise-findings"] = "; ".join(
                f"{f.rule} {f.path}" for f in call.findings if f.severity != "info"
            )
        return {k: _ascii(v) for k, v in ours.items() if v}

    # -- everything else ---------------------------------------------------------------------

    async def passthrough(self, request: Request) -> Response:
        try:
            response = await self.client.send(
                request.method,
                _target(request),
                _forwarded(request.headers, identity=False),
                request.stream() if request.method not in ("GET", "HEAD") else None,
            )
        except UpstreamError as exc:
            return ErrorResponse(
                error_body(
                    502,
                    "api_error",
                    f"cachewise proxy: the upstream did not answer ({exc.name})",
                    "req_cachewise_upstream",
                ),
                502,
            )
        headers = {  # the body goes as it came, compressed or not
            k: v
            for k, v in response.headers
            if k.lower() not in _NOT_RETURNED or k.lower() == "content-encoding"
        }
        return StreamingResponse(
            response.chunks(),
            status_code=response.status,
            headers=headers,
            background=BackgroundTask(response.close),
        )

    async def metrics_page(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "upstream": self.upstream})


class _Token:
    """Middleware: with an auth token set, a request without it is the API's 401."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is not None and scope["type"] == "http":
            given = dict(scope["headers"]).get(TOKEN_HEADER.encode(), b"")
            if not hmac.compare_digest(given, self.token):
                err = ApiError(
                    401,
                    "authentication_error",
                    f"cachewise proxy: this proxy needs its token in the {TOKEN_HEADER} header",
                )
                await api_error_response(err, "req_cachewise_auth")(scope, receive, send)
                return
        await self.app(scope, receive, send)


_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def create_proxy_app(config: ProxyConfig | None = None) -> Starlette:
    """The proxy as an ASGI app; its state is `app.state.proxy` (close it when done)."""
    proxy = Proxy(config or ProxyConfig())
    dashboard: list[BaseRoute] = []
    if proxy.writer is not None:  # `/` and `/api/summary`: the ledger's page, as `report` sums it
        from ..dashboard import dashboard_app

        ledger = proxy.writer.recorder.ledger.target
        dashboard = dashboard_app(ledger, include_emulated=proxy.config.include_emulated).routes
    app = Starlette(
        lifespan=_closing,
        routes=[
            Route("/v1/messages", proxy.messages, methods=["POST"]),
            Route("/metrics", proxy.metrics_page, methods=["GET"]),
            Route("/_cachewise/health", proxy.health, methods=["GET"]),
            *dashboard,
            Route("/{path:path}", proxy.passthrough, methods=_METHODS),
        ],
        middleware=[
            Middleware(_Token, token=proxy.config.auth_token),
            Middleware(Guard, control_prefix="/_cachewise/", loopback=proxy.config.loopback),
        ],
        exception_handlers={ApiError: _api_error},
    )
    app.state.proxy = proxy
    return app


@contextlib.asynccontextmanager
async def _closing(app: Starlette) -> AsyncIterator[None]:
    """At the server's shutdown, the upstream's connections close on the loop that opened them."""
    yield
    await app.state.proxy.aclose()


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return api_error_response(exc, "req_cachewise")


# -- small pieces ----------------------------------------------------------------------------


def _workspace(headers: Mapping[str, str]) -> str | None:
    key = headers.get("x-api-key")
    if not key:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        key = token if scheme.lower() == "bearer" else None
    return key_workspace(key)


def _forwarded(headers: Mapping[str, str], *, identity: bool = True) -> list[tuple[str, str]]:
    """The client's headers as they go upstream: all but one hop's own, and the proxy's token.
    The proxy reads what it relays, so it asks for it uncompressed."""
    kept = [(k, v) for k, v in headers.items() if k.lower() not in _HOP_BY_HOP]
    if identity:
        kept = [(k, v) for k, v in kept if k.lower() != "accept-encoding"]
        kept.append(("accept-encoding", "identity"))
    return kept


def _returned(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    return {k: v for k, v in headers if k.lower() not in _NOT_RETURNED}


def _target(request: Request) -> str:
    """The request's path and query as the client wrote them (still percent-encoded)."""
    scope = request.scope
    path: str = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    query: str = scope.get("query_string", b"").decode("latin-1")
    return path + "?" + query if query else path


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _loads(data: bytes) -> dict[str, Any]:
    """A JSON object from bytes that may be anything (a client's body, an upstream's answer)."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _error_type(error: Any, status: int) -> str | None:
    if isinstance(error, dict) and isinstance(error.get("type"), str):
        return str(error["type"])
    return f"http_{status}" if status >= 400 else None


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode()
