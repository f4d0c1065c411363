"""`cachewise dashboard`: the ledger as one page in a browser, served on loopback."""

from __future__ import annotations

import click

from ..server.net import is_loopback, server, url
from .main import bind, main


@main.command()
@click.option("--ledger", "target", help="Ledger path or postgresql:// URL (default: the user's).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8789, show_default=True, help="Port to bind."
)
@click.option(
    "--include-emulated",
    is_flag=True,
    help="Also count calls the emulator answered (rehearsals; left out by default).",
)
def dashboard(target: str | None, host: str, port: int, include_emulated: bool) -> None:
    """Serve a page of what caching saved: cost over time, hit rate, misses, prefixes, waits."""
    sock = bind(host, port)  # before the banner: a port in use says so, and nothing else
    click.echo(f"cachewise dashboard on {url(sock)}/")
    if not is_loopback(sock.getsockname()[0]):
        click.echo(
            f"  warning: listening on {host}, not loopback only: anyone who can reach this "
            "machine can read what the ledger's calls cost",
            err=True,
        )
    from ..dashboard import dashboard_app  # the server, only when it runs

    app = dashboard_app(target, include_emulated=include_emulated)
    server(app, log_level="warning").run(sockets=[sock])
