"""`cachewise simulate`: every strategy's cost on a trace, against the oracle."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from ..simulate import simulate
from ..strategies import STRATEGIES
from ..trace import read_rows
from .main import console, format_option, main, print_json, usd


@main.command(name="simulate")
@click.argument("trace")
@click.option(
    "--strategy",
    "names",
    multiple=True,
    type=click.Choice([*STRATEGIES, "oracle"]),
    help="Only these (repeatable).",
)
@click.option("--compare", is_flag=True, help="Every strategy (the default).")
@click.option("--model", help="Replay as if every request used this model.")
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
    out.print(table)
    out.print(
        "oracle: a lower bound (no placement, TTL or keep-alive can cost less); "
        "see docs/simulate.md"
    )
