"""`cachewise cost`: what N calls over one shared context cost, with and without caching."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..catalog import get_model
from ..cost import break_even_reads
from ..scenario import Scenario, ScenarioResult, run_scenarios
from .main import Finite, console, fit, format_option, main, model_option, print_json, usd

# Every call runs through the engine once per TTL: a million take minutes, more is not a question
# this calculator answers better than a million does.
MAX_CALLS = 1_000_000
# From this many calls the wait is noticeable (seconds), and a progress bar says how long.
PROGRESS_FROM = 20_000


@main.command()
@model_option("Model id or alias, e.g. claude-sonnet-4-6.", required=True)
@click.option(
    "--calls",
    type=click.IntRange(min=1, max=MAX_CALLS),
    required=True,
    help=f"Number of calls, at most {MAX_CALLS:,} (each runs through the engine three times).",
)
@click.option(
    "--static-tokens",
    type=click.IntRange(min=0),
    required=True,
    help="Tokens shared by every call, behind one breakpoint.",
)
@click.option(
    "--dynamic-tokens",
    type=click.IntRange(min=0),
    required=True,
    help="Tokens unique to each call, after the breakpoint.",
)
@click.option(
    "--output-tokens",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Tokens each call generates (priced, and they lengthen the call).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Calls in flight at once.",
)
@click.option(
    "--gap-seconds",
    type=Finite(min=0),
    default=0.0,
    show_default=True,
    help="Seconds between call starts (0: each worker starts when its last call ends).",
)
@click.option(
    "--scout/--no-scout",
    default=False,
    show_default=True,
    help="Let one call warm the cache before the other workers start.",
)
@click.option("--batch", is_flag=True, help="Price as Message Batches (50% of everything).")
@format_option("text", "json")
def cost(
    model: str,
    calls: int,
    static_tokens: int,
    dynamic_tokens: int,
    output_tokens: int,
    workers: int,
    gap_seconds: float,
    scout: bool,
    batch: bool,
    fmt: str,
) -> None:
    """Price N calls over the same context: caching off, 5m and 1h, run through the engine."""
    m = get_model(model)
    scenario = Scenario(
        m.id,
        calls,
        static_tokens,
        dynamic_tokens,
        output_tokens,
        workers,
        gap_seconds,
        scout,
        batch,
    )
    with _progress(calls) as progress:
        results = run_scenarios(scenario, progress)
    notes = _notes(scenario, results)
    if fmt == "json":
        print_json(
            {
                "model": m.id,
                "calls": calls,
                "static_tokens": static_tokens,
                "dynamic_tokens": dynamic_tokens,
                "output_tokens": output_tokens,
                "workers": workers,
                "gap_seconds": gap_seconds,
                "scout": scout,
                "batch": batch,
                "scenarios": [r.to_json() for r in results],
                "break_even_reads": {ttl: break_even_reads(m, ttl) for ttl in ("5m", "1h")},
                "notes": notes,
            }
        )
        return
    off = results[0].cost_usd
    table = Table(
        title=f"{calls} calls to {m.id}: {static_tokens:,} shared + {dynamic_tokens:,} "
        f"unique tokens each"
    )
    for name in ("caching", "input", "cache write", "cache read", "output", "cost", "vs off"):
        table.add_column(name, justify="left" if name == "caching" else "right")
    for r in results:
        u = r.usage
        table.add_row(
            r.name,
            f"{u.input_tokens:,}",
            f"{u.cache_creation_input_tokens:,}",
            f"{u.cache_read_input_tokens:,}",
            f"{u.output_tokens:,}",
            usd(r.cost_usd),
            "—" if r.name == "off" else _versus(off, r.cost_usd),
        )
    out = console()
    out.print(fit(table, out, "output", "input", "cache read"))
    for note in notes:
        out.print(f"• {note}", soft_wrap=True)


@contextlib.contextmanager
def _progress(calls: int) -> Iterator[Callable[[float], None] | None]:
    """A bar on standard error while a long scenario runs, gone when it ends."""
    if calls < PROGRESS_FROM:
        yield None
        return
    with Progress(
        TextColumn("[bold]cost"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("cost", total=1.0)
        yield lambda done: bar.update(task, completed=done)


def _versus(off: Decimal, cost: Decimal) -> str:
    """The cost against caching off, in words: caching can cost more (a write that expires
    unread), and a negative "less" would read as its opposite."""
    if not off:
        return "—"
    change = float((cost - off) / off)
    size = f"{abs(change):.0%}"
    if size == "0%":
        return "same"
    return f"{size} {'more' if change > 0 else 'less'}"


def _notes(s: Scenario, results: list[ScenarioResult]) -> list[str]:
    m = get_model(s.model)
    notes: list[str] = []
    five, hour = break_even_reads(m, "5m"), break_even_reads(m, "1h")
    if five and hour:
        notes.append(
            f"Break-even: a 5m write pays for itself after {five} read(s), a 1h write "
            f"after {hour}; an entry lives 5 minutes (or 1 hour) from its last use."
        )
    minimum = m.min_cacheable_tokens
    if minimum and s.static_tokens < minimum:
        notes.append(
            f"{s.static_tokens:,} static tokens are below {m.id}'s minimum of "
            f"{minimum:,}: nothing is cached, silently, as on the API."
        )
    by_name: dict[str, Any] = {r.name: r for r in results}
    five_minutes = by_name["5m"]
    if s.workers > 1 and s.scout:
        notes.append("A scout call went first; the other workers started at its first byte.")
    elif five_minutes.before_first_byte > 1 and five_minutes.writes > 1:
        notes.append(
            f"The first {five_minutes.before_first_byte} calls started before any response "
            f"began, so each paid the write ({five_minutes.writes} writes at 5m); "
            "--scout lets one call warm the cache first."
        )
    if five_minutes.writes > 1 and s.gap_seconds > 300:
        notes.append(
            f"With {s.gap_seconds:g}s between calls every 5m entry expires before its "
            "next read; the 1h TTL keeps it."
        )
    return notes
