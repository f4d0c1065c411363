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
from .api import ErrorResponse, error_body, headers
from .guard import Guard
from .state import EmulatorConfig, EmulatorState

__all__ = ["create_app"]


async def not_found(request: Request, exc: Exception) -> Response:
    return _error(request, 404, "not_found_error", f"Not found: {request.url.path}")


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    text = f"Method {request.method} not allowed on {request.url.path}"
    return _error(request, 405, "invalid_request_error", text)


async def server_error(request: Request, exc: Exception) -> Response:
    # Anything we did not foresee still answers in the API's shape; CachewiseError is ours.
    if isinstance(exc, CachewiseError):
        return _error(request, 400, "invalid_request_error", str(exc))
    return _error(request, 500, "api_error", str(exc))


def _error(request: Request, status: int, kind: str, text: str) -> Response:
    """An error no route answered, with a request id of its own in the body and the header, as
    every answer of the API has."""
    rid = request.app.state.emulator.next_id("req")
    return ErrorResponse(error_body(status, kind, text, rid), status, headers=headers(rid))


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
    # The API answers a path with a trailing slash 404, not with a redirect to another path.
    app.router.redirect_slashes = False
    app.state.emulator = state
    app.state.batches = batches.BatchStore(state)
    return app
