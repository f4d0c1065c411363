"""`cachewise models`: the catalog."""

from __future__ import annotations

from rich.table import Table

from ..catalog import catalog
from .main import console, fit, format_option, main, print_json


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
        "model (aliases)",
        "status",
        "min cache",
        "input",
        "5m write",
        "1h write",
        "read",
        "output",
    ):
        table.add_column(name, justify="left" if name in ("model (aliases)", "status") else "right")
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
        # Aliases under the id, one a line: a column of their own would not fit 80 columns.
        names = "\n".join([m.id, *(f"[dim]({alias})[/]" for alias in m.aliases)])
        table.add_row(names, m.status, minimum, *cells)
    out = console()
    out.print(fit(table, out, "status"))
    out.print("Unknown values are shown as unknown or —; `--format json` gives sources and notes.")
