"""Who may call a local server: this machine's programs, not a web page the user happens to open.

A server on 127.0.0.1 is in reach of every page in the user's browser. A page may send a form or
a text/plain POST to any address without asking (cross-site request forgery), and a name whose
DNS the attacker turns to 127.0.0.1 lets their page read the answers too (DNS rebinding). But the
browser always says which name it sent the request to (Host) and which site sent it (Origin), and
sends `Content-Type: application/json` to another site only after a CORS preflight, which these
servers never grant. So:

- the control API answers a loopback peer (the socket's, never a forwarding header) that names a
  loopback Host, sends no Origin or a loopback one, and POSTs JSON;
- every other route answers loopback Host names only while the server is bound to loopback;
  bound wider, it is meant to be reached by other names (host.docker.internal, a LAN address).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from .api import ApiError, api_error_response
from .net import is_loopback

__all__ = ["Guard", "check"]


class Guard:
    """ASGI middleware that answers what `check` refuses with its error, in the API's shape.

    Args:
        app: the server's routes.
        control_prefix: the path under which the control API lives, e.g. "/_emulator/".
        loopback: whether the server is bound to loopback only.
    """

    def __init__(self, app: ASGIApp, *, control_prefix: str, loopback: bool) -> None:
        self.app = app
        self.control_prefix = control_prefix
        self.loopback = loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            control = scope["path"].startswith(self.control_prefix)
            if not (control or self.loopback):  # nothing to check: the hot path of a wide bind
                await self.app(scope, receive, send)
                return
            if not control and _loopback_hosts(scope):  # the hot path of a loopback bind
                await self.app(scope, receive, send)
                return
            try:
                check(Request(scope), control=control, loopback=self.loopback)
            except ApiError as err:
                await api_error_response(err, "req_guard")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def check(request: Request, *, control: bool, loopback: bool) -> None:
    """Refuse a request to the control API (`control`), or to a server bound to loopback, that
    may come from elsewhere than this machine's own programs.

    Raises:
        ApiError: 403 `permission_error` for a remote peer, a foreign Host or a foreign Origin;
            415 `invalid_request_error` for a control POST that is not JSON.
    """
    if control:
        # The peer as the server saw the socket (proxy headers are off, see `net.server`);
        # Starlette's in-process TestClient calls its peer "testclient".
        peer = request.client.host if request.client else ""
        if peer != "testclient" and not is_loopback(peer):
            raise ApiError(
                403, "permission_error", "the control API answers callers on this machine only"
            )
    if control or loopback:
        hosts = request.headers.getlist("host")
        if not hosts or not all(is_loopback(_name(host)) for host in hosts):
            raise ApiError(
                403,
                "permission_error",
                f"Host: {', '.join(hosts) or 'none'} is not a loopback name "
                "(localhost, 127.x.x.x, [::1])",
            )
    if not control:
        return
    for origin in request.headers.getlist("origin"):
        scheme, _, authority = origin.partition("://")
        if scheme not in ("http", "https") or not is_loopback(_name(authority)):
            raise ApiError(
                403,
                "permission_error",
                f"Origin: {origin} is not on this machine, and the control API takes no "
                "cross-site requests",
            )
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if request.method == "POST" and media_type != "application/json":
        raise ApiError(
            415, "invalid_request_error", "content-type: the control API takes application/json"
        )


def _loopback_hosts(scope: Scope) -> bool:
    """Whether the request names a Host and every Host it names is a loopback name: `check`'s
    test for an API route, read from the raw headers (a refusal is `check`'s to word)."""
    hosts = [value for name, value in scope["headers"] if name == b"host"]
    return bool(hosts) and all(is_loopback(_name(h.decode("latin-1"))) for h in hosts)


def _name(authority: str) -> str:
    """The host name of a Host header or an origin's authority: no port, [::1] in brackets."""
    authority = authority.lower()
    if authority.startswith("["):
        return authority[: authority.find("]") + 1]
    return authority.partition(":")[0]
