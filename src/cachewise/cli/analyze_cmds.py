"""`cachewise lint`, `explain` and `plan`: the analyzer's commands."""

from __future__ import annotations

import sys
from collections import Counter
from typing import cast

import click
from rich.markup import escape
from rich.table import Table

from ..errors import InputError
from ..explain import Explanation, explain_rows
from ..lint import Finding, lint_rows, to_sarif
from ..plan import TtlChoice
from ..plan import plan as make_plan
from ..trace import parse_row, read_rows
from .main import console, fit, format_option, main, model_option, print_json

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _codes(value: str | None) -> list[str]:
    return [c.strip() for c in (value or "").split(",") if c.strip()]


@main.command()
@click.argument(
    "files",
    nargs=-1,
    required=True,
    help="Request bodies (JSON), or JSON Lines of bodies or trace rows; - reads standard input.",
)
@model_option("Lint as if every request used this model.")
@format_option("text", "json", "sarif")
@click.option("--select", help="Only these rule codes, comma-separated (prefixes work: CW1).")
@click.option("--ignore", help="Not these rule codes, comma-separated.")
def lint(
    files: tuple[str, ...], model: str | None, fmt: str, select: str | None, ignore: str | None
) -> None:
    """Find what will go wrong with these requests' caching, before they are sent.

    Each FILE is a request body (JSON), or a sequence of bodies or trace rows (JSON Lines);
    `-` reads standard input. Exit status: 0 without errors, 1 with errors, 2 on bad input.
    """
    findings: list[Finding] = []
    requests = 0
    for name in files:
        rows = read_rows(name)
        requests += len(rows)
        findings += lint_rows(rows, model, select=_codes(select), ignore=_codes(ignore))
    counts = Counter(f.severity for f in findings)
    summary = {
        "files": len(files),
        "requests": requests,
        "errors": counts["error"],
        "warnings": counts["warning"],
        "info": counts["info"],
    }
    if fmt == "json":
        print_json({"findings": [f.to_json() for f in findings], "summary": summary})
    elif fmt == "sarif":
        print_json(to_sarif(findings))
    else:
        out = console()
        for f in findings:
            out.print(
                f"{escape(f.file)}:{f.line}: [{_STYLE[f.severity]}]{f.rule} {f.severity}"
                f"[/] request {f.request_index} {escape(f.path)}: {escape(f.message)}",
                soft_wrap=True,
            )
            out.print(f"    fix: {escape(f.suggestion)}", soft_wrap=True)
        out.print(
            f"{requests} request(s): {summary['errors']} error(s), {summary['warnings']} "
            f"warning(s), {summary['info']} info"
        )
    if counts["error"]:
        sys.exit(1)


@main.command()
@click.argument(
    "files",
    nargs=-1,
    required=True,
    help="Two requests (PREV CURR), or one trace of JSON Lines; - reads standard input.",
)
@format_option("text", "json")
def explain(files: tuple[str, ...], fmt: str) -> None:
    """Explain each request's cache outcome: `explain PREV CURR` or `explain TRACE.jsonl`.

    For a pair, the requests are taken as sent one right after the other; a trace is replayed on
    its own clock (`started_at`), and observed `usage` is checked against the prediction.
    """
    if len(files) > 2:
        raise InputError("give PREV CURR (two requests) or one trace file", field="FILES")
    rows = [row for name in files for row in read_rows(name)]
    if len(rows) < 2:
        raise InputError("need at least two requests to explain the second", file=files[0])
    explanations = explain_rows(rows)
    pair = len(files) == 2
    if fmt == "json":
        if pair:
            print_json(explanations[-1].to_json())
        else:
            print_json({"explanations": [e.to_json() for e in explanations]})
        return
    out = console()
    for e in explanations[-1:] if pair else explanations:
        out.print(_story(e, rows[e.request_index].file, rows[e.request_index].line), soft_wrap=True)


