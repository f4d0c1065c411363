"""Test against the emulator: a real HTTP server on loopback, in a background thread.

    from cachewise.testing import Emulator

    with Emulator() as emu:
        client = emu.client()                      # the official SDK, pointed at the emulator
        first = client.messages.create(...)
        second = client.messages.create(...)
        assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens

With pytest, the `cachewise_emulator` fixture (installed with cachewise) gives a started emulator.
By default it runs on a virtual clock with no latency, so tests are fast and deterministic; call
`advance(seconds)` to let entries expire.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from ..server.app import create_app
from ..server.net import listen, server
from ..server.state import EmulatorConfig, EmulatorState

__all__ = ["TEST_CONFIG", "Emulator", "Proxy"]

T = TypeVar("T")

TEST_CONFIG = EmulatorConfig(
    clock="virtual", ttft_ms=0.0, prefill_ms_per_1k=0.0, output_tokens_per_s=0.0
)


class _Served:
    """An ASGI app served on a free loopback port in a background thread, until `stop`."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: list[Any] = []
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        sock = listen("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        self._server = server(self.app, log_level="error")
        started = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.call_soon(started.set)
            loop.run_until_complete(self._server.serve(sockets=[sock]))
            loop.close()

        self._thread = threading.Thread(target=serve, name=type(self).__name__, daemon=True)
        self._thread.start()
        started.wait(10)
        while not self._server.started and self._thread.is_alive():
            threading.Event().wait(0.005)

    def stop(self) -> None:
        for client in self._clients:  # the clients it handed out, so no socket is left open
            client.close()
        self._clients.clear()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._server = self._thread = self._loop = None

    def _call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the server's loop, where its state lives, and wait for it."""
        if self._loop is None:
            return fn()

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def client(self, api_key: str = "sk-emulator-test", **kwargs: Any) -> Any:
        """An `anthropic.Anthropic` client pointed at this server, closed when it stops."""
        import anthropic

        client = anthropic.Anthropic(api_key=api_key, base_url=self.base_url, **kwargs)
        self._clients.append(client)
        return client

    def async_client(self, api_key: str = "sk-emulator-test", **kwargs: Any) -> Any:
        """An `anthropic.AsyncAnthropic` client pointed at this server."""
        import anthropic

        return anthropic.AsyncAnthropic(api_key=api_key, base_url=self.base_url, **kwargs)


class Emulator(_Served):
    """The emulator on a free loopback port, for the length of a `with` block.

    Args:
        config: the emulator's behaviour; defaults to `TEST_CONFIG` (virtual clock, no latency).
        **overrides: fields of `EmulatorConfig` to change, e.g. `ttft_ms=200, clock="real"`.
    """

    def __init__(self, config: EmulatorConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or TEST_CONFIG, **overrides)
        super().__init__(create_app(self.config))
        self.state: EmulatorState = self.app.state.emulator

    def start(self) -> Emulator:
        self._serve()
        return self

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def advance(self, seconds: float) -> float:
        """Move the emulator's clock forward; returns the new time.

        Raises:
            InputError: `seconds` is not a number from 0 to ten years (NaN and infinity are not).
        """
        return self._call(lambda: self.state.clock.advance(seconds))

    def reset(self) -> None:
        """Empty the cache and set the clock back to 0."""
        self._call(self.state.reset)

    def now(self) -> float:
        return self._call(self.state.clock.now)

    def cache(self) -> list[dict[str, Any]]:
        """The live cache entries, as `GET /_emulator/cache` lists them."""
        return self._call(lambda: self.state.cache(self.state.clock.now()))

    def stats(self) -> dict[str, Any]:
        return self._call(self.state.stats.to_json)


class Proxy(_Served):
    """`cachewise proxy` on a free loopback port, for the length of a `with` block: the
    official SDK from `client()` goes through it to `upstream` (an `Emulator`'s URL).

    Args:
        upstream: the URL the proxy forwards to.
        **config: fields of `ProxyConfig`, e.g. `ledger=path, lint="strict"` (default ledger:
            none).
    """

    def __init__(self, upstream: str, **config: Any) -> None:
        from ..server.proxy import ProxyConfig, create_proxy_app

        config.setdefault("ledger", "off")
        super().__init__(create_proxy_app(ProxyConfig(upstream=upstream, **config)))

    def start(self) -> Proxy:
        self._serve()
        return self

    def stop(self) -> None:
        proxy = self.app.state.proxy
        if self._loop is not None:  # its upstream connections close on the loop they live on
            asyncio.run_coroutine_threadsafe(proxy.aclose(), self._loop).result(10)
        super().stop()
        proxy.close()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def metrics(self) -> str:
        return str(self.app.state.proxy.metrics.render().decode())
