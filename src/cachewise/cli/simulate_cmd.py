"""`cachewise simulate`: every strategy's cost on a trace, against the oracle; `cachewise trace`
makes a trace from a ledger."""

from __future__ import annotations

import json
import time

import click
from rich.markup import escape
from rich.table import Table

from ..errors import InputError
from ..ledger import open_ledger
from ..report import parse_duration
from ..simulate import simulate
from ..strategies import STRATEGIES
from ..trace import ledger_rows, read_rows
from .main import console, fit, format_option, main, model_option, print_json, usd


@main.command(name="simulate")
@click.argument(
    "trace",
    help="JSON Lines of trace rows (started_at, request...) or request bodies; - reads "
    "standard input.",
)
@click.option(
    "--strategy",
    "names",
    multiple=True,
    type=click.Choice([*STRATEGIES, "oracle"]),
    help="Only these (repeatable).",
)
@click.option("--compare", is_flag=True, help="Every strategy (the default).")
@model_option("Replay as if every request used this model.")
@format_option("text", "json")
def simulate_command(
    trace: str, names: tuple[str, ...], compare: bool, model: str | None, fmt: str
) -> None:
    """Replay a trace under every caching strategy and the oracle's lower bound, on the engine."""
    rows = read_rows(trace)
    outcomes = simulate(rows, None if compare or not names else list(names), model=model)
    if fmt == "json":
        print_json(
            {
                "requests": len(rows),
                "strategies": [o.to_json() for o in outcomes],
                "oracle": {
                    "kind": "lower_bound",
                    "note": next(o.note for o in outcomes if o.name == "oracle"),
                },
            }
        )
        return
    table = Table(title=f"{len(rows)} requests from {escape(trace)}, cheapest first")
    columns = (
        "strategy",
        "cost",
        "vs oracle",
        "writes",
        "reads",
        "keep-alives",
        "waited",
        "errors",
    )
    for name in columns:
        table.add_column(name, justify="left" if name == "strategy" else "right")
    for o in outcomes:
        ratio = f"{o.ratio_to_oracle:.3f}x" if o.ratio_to_oracle is not None else "—"
        table.add_row(
            o.name,
            usd(o.cost_usd),
            ratio,
            f"{o.writes:,}",
            f"{o.reads:,}",
            f"{o.keep_alives:,}",
            f"{o.wait_seconds:.1f}s",
            f"{o.errors:,}",
        )
    out = console()
    out.print(fit(table, out, "keep-alives", "waited", "errors", "reads", "writes"))
    out.print(
        "oracle: a lower bound (no placement, TTL or keep-alive can cost less); "
        "see docs/simulate.md"
    )


@main.command(name="trace")
@click.option(
    "--from-ledger",
    "from_ledger",
    is_flag=True,
    required=True,
    help="Make the trace from the ledger's calls (the only source for now).",
)
@click.option("--ledger", "target", help="Ledger path or postgresql:// URL (default: the user's).")
@click.option("--since", help="Only calls in this window, e.g. 30m, 24h, 7d.")
@click.option(
    "--include-emulated",
    is_flag=True,
    help="Also the calls the emulator answered (left out by default).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the JSONL here (default: standard output).",
)
def trace_command(
    from_ledger: bool,
    target: str | None,
    since: str | None,
    include_emulated: bool,
    out: str | None,
) -> None:
    """A trace for `cachewise simulate`, from the calls a ledger kept prompts for."""
    window = parse_duration(since) if since else None
    with open_ledger(target, create=False) as ledger:
        start = None if window is None else time.time() - window
        rows, missing = ledger_rows(ledger, start, include_emulated=include_emulated)
    if not rows:
        raise InputError(
            f"no call in the ledger has its prompt ({missing} without): a trace needs the "
            "requests; record them with wrap(..., store_prompts=True)",
            field="--from-ledger",
        )
    text = "".join(json.dumps(row) + "\n" for row in rows)
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        click.echo(text, nl=False)
    if missing:
        click.echo(f"{missing} calls without a stored prompt were left out", err=True)