def _story(e: Explanation, file: str, line: int) -> str:
    u = e.usage or {}
    head = (
        f"[bold]#{e.request_index}[/] ({escape(file)}:{line}) "
        f"[{'green' if e.cause == 'hit' else 'yellow'}]{e.cause}[/]"
    )
    parts = [f"{head}: {escape(e.detail)}."]
    if u:
        parts.append(
            f"  read {u.get('cache_read_input_tokens', 0):,}, wrote "
            f"{u.get('cache_creation_input_tokens', 0):,}, uncached "
            f"{u.get('input_tokens', 0):,}"
            + (
                f"; expected to read {e.expected_read_tokens:,}, missed {e.missed_tokens:,}"
                if e.missed_tokens
                else ""
            )
            + "."
        )
    for b in e.breakpoints:
        if b["cause"] not in (None, "hit") and b["path"] != e.path:
            parts.append(
                f"  also {escape(b['path'])} ({b['ttl']}): {b['cause']}, missed "
                f"{b['missed_tokens']:,} tokens"
            )
    if e.diff:
        parts.append(f"  before: {escape(e.diff['before'])!r}")
        parts.append(f"  after:  {escape(e.diff['after'])!r}")
    if e.suggestion:
        parts.append(f"  fix: {escape(e.suggestion)}")
    return "\n".join(parts)


@main.command()
@click.argument("file", help="One request body (JSON) or trace row; - reads standard input.")
@click.option("--history", help="A trace of earlier requests to learn stability and gaps from.")
@click.option(
    "--ttl",
    type=click.Choice(["auto", "5m", "1h"]),
    default="auto",
    show_default=True,
    help="TTL of new breakpoints; auto takes the cheaper for the history's gaps (5m without).",
)
@click.option("--sort-tools", is_flag=True, help="Also sort tools by name (changes the request).")
@click.option(
    "--canonical-json",
    is_flag=True,
    help="Also sort keys in tool schemas and tool_use inputs (changes the request).",
)
@click.option(
    "--move-volatile",
    is_flag=True,
    help="Also move volatile system blocks after the stable ones (changes the request).",
)
@click.option(
    "--output",
    type=click.Choice(["report", "request"]),
    default="report",
    show_default=True,
    help="What to print: the plan report, or only the planned request (JSON, ready to send).",
)
@format_option("text", "json")
def plan(
    file: str,
    history: str | None,
    ttl: str,
    sort_tools: bool,
    canonical_json: bool,
    move_volatile: bool,
    output: str,
    fmt: str,
) -> None:
    """Place cache breakpoints (and TTLs) on the request in FILE.

    --output report (the default) prints the plan report: a table of the breakpoints and notes,
    or with --format json the JSON {request, breakpoints, notes}, which is a report, not a
    request to send. --output request prints only the planned request body as JSON, ready to
    send; --format does not apply to it.
    """
    rows = read_rows(file)
    if len(rows) != 1:
        raise InputError(
            f"holds {len(rows)} requests; plan takes one (use --history for the others)", file=file
        )
    past = read_rows(history) if history else None
    result = make_plan(
        parse_row(rows[0]),  # parsed here, so that a bad model or field names file and line
        past,
        cast(TtlChoice, ttl),
        sort_tools=sort_tools,
        canonical_json=canonical_json,
        move_volatile=move_volatile,
    )
    if output == "request":
        print_json(result.request)
        return
    if fmt == "json":
        print_json(result.to_json())
        return
    table = Table(title=f"Breakpoints for {escape(file)}")
    for name in ("path", "ttl", "tokens", "why"):
        table.add_column(name, justify="right" if name == "tokens" else "left")
    for b in result.breakpoints:
        table.add_row(escape(b.path), b.ttl, f"{b.tokens:,}", escape(b.why))
    out = console()
    out.print(fit(table, out))
    for note in result.notes:
        out.print(f"• {escape(note)}", soft_wrap=True)
    out.print("`--output request` prints the planned request, ready to send.")
