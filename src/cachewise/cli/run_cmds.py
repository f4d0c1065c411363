"""`cachewise run` and `cachewise demo`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..errors import InputError
from ..ledger import open_ledger
from ..runner import Pacer, RunOptions, RunSummary, read_requests, run_requests
from .main import console, fit, format_option, main, print_json, usd


@contextlib.contextmanager
def _client(emulate: bool, pacer: Pacer, out: Console) -> Iterator[Any]:
    import anthropic
    import httpx2

    hooks = {"response": [lambda response: pacer.observe(response.headers)]}
    if emulate:
        from ..testing import Emulator

        with Emulator(
            clock="real", ttft_ms=400, prefill_ms_per_1k=25, output_tokens_per_s=80
        ) as emu:
            out.print(
                f"Running against the embedded cachewise emulator at {emu.base_url}: no API "
                "key, emulated replies, usage computed by the documented caching rules."
            )
            http = httpx2.Client(event_hooks=hooks, timeout=600)
            with anthropic.Anthropic(
                api_key="cachewise-emulator", base_url=emu.base_url, http_client=http
            ) as client:
                yield client
        return
    if not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
        raise InputError(
            "no ANTHROPIC_API_KEY: set it (and ANTHROPIC_BASE_URL to use a proxy or "
            "`cachewise emulate`), or pass --emulate to run against the embedded "
            "emulator",
            field="ANTHROPIC_API_KEY",
        )
    with anthropic.Anthropic(http_client=httpx2.Client(event_hooks=hooks, timeout=600)) as client:
        yield client


@main.command(name="run")
@click.argument(
    "requests_file",
    metavar="REQUESTS.jsonl",
    help='Message Batches JSONL: one {"custom_id", "params"} object a line.',
)
@click.option(
    "--out",
    "out_file",
    required=True,
    metavar="RESULTS.jsonl",
    help="Results, appended as calls finish; a re-run skips what is there.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Calls in flight at once.",
)
@click.option(
    "--scout/--no-scout",
    default=True,
    show_default=True,
    help="One call per prefix first; the rest at its first byte.",
)
@click.option(
    "--via",
    type=click.Choice(["messages", "batches"]),
    default="messages",
    show_default=True,
    help="One Messages API call per request, or Message Batches (half price, after a priming "
    "batch per prefix).",
)
@click.option(
    "--ttl",
    type=click.Choice(["auto", "5m", "1h"]),
    default="auto",
    show_default=True,
    help="TTL of planned breakpoints; auto takes 1h when --max-rps spaces a prefix's calls more "
    "than 5 minutes apart and the engine prices it cheaper.",
)
@click.option(
    "--max-rps",
    type=click.FloatRange(min=0, min_open=True),
    help="At most this many call starts per second.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="Retries per call on 429, 529, 5xx and connection errors.",
)
@click.option("--ledger", "ledger_target", help="Ledger path or postgresql:// URL.")
@click.option("--emulate", is_flag=True, help="Run against the embedded emulator.")
@format_option("text", "json")
def run_command(
    requests_file: str,
    out_file: str,
    workers: int,
    scout: bool,
    via: str,
    ttl: str,
    max_rps: float | None,
    retries: int,
    ledger_target: str | None,
    emulate: bool,
    fmt: str,
) -> None:
    """Run a Message Batches JSONL file so that one call warms each prefix and the rest read it."""
    requests = read_requests(requests_file)  # every line checked before anything is sent
    options = RunOptions(
        workers=workers,
        scout=scout,
        via=cast(Any, via),
        ttl=cast(Any, ttl),
        max_rps=max_rps,
        retries=retries,
    )
    out = Console(stderr=True)
    pacer = Pacer(max_rps)
    with (
        open_ledger(ledger_target) as ledger,
        _client(emulate, pacer, out) as client,
        Progress(
            TextColumn("[bold]run"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=out,
            transient=fmt == "json",
        ) as bar,
    ):
        task = bar.add_task("run", total=len(requests), stats="")

        def progress(s: RunSummary) -> None:
            prompt = s.usage.prompt_tokens
            rate = s.usage.cache_read_input_tokens / prompt if prompt else 0.0
            bar.update(
                task,
                completed=s.skipped + s.succeeded + s.errored,
                stats=f"hit {rate:.0%}  spent {usd(s.cost_usd)}  saved "
                f"{usd(s.cost_without_cache_usd - s.cost_usd)}",
            )

        bar.update(task, completed=0)
        summary = run_requests(
            requests,
            out_file,
            client,
            options=options,
            ledger=ledger,
            pacer=pacer,
            progress=progress,
        )
    if fmt == "json":
        print_json(summary.to_json())
        return
    _table(summary, console())


def _table(s: RunSummary, out: Console) -> None:
    u = s.usage
    table = Table(
        title=f"{s.succeeded} succeeded, {s.errored} errored, {s.skipped} skipped "
        f"({s.wall_seconds:.1f}s)"
    )
    for name in ("", "calls", "input tokens", "cache writes", "cache reads", "cost"):
        table.add_column(name, justify="left" if not name else "right")
    prompt = u.prompt_tokens
    table.add_row(
        "this run",
        f"{s.succeeded:,}",
        f"{u.input_tokens:,}",
        f"{u.cache_creation_input_tokens:,}",
        f"{u.cache_read_input_tokens:,}",
        usd(s.cost_usd),
    )
    table.add_row(
        "without caching",
        f"{s.succeeded:,}",
        f"{prompt:,}",
        "0",
        "0",
        usd(s.cost_without_cache_usd),
    )
    out.print(fit(table, out, "calls"))  # the title has them too
    saved = s.cost_without_cache_usd - s.cost_usd
    pct = float(saved / s.cost_without_cache_usd * 100) if s.cost_without_cache_usd else 0.0
    out.print(f"Saved {usd(saved)} ({pct:.1f}%): {s.writes} call(s) wrote, {s.reads} read.")
    for note in s.notes:
        out.print(f"• {note}", soft_wrap=True)


@main.command()
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Calls in flight at once, in both runs.",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to keep the results files and the chart (default: a temporary folder).",
)
@format_option("text", "json")
def demo(workers: int, out_dir: Path | None, fmt: str) -> None:
    """The seed workload on the embedded emulator: 50 questions over an ~8,000-token context,
    with caching off, then on with a scout."""
    from ..demo import chart, run_demo

    out = console()
    if fmt == "text":
        out.print(
            "cachewise demo: the embedded emulator (no API key; usage follows the "
            "documented caching rules). Two runs of 50 calls; about 15 seconds."
        )
    result = run_demo(workers, out_dir)
    png = Path(result["results_dir"]) / "demo.png"
    drawn = chart(result, png)
    result["chart"] = str(png) if drawn else None
    if fmt == "json":
        print_json(result)
        return
    out.print(_demo_table(result, workers, out))
    on = result["scenarios"][1]
    out.print(
        f"Caching on saved {result['savings_pct']:.1f}%: {on['writes']} write, "
        f"{on['reads']} reads (the scout warmed the prefix; the others read it)."
    )
    if drawn:
        out.print(f"Chart: {png}")


def _demo_table(result: dict[str, Any], workers: int, out: Console) -> Table:
    table = Table(title=f"{result['calls']} calls to {result['model']}, {workers} workers")
    for name in ("caching", "input", "cache write", "cache read", "output", "cost", "wall"):
        table.add_column(name, justify="left" if name == "caching" else "right")
    for r in result["scenarios"]:
        u = r["usage"]
        table.add_row(
            r["name"],
            f"{u['input_tokens']:,}",
            f"{u['cache_creation_input_tokens']:,}",
            f"{u['cache_read_input_tokens']:,}",
            f"{u['output_tokens']:,}",
            usd(r["cost_usd"]),
            f"{r['wall_seconds']:.1f}s",
        )
    return fit(table, out, "wall", "output")
