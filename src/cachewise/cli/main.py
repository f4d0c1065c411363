"""The command group and what every command shares: output format, errors, JSON printing."""

from __future__ import annotations

import importlib
import json
import math
import os
import platform
import socket
import sys
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from ..__about__ import __version__
from ..catalog import get_model
from ..errors import CachewiseError, CachewiseWarning, InputError, UnknownModel

F = TypeVar("F", bound=Callable[..., Any])


# Each command's module, imported only when the command runs (or `--help` lists them all): a
# lint in a pre-commit hook should not load the servers, the HTTP client and asyncio first.
COMMANDS = {
    "cost": "cost_cmd",
    "dashboard": "dashboard_cmd",
    "demo": "run_cmds",
    "doctor": "doctor_cmd",
    "emulate": "emulate_cmd",
    "explain": "analyze_cmds",
    "lint": "analyze_cmds",
    "models": "models_cmd",
    "plan": "analyze_cmds",
    "proxy": "proxy_cmd",
    "report": "report_cmd",
    "run": "run_cmds",
    "simulate": "simulate_cmd",
    "trace": "simulate_cmd",
    "worker": "worker_cmd",
}


class CachewiseGroup(click.Group):
    """Turns every cachewise error into a one-line message: no traceback for things users did.
    Bad input (a malformed file or option, a model the catalog does not know) exits 2, as
    click's own usage errors do; any other cachewise error exits 1. Commands load lazily
    (`COMMANDS`); each module registers its commands on `main` when imported."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"{__package__}.{COMMANDS[cmd_name]}")
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except (InputError, UnknownModel) as exc:
            raise click.UsageError(str(exc)) from None
        except CachewiseError as exc:
            raise click.ClickException(str(exc)) from None


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Our warnings as a person reads them (`warning: ...` on stderr); others as Python does."""
    if issubclass(category, CachewiseWarning):
        click.echo(f"warning: {message}", err=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@click.group(cls=CachewiseGroup)
@click.version_option(
    __version__,
    prog_name="cachewise",
    message=f"%(prog)s %(version)s (Python {platform.python_version()}, {sys.platform})",
)
def main() -> None:
    """Make Claude API calls prompt-cache-optimal, and prove it."""


def format_option(*choices: str) -> Callable[[F], F]:
    """`--format`, text by default."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(choices) or ["text", "json"]),
        default="text",
        show_default=True,
        help="Output format.",
    )


class Finite(click.FloatRange):
    """A float option in a range, and finite: click's `FloatRange` takes `nan` (no comparison
    fails for it) and `inf`, and a wait or a rate of either hangs or means nothing."""

    name = "finite float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def model_option(help: str, *, required: bool = False) -> Callable[[F], F]:
    """`--model`, looked up before the command does anything: a typo is the flag's fault, and the
    error names the flag and the closest ids."""
    return click.option("--model", required=required, callback=_known_model, help=help)


def _known_model(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            get_model(value)
        except UnknownModel as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def console() -> Console:
    """A console for tables; piped output gets a wide page instead of rich's 80 columns, unless
    COLUMNS says how wide."""
    out = Console()
    return out if out.is_terminal or "COLUMNS" in os.environ else Console(width=160)


def fit(table: Table, out: Console, *optional: str) -> Table:
    """The table, made to fit `out` without cutting a cell.

    Rich squeezes a table that is too wide by cutting cells to `…`, ids and money included. So
    a column whose cells cannot wrap (a single word each: ids, money, counts) keeps the width of
    its widest cell, its header wrapping if it is wider; columns of words wrap; and when even that
    is too wide, the `optional` columns go, in the order given, until the table fits.
    """
    if _measure(table, out).maximum <= out.width:
        return table
    for column in table.columns:
        cells = [Measurement.get(out, out.options, cell) for cell in column.cells]
        if all(m.minimum == m.maximum for m in cells):
            header = Measurement.get(out, out.options, column.header).minimum
            column.width = max([header, *(m.maximum for m in cells)])
    for name in optional:
        if _measure(table, out).minimum <= out.width:
            break
        table.columns = [c for c in table.columns if c.header != name]
    return table


def _measure(table: Table, out: Console) -> Measurement:
    """The table's width with every column wrapped as far as it can be, and with none wrapped."""
    return Measurement.get(out, out.options.update_width(_UNBOUNDED), table)


_UNBOUNDED = 100_000  # columns: wider than any table


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def usd(value: float | Any) -> str:
    return f"${float(value):,.4f}" if float(value) < 100 else f"${float(value):,.2f}"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket for a server command, bound before its banner: a port in use (or an
    address that is not ours) is a usage error that says so, and nothing else is printed.

    Raises:
        InputError: the address cannot be bound.
    """
    from ..server.net import listen

    try:
        return listen(host, port)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise InputError(f"cannot listen on {host} port {port}: {why}", field="--port") from None
