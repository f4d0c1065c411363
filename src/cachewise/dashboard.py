"""`cachewise dashboard`: the ledger as one page to look at, served on loopback.

`/` is a single HTML page with everything inline (CSS, a little vanilla JavaScript, SVG charts
drawn in the browser): nothing is fetched from anywhere but this server, so it works on a machine
with no network. It reads `/api/summary`, whose numbers are `cachewise report`'s own (`report`
and `summarize`): the page can never disagree with the CLI.

The app opens the ledger for each request and never creates one: a ledger that does not exist
yet (nothing recorded) is a 503 with the reason, which the page shows.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .errors import LedgerError
from .ledger import Ledger, open_ledger
from .report import Totals, summarize

__all__ = ["dashboard_app", "summary"]

# The page talks to this server only; inline script and style are its whole code.
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
)
_SERIES_MIN_DAYS = 3  # fewer days than this are drawn by the hour


def summary(
    ledger: Ledger, *, include_emulated: bool = False, top: int = 10, now: float | None = None
) -> dict[str, Any]:
    """What the dashboard shows, from the report's functions: `totals` is exactly
    `cachewise report --format json`; `series` the cost with and without caching by day (by
    hour when the calls span fewer than three days); `causes` the report by cause (misses,
    markers lost and changed); `prefixes` the `top` prefixes by spend.

    Two passes over the ledger: one by hour (totals, series and causes all fold from its sums)
    and one for the prefixes."""
    hourly = summarize(ledger, by="hour", include_emulated=include_emulated)
    totals = replace(hourly, by=None, groups={}).to_json()
    daily = defaultdict[str, Totals](Totals)
    for hour, sums in hourly.groups.items():
        daily[hour[:10]].merge(sums)
    by, series = ("day", dict(daily)) if len(daily) >= _SERIES_MIN_DAYS else ("hour", hourly.groups)
    prefixes = summarize(
        ledger, by="prefix", include_emulated=include_emulated, top=top, waits=False
    ).to_json()
    return {
        "totals": totals,
        "saved_usd": float(hourly.total.cost_without_cache_usd - hourly.total.cost_usd),
        "series": {
            "by": by,
            "points": [
                {
                    "at": name,
                    "calls": t.calls,
                    "cost_usd": float(t.cost_usd),
                    "cost_without_cache_usd": float(t.cost_without_cache_usd),
                    "cache_hit_rate": round(t.hit_rate, 4),
                }
                for name, t in sorted(series.items())
            ],
        },
        "causes": [{"cause": name, **t.to_json()} for name, t in sorted(hourly.causes.items())],
        "prefixes": prefixes["groups"],
        "prefixes_left_out": prefixes["groups_left_out"],
        "generated_at": time.time() if now is None else now,
    }


def dashboard_app(
    ledger_target: str | Path | Ledger | None, *, include_emulated: bool = False
) -> Starlette:
    """The dashboard as an ASGI app: `/` the page, `/api/summary` its numbers (JSON).

    `ledger_target` is a path or `postgresql://` URL (None: the default ledger), or an open
    `Ledger`, which the app uses and leaves open."""

    def read() -> dict[str, Any]:
        if isinstance(ledger_target, Ledger):
            return summary(ledger_target, include_emulated=include_emulated)
        with open_ledger(ledger_target, create=False) as ledger:
            return summary(ledger, include_emulated=include_emulated)

    def api_summary(request: Request) -> Response:
        try:
            data = read()
        except LedgerError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503, headers=_headers())
        return JSONResponse(data, headers=_headers())

    def page(request: Request) -> Response:
        return HTMLResponse(_page(), headers={**_headers(), "content-security-policy": _CSP})

    return Starlette(routes=[Route("/", page), Route("/api/summary", api_summary)])


def _headers() -> dict[str, str]:
    return {"cache-control": "no-store", "x-content-type-options": "nosniff"}


def _page() -> str:
    return resources.files("cachewise").joinpath("data/dashboard.html").read_text("utf-8")
