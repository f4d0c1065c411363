"""The proxy's client to the API: pooled keep-alive connections, one pool per event loop.

The proxy pays its client's cost on every call, so the client is aiohttp: over loopback a round
trip through it costs about half of one through httpx2 (the SDK's client), whose pool checks each
connection's socket before reusing it. What the proxy needs of a client is small: send a request
with the bytes it was given, read the answer as it arrives or all at once, and say plainly when
the upstream did not answer. That is all this module offers, so the choice stays replaceable.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Sequence

import aiohttp
import yarl

__all__ = ["Upstream", "UpstreamError", "UpstreamResponse"]

# aiohttp's own defaults would otherwise be sent in the client's place.
_NOT_ADDED = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


class UpstreamError(Exception):
    """The upstream did not answer, or broke off its answer."""

    def __init__(self, cause: BaseException) -> None:
        self.name = _name(cause)
        self.timeout = isinstance(cause, TimeoutError)
        super().__init__(f"{self.name}: {cause}")


class UpstreamResponse:
    """An answer whose head has arrived; its body is read with `chunks` or `read`, once."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: Sequence[tuple[str, str]] = list(response.headers.items())

    def header(self, name: str) -> str | None:
        return self._response.headers.get(name)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive (undecoded)."""
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(exc) from exc

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(exc) from exc

    def close(self) -> None:
        """Give the connection back to the pool (or drop it, when the body was not all read)."""
        self._response.release()


class Upstream:
    """The API at `base`: every request's target is appended to it, never joined, so no request
    can point the client elsewhere."""

    def __init__(self, base: str, *, timeout: float, connect_timeout: float = 30.0) -> None:
        self.base = base.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=timeout
        )
        self._sessions: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, aiohttp.ClientSession
        ] = weakref.WeakKeyDictionary()

    def _session(self) -> aiohttp.ClientSession:
        # A connection belongs to the loop that opened it: a server has one loop, tests may
        # run several.
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None:
            session = self._sessions[loop] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0),
                timeout=self._timeout,
                auto_decompress=False,  # bytes go back as they came
                skip_auto_headers=_NOT_ADDED,
                trust_env=False,  # the upstream is the one named, not one from the environment
            )
        return session

    async def send(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | AsyncIterable[bytes] | None = None,
    ) -> UpstreamResponse:
        """Send a request to `base + target`; the answer once its head has arrived."""
        try:
            response = await self._session().request(
                method,
                yarl.URL(self.base + target, encoded=True),  # as the client encoded it
                headers=list(headers),
                data=body,
                allow_redirects=False,
                compress=None,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(exc) from exc
        return UpstreamResponse(response)

    async def aclose(self) -> None:
        """Close the running loop's connections."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()


def _name(exc: BaseException) -> str:
    """A stable name for why the upstream failed, for the ledger and the metrics."""
    if isinstance(exc, TimeoutError):
        return "ReadTimeout" if isinstance(exc, aiohttp.SocketTimeoutError) else "Timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "ConnectError"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return "RemoteProtocolError"
    return type(exc).__name__
