"""`cachewise models`: the catalog."""

from __future__ import annotations

from rich.table import Table

from ..catalog import catalog
from .main import console, format_option, main, print_json


@main.command()
@format_option("text", "json")
def models(fmt: str) -> None:
    """List every model: ids, aliases, cache minimums and prices per million tokens."""
    cat = catalog()
    if fmt == "json":
        print_json(cat.to_json())
        return
    table = Table(title=f"Claude models (prices USD per MTok, as of {cat.as_of})")
    for name in (
        "model",
        "aliases",
        "status",
        "min cache",
        "input",
        "5m write",
        "1h write",
        "read",
        "output",
    ):
        table.add_column(
            name, justify="left" if name in ("model", "aliases", "status") else "right"
        )
    for m in cat.models:
        p = m.prices
        cells = (
            ["—"] * 5
            if p is None
            else [
                f"{p.input}",
                f"{p.cache_write_5m}",
                f"{p.cache_write_1h}",
                f"{p.cache_read}",
                f"{p.output}",
            ]
        )
        minimum = f"{m.min_cacheable_tokens:,}" if m.min_cacheable_tokens else "unknown"
        table.add_row(m.id, ", ".join(m.aliases), m.status, minimum, *cells)
    console().print(table)
    console().print(
        "Unknown values are shown as unknown or —; `--format json` gives sources and notes."
    )
