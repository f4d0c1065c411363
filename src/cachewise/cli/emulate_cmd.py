"""`cachewise emulate`: the emulator as a local server."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import InputError
from ..server.faults import parse_faults
from ..server.limits import parse_limits
from ..server.net import is_loopback, server, url
from ..server.state import EmulatorConfig
from .main import Finite, bind, main


def load_workspaces(path: Path) -> dict[str, str]:
    """A JSON object mapping API keys to workspace ids.

    Raises:
        InputError: naming the file, line and field that is wrong.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read workspaces file: {exc.strerror}", file=str(path)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc.msg}", file=str(path), line=exc.lineno) from None
    except RecursionError:
        raise InputError("not JSON we read: nested too deeply", file=str(path)) from None
    if not isinstance(data, dict):
        raise InputError('must be a JSON object {"api-key": "workspace-id", ...}', file=str(path))
    for key, value in data.items():
        if not isinstance(value, str) or not value:
            raise InputError(
                "workspace id must be a non-empty string", file=str(path), field=f"[{key[:4]}…]"
            )
    return data


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8787, show_default=True, help="Port to bind."
)
@click.option(
    "--clock",
    type=click.Choice(["real", "virtual"]),
    default="real",
    show_default=True,
    help="virtual: time moves only through POST /_emulator/clock (latency is still real).",
)
@click.option(
    "--ttft-ms",
    type=Finite(min=0),
    default=400.0,
    show_default=True,
    help="Time to first byte before prefill.",
)
@click.option(
    "--prefill-ms-per-1k",
    type=Finite(min=0),
    default=25.0,
    show_default=True,
    help="Extra time to first byte per 1,000 uncached input tokens.",
)
@click.option(
    "--output-tokens-per-s",
    type=Finite(min=0),
    default=80.0,
    show_default=True,
    help="Streaming speed (0: instant).",
)
@click.option(
    "--workspaces",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON file mapping API keys to workspace ids (default: one per key).",
)
@click.option("--faults", help='Fault injection, e.g. "429:0.05,529@3+7,drop:0.01".')
@click.option("--limits", help="Rate limits per workspace and model, e.g. rpm=50,itpm=30000.")
@click.option("--seed", type=int, help="Seed for fault rates and the eviction knob.")
@click.option(
    "--batch-concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Batch requests that start together (and so cannot read each other).",
)
@click.option(
    "--batch-cache",
    type=click.Choice(["separate", "shared"]),
    default="separate",
    show_default=True,
    help="Whether batches read what the Messages API wrote.",
)
@click.option("--legacy-lookback", is_flag=True, help="The pre-2026-03 lookback reading.")
@click.option(
    "--eviction-rate",
    type=Finite(0, 1),
    default=0.0,
    help="Probability of a spurious server-side miss per lookup.",
)
def emulate(
    host: str,
    port: int,
    clock: str,
    ttft_ms: float,
    prefill_ms_per_1k: float,
    output_tokens_per_s: float,
    workspaces: Path | None,
    faults: str | None,
    limits: str | None,
    seed: int | None,
    batch_concurrency: int,
    batch_cache: str,
    legacy_lookback: bool,
    eviction_rate: float,
) -> None:
    """Serve an offline Claude Messages API that caches exactly as documented."""
    parse_faults(faults)  # fail on bad input before binding anything
    parse_limits(limits)
    keys = load_workspaces(workspaces) if workspaces else None
    sock = bind(host, port)  # before the banner: a port in use says so, and nothing else
    loopback = is_loopback(sock.getsockname()[0])  # the address bound, whatever --host named
    config = EmulatorConfig(
        clock=clock,  # type: ignore[arg-type]
        ttft_ms=ttft_ms,
        prefill_ms_per_1k=prefill_ms_per_1k,
        output_tokens_per_s=output_tokens_per_s,
        workspaces=keys,
        faults=faults,
        limits=limits,
        seed=seed,
        batch_concurrency=batch_concurrency,
        batch_cache=batch_cache,  # type: ignore[arg-type]
        legacy_lookback=legacy_lookback,
        eviction_rate=eviction_rate,
        loopback=loopback,
    )
    base = url(sock)
    click.echo(
        f"cachewise emulator on {base} (clock {clock}, first byte {ttft_ms:g} ms + "
        f"{prefill_ms_per_1k:g} ms per 1k uncached tokens)"
    )
    click.echo(f"  export ANTHROPIC_BASE_URL={base}   # any API key works; each key is a workspace")
    if not loopback:
        click.echo(
            f"  warning: listening on {host}, not loopback only: any client that can reach this "
            "machine can use the emulator (its control API still answers loopback callers only)",
            err=True,
        )
    from ..server.app import create_app  # the server, only when it runs

    server(create_app(config), log_level="warning").run(sockets=[sock])
