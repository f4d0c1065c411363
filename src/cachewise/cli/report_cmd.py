"""`cachewise report`: the ledger, summed and grouped."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from ..ledger import open_ledger
from ..report import GROUPINGS, parse_duration, plot, report, to_csv
from .main import console, fit, format_option, main, print_json, usd


@main.command(name="report")
@click.option("--ledger", "target", help="Ledger path or postgresql:// URL (default: the user's).")
@click.option("--since", help="Only calls in this window, e.g. 30m, 24h, 7d.")
@click.option("--by", type=click.Choice(list(GROUPINGS)), help="Group the calls.")
@click.option(
    "--include-emulated",
    is_flag=True,
    help="Also count calls the emulator answered (rehearsals; left out by default).",
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="With --by prefix: how many prefixes, the biggest spend first.",
)
@format_option("text", "json", "csv")
@click.option(
    "--plot",
    "plot_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw cumulative cost and the token mix to this PNG.",
)
def report_command(
    target: str | None,
    since: str | None,
    by: str | None,
    include_emulated: bool,
    top: int,
    fmt: str,
    plot_file: Path | None,
) -> None:
    """What the calls in the ledger cost, what caching saved, and why calls missed."""
    window = parse_duration(since) if since else None
    with open_ledger(target, create=False) as ledger:
        result = report(ledger, since=window, by=by, include_emulated=include_emulated, top=top)
        if plot_file is not None:
            plot(ledger, plot_file, since=window, by=by, include_emulated=include_emulated)
    if fmt == "json":
        print_json(result)
    elif fmt == "csv":
        sys.stdout.write(to_csv(result))
    else:
        _text(result, by)
    if plot_file is not None and fmt == "text":
        console().print(f"Chart written to {escape(str(plot_file))}")


def _text(result: dict[str, Any], by: str | None) -> None:
    out = console()
    table = Table(title="cachewise ledger" + (f" by {by}" if by else ""))
    wire = by == "cause"  # markers lost or changed on the way: a cause of their own
    columns = ["group", "calls", "errors", "input", "cache write", "cache read", "output"]
    columns += ["cost", "without cache", "saved", "hit rate"]
    for name in [*columns, *(["markers lost", "markers changed"] if wire else [])]:
        table.add_column(name, justify="left" if name == "group" else "right")
    rows = (
        [*result["groups"], {"group": "total", **result}] if by else [{"group": "total", **result}]
    )
    for r in rows:
        u = r["usage"]
        table.add_row(
            escape(_short(str(r["group"])) if by == "prefix" else str(r["group"])),
            f"{r['calls']:,}",
            f"{r['errors']:,}",
            f"{u['input_tokens']:,}",
            f"{u['cache_creation_input_tokens']:,}",
            f"{u['cache_read_input_tokens']:,}",
            f"{u['output_tokens']:,}",
            usd(r["cost_usd"]),
            usd(r["cost_without_cache_usd"]),
            f"{r['savings_pct']:.1f}%",
            f"{r['cache_hit_rate']:.1%}",
            *([f"{r['markers_lost']:,}", f"{r['markers_changed']:,}"] if wire else []),
        )
    out.print(fit(table, out, "errors", "output", "input", "cache write", "cache read", "hit rate"))
    if result["groups_left_out"]:
        out.print(f"{result['groups_left_out']:,} more prefixes spent less (--top shows more).")
    out.print(f"Writes never read: {result['writes_never_read']:,}")
    if result["spooled"]:
        out.print(
            f"{result['spooled']:,} of these calls wait in the spool (the ledger refused them for "
            "a while); they are recorded when a wrap, run or proxy next writes to it."
        )
    if result["emulated_left_out"]:
        out.print(
            f"{result['emulated_left_out']:,} call(s) the emulator answered are not counted "
            "(--include-emulated counts them)."
        )
    if result["misses_by_cause"]:
        causes = ", ".join(f"{k} {v}" for k, v in sorted(result["misses_by_cause"].items()))
        out.print(f"Misses by cause: {causes}")
    if result["markers_lost"] or result["markers_changed"]:
        out.print(
            f"Markers lost on the way to the API: {result['markers_lost']:,}; changed: "
            f"{result['markers_changed']:,}"
        )
    if result["predicted_reads_not_served"]:
        out.print(
            "Reads the engine predicted and the API did not serve (likely_server_side): "
            f"{result['predicted_reads_not_served']:,}"
        )
    for role, w in result["gate_waits"].items():
        if w["waited"]:
            out.print(
                f"Warm gate, {escape(role)}: {w['waited']:,} of {w['calls']:,} calls waited, "
                f"median {w['median_wait_s']:.2f} s, {w['total_wait_s']:,.1f} s in all"
            )


def _short(prefix_hash: str) -> str:
    """A prefix hash as wide as a table can show it: 16 hex digits tell thousands apart."""
    return prefix_hash if len(prefix_hash) <= 17 else prefix_hash[:16] + "…"
