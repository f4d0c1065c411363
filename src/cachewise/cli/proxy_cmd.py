"""`cachewise proxy`: the Messages API's paths on a local port, cache-optimal on the way."""

from __future__ import annotations

import re
from typing import Any

import click

from ..errors import InputError
from ..gate import open_gate
from ..server.net import ANTHROPIC_API, is_loopback, server, url
from .main import Finite, bind, main


@main.command()
@click.option(
    "--upstream",
    metavar="URL",
    help=f"The API to forward to (default {ANTHROPIC_API}; an emulator's URL offline).",
)
@click.option("--emulate", is_flag=True, help="Start the embedded emulator and forward to it.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8788, show_default=True, help="Port to bind."
)
@click.option(
    "--ledger",
    metavar="PATH|URL",
    help='Where calls are recorded (default: the cachewise ledger; "off": nowhere).',
)
@click.option("--redis", metavar="URL", help="A Redis shared by a fleet of proxies (the gate).")
@click.option(
    "--plan",
    type=click.Choice(["auto", "off"]),
    default="auto",
    show_default=True,
    help="auto: place breakpoints on requests that carry none.",
)
@click.option(
    "--lint",
    type=click.Choice(["off", "warn", "strict"]),
    default="warn",
    show_default=True,
    help="strict: answer requests the API would reject with its 400, sending nothing.",
)
@click.option(
    "--gate",
    type=click.Choice(["local", "redis", "off"]),
    help="The warm gate: this proxy only, a fleet's (needs --redis; the default with it), or none.",
)
@click.option(
    "--gate-timeout",
    type=Finite(min=0),
    default=60.0,
    show_default=True,
    help="The longest a call waits for the call writing its prefix, in seconds.",
)
@click.option(
    "--auth-token",
    envvar="CACHEWISE_PROXY_TOKEN",
    help="Clients must send it in x-cachewise-token (required off loopback).",
)
@click.option(
    "--itpm",
    type=click.IntRange(min=1),
    help="The organisation's input tokens per minute, shared by the fleet in Redis (needs "
    "--redis); cache reads do not count, as the API counts them.",
)
@click.option("--store-prompts", is_flag=True, help="Also keep each request body in the ledger.")
def proxy(
    upstream: str | None,
    emulate: bool,
    host: str,
    port: int,
    ledger: str | None,
    redis: str | None,
    plan: str,
    lint: str,
    gate: str | None,
    gate_timeout: float,
    auth_token: str | None,
    itpm: int | None,
    store_prompts: bool,
) -> None:
    """Serve the Claude API's paths on a local port, with breakpoints placed, requests linted,
    concurrent cold calls gated and every call in the ledger. Point a client's base URL here."""
    if emulate and upstream:
        raise InputError(
            "--emulate starts its own upstream: give --upstream or --emulate", field="--emulate"
        )
    if redis is not None and not redis.startswith(("redis://", "rediss://", "unix://")):
        raise InputError(f"not a redis:// URL: {redis!r}", field="--redis")
    if gate == "redis" and not redis:
        raise InputError("--gate redis needs --redis URL", field="--gate")
    if upstream is not None and not upstream.startswith(("http://", "https://")):
        raise InputError(f"not an http(s) URL: {upstream!r}", field="--upstream")
    if itpm is not None and not redis:
        raise InputError("--itpm is shared through Redis: give --redis URL too", field="--itpm")
    chosen = gate or ("redis" if redis else "local")
    the_gate = open_gate(redis if chosen == "redis" else chosen, timeout=gate_timeout)
    sock = bind(host, port)  # before the banner: a port in use says so, and nothing else
    loopback = is_loopback(sock.getsockname()[0])
    if not loopback and not auth_token:
        sock.close()
        raise InputError(
            f"--host {host} lets other machines reach the proxy, and with it your API key's "
            "spending: give --auth-token (clients send it in x-cachewise-token)",
            field="--auth-token",
        )
    emulator: Any = None
    if emulate:
        from ..server.state import EmulatorConfig
        from ..testing import Emulator

        emulator = Emulator(EmulatorConfig()).start()
        upstream = emulator.base_url
    from ..server.proxy import ProxyConfig, create_proxy_app  # the server, only when it runs

    config = ProxyConfig(
        upstream=upstream or ANTHROPIC_API,
        plan=plan,  # type: ignore[arg-type]
        lint=lint,  # type: ignore[arg-type]
        gate=the_gate,
        ledger=ledger,
        auth_token=auth_token,
        loopback=loopback,
        store_prompts=store_prompts,
        rate_limit=_rate_limit(redis, itpm),
        include_emulated=emulate or is_loopback(_host_of(upstream or ANTHROPIC_API)),
    )
    app = create_proxy_app(config)
    base = url(sock)
    where = "the embedded emulator" if emulate else config.upstream
    click.echo(f"cachewise proxy on {base} -> {where} (plan {plan}, lint {lint}, gate {chosen})")
    click.echo(f"  export ANTHROPIC_BASE_URL={base}")
    click.echo(f"  dashboard: {base}/   metrics: {base}/metrics")
    writer = app.state.proxy.writer
    ledger_at = writer.recorder.ledger.target if writer else "off"
    click.echo(f"  ledger: {_redacted(ledger_at)}   (cachewise report --ledger ... reads it)")
    if not loopback:
        click.echo(
            f"  warning: listening on {host}, not loopback only: clients on the network need "
            "the token",
            err=True,
        )
    try:
        server(app, log_level="warning", lifespan=True).run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # the server has stopped taking calls; what follows writes what is left
    finally:
        app.state.proxy.close()
        if emulator is not None:
            emulator.stop()
    click.echo("cachewise proxy stopped; every answered call is in the ledger", err=True)


def _rate_limit(redis: str | None, itpm: int | None) -> Any:
    if redis is None or itpm is None:
        return None
    from ..ratelimit import RedisRateLimit

    return RedisRateLimit(redis, tokens_per_minute=itpm)


def _host_of(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]


def _redacted(target: str) -> str:
    """A ledger URL as it may be printed: no password."""
    return re.sub(r"//[^@/]*@", "//…@", target)
