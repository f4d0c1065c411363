"""`cachewise doctor`: the installation, the ledger, the catalog and the optional services."""

from __future__ import annotations

import click

from ..doctor import Report, diagnose
from .main import Finite, format_option, main, print_json

_MARK = {"ok": "ok", "warn": "warn", "skip": "-", "fail": "FAIL"}


@main.command()
@click.option(
    "--ledger", help="Ledger path or postgresql:// URL to look at (default: the default ledger)."
)
@click.option(
    "--redis",
    "redis_url",
    metavar="URL",
    envvar="CACHEWISE_REDIS_URL",
    help="Redis to ask (the fleet gate's), e.g. redis://127.0.0.1:6379/0; $CACHEWISE_REDIS_URL.",
)
@click.option(
    "--postgres",
    "postgres_url",
    metavar="URL",
    envvar="CACHEWISE_POSTGRES_URL",
    help="PostgreSQL to ask, e.g. postgresql://127.0.0.1/cachewise; $CACHEWISE_POSTGRES_URL.",
)
@click.option(
    "--timeout",
    type=Finite(min=0.1, max=30),
    default=2.0,
    show_default=True,
    help="Seconds each service has to answer.",
)
@format_option("text", "json")
def doctor(
    ledger: str | None, redis_url: str | None, postgres_url: str | None, timeout: float, fmt: str
) -> None:
    """Show what is installed, where the ledger is, which catalog date the prices come from,
    and whether Redis and PostgreSQL answer.

    Read-only: the ledger is never created or migrated, and each service gets one question.
    Exit status: 0 when every check passes or is skipped, 1 when one fails (a service named by
    a flag or variable does not answer, the ledger cannot be read).
    """
    report = diagnose(
        ledger=ledger, redis_url=redis_url, postgres_url=postgres_url, timeout=timeout
    )
    if fmt == "json":
        print_json(report.to_json())
    else:
        _print(report)
    if not report.ok:
        raise SystemExit(1)


def _print(report: Report) -> None:
    click.echo(f"cachewise {report.version} on {report.python} ({report.platform})")
    if report.extras:
        click.echo("\nextras (pip install 'cachewise[NAME]'):")
        for extra in report.extras:
            have = ", ".join(f"{p} {v}" for p, v in extra.packages.items() if v)
            missing = [p for p, v in extra.packages.items() if not v]
            state = "installed" if extra.installed else "not installed"
            why = have if extra.installed else "missing " + ", ".join(missing)
            click.echo(f"  {extra.name:<12} {state:<14} {why}")
    else:
        click.echo("\nextras: unknown (cachewise is not installed as a package here)")
    click.echo("\nchecks:")
    for check in report.checks:
        where = f" {check.target}:" if check.target else ""
        took = f" in {check.ms:.1f} ms" if check.ms is not None else ""
        click.echo(f"  {_MARK[check.status]:<5} {check.name:<11}{where} {check.detail}{took}")
    failed = [c.name for c in report.checks if c.status == "fail"]
    if failed:
        click.echo(f"\n{len(failed)} check(s) failed: {', '.join(failed)}", err=True)
