"""The emulator as one ASGI app: the Messages API's routes and Message Batches' over one state.

Serve it with uvicorn (`cachewise emulate`), or on a free loopback port in a thread with
`cachewise.testing.Emulator`.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from ..errors import CachewiseError
from . import batches, emulator
from .api import ErrorResponse, error_body
from .guard import Guard
from .state import EmulatorConfig, EmulatorState

__all__ = ["create_app"]


async def not_found(request: Request, exc: Exception) -> Response:
    return ErrorResponse(
        error_body(404, "not_found_error", f"Not found: {request.url.path}", "req_emu"), 404
    )


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    return ErrorResponse(
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
    return ErrorResponse(error_body(status, kind, str(exc), "req_emu"), status)


def create_app(config: EmulatorConfig | None = None) -> Starlette:
    """The emulator as an ASGI app; its state is `app.state.emulator`."""
    state = EmulatorState(config or EmulatorConfig())
    app = Starlette(
        routes=[*emulator.routes(), *batches.routes()],
        middleware=[
            Middleware(Guard, control_prefix="/_emulator/", loopback=state.config.loopback)
        ],
        exception_handlers={404: not_found, 405: method_not_allowed, Exception: server_error},
    )
    app.state.emulator = state
    app.state.batches = batches.BatchStore(state)
    return app
