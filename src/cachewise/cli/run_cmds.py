"""`cachewise run` and `cachewise demo`."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
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
from .main import Finite, console, fit, format_option, main, print_json, usd


def _check_key(emulate: bool) -> None:
    """Before anything slow: a run against the API needs a key."""
    if emulate or os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN"):
        return
    raise InputError(
        "no ANTHROPIC_API_KEY: set it (and ANTHROPIC_BASE_URL to use a proxy or "
        "`cachewise emulate`), or pass --emulate to run against the embedded "
        "emulator",
        field="ANTHROPIC_API_KEY",
    )


@contextlib.contextmanager
def interruptible(out: Console) -> Iterator[threading.Event]:
    """Ctrl-C, the way a run that spends money should take it: the first sets the event (send
    nothing new, let the calls in flight finish and be written); the second abandons them and
    exits at once (every result already written is on disk: lines are synced one by one)."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            out.print(
                "[bold]Interrupted again[/]: calls in flight abandoned. Results written so far "
                "are kept; run the same command again to resume."
            )
            os._exit(130)
        stop.set()
        out.print(
            "[bold]Interrupted[/]: sending nothing new; waiting for the calls in flight to "
            "finish (Ctrl-C again to abandon them)."
        )

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _celery_engine(
    engine: str, broker: str | None, redis_url: str | None, queue: str, via: str, emulate: bool
) -> Any:
    """The Celery engine the options ask for (None: the local one), checked before anything is
    read or sent."""
    if engine == "local":
        if broker is not None:
            raise InputError("--broker is for --engine celery", field="broker")
        return None
    if broker is None:
        raise InputError("--engine celery needs --broker URL (redis:// or amqp://)", field="broker")
    if via != "messages":
        raise InputError(
            "--via batches runs at the API, with no workers: leave out --engine celery",
            field="engine",
        )
    if emulate:
        raise InputError(
            "the workers make the calls: start `cachewise emulate` and give the workers "
            "ANTHROPIC_BASE_URL instead of --emulate",
            field="emulate",
        )
    try:
        from ..distributed import CeleryEngine
    except ImportError as exc:
        raise InputError(
            f"--engine celery needs Celery ({exc}): pip install 'cachewise[distributed]'",
            field="engine",
        ) from exc
    return CeleryEngine(broker, redis_url=redis_url, queue=queue)


@contextlib.contextmanager
def _client(emulate: bool, pacer: Pacer, out: Console, needed: bool = True) -> Iterator[Any]:
    if not needed:  # the workers have their own
        yield None
        return
    import anthropic
    import httpx2

    hooks = {"response": [lambda response: pacer.observe(response.headers)]}
    if emulate:
        from ..server.state import EmulatorConfig
        from ..testing import Emulator

        with Emulator(EmulatorConfig()) as emu:  # what `cachewise emulate` serves by default
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
    type=Finite(min=0, min_open=True),
    help="At most this many call starts per second.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="Retries per call on 429, 529, 5xx and connection errors.",
)
@click.option(
    "--redis",
    "redis_url",
    metavar="URL",
    help="Elect each prefix's scout in this Redis (redis://host:6379/0), shared by every run "
    "and proxy that uses it, instead of within this run.",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "celery"]),
    default="local",
    show_default=True,
    help="Where the calls run: this process's threads, or Celery workers (`cachewise worker`) "
    "on any number of machines.",
)
@click.option(
    "--broker",
    metavar="URL",
    help="With --engine celery: the Celery broker (redis://... or amqp://...); also the Redis "
    "of the run's state unless --redis is given.",
)
@click.option(
    "--queue",
    default="cachewise",
    show_default=True,
    help="With --engine celery: the broker queue the workers consume.",
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
    redis_url: str | None,
    engine: str,
    broker: str | None,
    queue: str,
    ledger_target: str | None,
    emulate: bool,
    fmt: str,
) -> None:
    """Run a Message Batches JSONL file so that one call warms each prefix and the rest read it.

    Ctrl-C once: nothing new is sent, calls in flight finish and are written, and the summary
    says how to resume (exit 130). Twice: calls in flight are abandoned and it exits at once.
    """
    celery = _celery_engine(engine, broker, redis_url, queue, via, emulate)
    if celery is None:
        _check_key(emulate)
    requests = read_requests(requests_file)  # every line checked before anything is sent
    options = RunOptions(
        workers=workers,
        scout=scout,
        via=cast(Any, via),
        ttl=cast(Any, ttl),
        max_rps=max_rps,
        retries=retries,
        redis=redis_url,
    )
    if redis_url is not None and celery is None:
        from ..gate import open_gate

        open_gate(redis_url)  # a URL that is not one fails here, before anything is sent
    out = Console(stderr=True)
    pacer = Pacer(max_rps)
    with (
        interruptible(out) as stop,
        open_ledger(ledger_target) as ledger,
        _client(emulate, pacer, out, celery is None) as client,
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
            stop=stop,
            inputs=[requests_file],
            engine=celery,
        )
    if fmt == "json":
        print_json(summary.to_json())
    else:
        _table(summary, console())
    if summary.interrupted:
        out.print(
            f"Stopped before sending {summary.not_sent:,} of {summary.total:,} request(s): run "
            "the same command again to send them (what is in the results file is skipped)."
        )
        sys.exit(130)


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
    help="Where to keep the results files and the chart (default: the demo folder under"
    " CACHEWISE_HOME or the user data dir, replaced by each demo).",
)
@format_option("text", "json")
def demo(workers: int, out_dir: Path | None, fmt: str) -> None:
    """The seed workload on the embedded emulator: 50 questions over an ~8,000-token context,
    with caching off, then on with a scout. Ctrl-C stops it as it stops `run`."""
    from ..demo import chart, run_demo

    out = console()
    if fmt == "text":
        out.print(
            "cachewise demo: the embedded emulator (no API key; usage follows the "
            "documented caching rules). Two runs of 50 calls; about 20 seconds."
        )
    with interruptible(Console(stderr=True)) as stop:
        result = run_demo(workers, out_dir, stop)
    png = Path(result["results_dir"]) / "demo.png"
    drawn = not result["interrupted"] and chart(result, png)
    result["chart"] = str(png) if drawn else None
    if fmt == "json":
        print_json(result)
    else:
        out.print(_demo_table(result, workers, out))
        if not result["interrupted"]:
            on = result["scenarios"][1]
            out.print(
                f"Caching on saved {result['savings_pct']:.1f}%: {on['writes']} write, "
                f"{on['reads']} reads (the scout warmed the prefix; the others read it)."
            )
        if drawn:
            out.print(f"Chart: {png}")
    if result["interrupted"]:
        Console(stderr=True).print("Interrupted: the demo stopped before both runs finished.")
        sys.exit(130)


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
