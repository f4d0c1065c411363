"""Where a local server listens: the socket, the server on it, the URL to give clients, and what
counts as loopback.

One place for these, because the emulator's command, its in-process test server and the proxy
all bind a socket, serve it and print a URL, and the control API asks whether a peer is local.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

__all__ = ["ANTHROPIC_API", "is_loopback", "listen", "server", "url"]

ANTHROPIC_API = "https://api.anthropic.com"


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (port 0: a free one), ready for uvicorn to serve on.

    Raises:
        OSError: the address cannot be bound (in use, not ours, unknown name).
    """
    infos = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )
    family, kind, proto, _, address = infos[0]
    # proto=IPPROTO_TCP matters: asyncio turns Nagle off only on sockets that say they are TCP,
    # and without that every small response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:  # "::" then takes IPv4 callers too, as "0.0.0.0" would
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def server(app: ASGIApp, *, log_level: str, lifespan: bool = False) -> uvicorn.Server:
    """A uvicorn server for `app`, to run on a socket from `listen` (with `lifespan`, the app's
    startup and shutdown run, on the server's loop).

    Proxy headers are off: with them uvicorn takes the client's address from X-Forwarded-For
    (from any peer under FORWARDED_ALLOW_IPS=*, which container images often set), and the
    control API must judge the socket's peer, not what a caller says it is.
    """
    import uvicorn  # here, not at the top: most commands never serve

    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="on" if lifespan else "off",
        proxy_headers=False,
    )
    return uvicorn.Server(config)


def url(sock: socket.socket) -> str:
    """The base URL a client uses to reach a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):  # every address: name the loopback one, which always works
        host = "127.0.0.1" if sock.family == socket.AF_INET else "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@functools.lru_cache(maxsize=512)  # every request asks, mostly about the same few names
@functools.lru_cache(maxsize=64)  # asked on every request, of the same few Host names
def is_loopback(host: str) -> bool:
    """Whether an address (or name) is this machine: 127.0.0.0/8, ::1, an IPv4-mapped loopback
    (`::ffff:127.0.0.1`, how an IPv6 socket sees an IPv4 caller), or `localhost`."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host == "localhost"
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)
