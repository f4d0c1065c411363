"""`cachewise report`: what the ledger's calls cost, what caching saved, and why calls missed."""

from __future__ import annotations

import csv
import io
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .catalog import catalog
from .errors import InputError
from .ledger import CallRecord, Ledger
from .usage import Tally

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["GROUPINGS", "Totals", "figure", "parse_duration", "plot", "report"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _read_window() -> float:
    """How long after a write a later read of the same prefix can still count: the longest TTL."""
    return float(max(catalog().ttl_seconds.values()))


def parse_duration(text: str) -> float:
    """Seconds in "90s", "30m", "24h", "7d" or "2w".

    Raises:
        InputError: any other form.
    """
    m = _DURATION.match(text.strip().lower())
    if not m:
        raise InputError(f"{text!r} is not a duration like 30m, 24h or 7d", field="--since")
    return float(m[1]) * _UNITS[m[2]]


@dataclass
class Totals(Tally):
    """A `Tally` of ledger calls, with what only the ledger knows: writes never read, and the
    explainer's cause of each miss."""

    writes_never_read: int = 0
    misses_by_cause: Counter[str] = field(default_factory=Counter)

    def add_call(self, call: CallRecord, never_read: bool) -> None:
        self.add(call.usage, call.cost_usd, call.cost_without_cache_usd, error=call.status != "ok")
        self.writes_never_read += never_read
        if call.cause and call.cause != "hit":
            self.misses_by_cause[call.cause] += 1

    def to_json(self) -> dict[str, Any]:
        return {
            **super().to_json(),
            "writes_never_read": self.writes_never_read,
            "misses_by_cause": dict(self.misses_by_cause),
        }


def _day(c: CallRecord) -> str:
    return datetime.fromtimestamp(c.started_at, UTC).strftime("%Y-%m-%d")


def _hour(c: CallRecord) -> str:
    return datetime.fromtimestamp(c.started_at, UTC).strftime("%Y-%m-%d %H:00")


def _tag(c: CallRecord) -> str:
    if isinstance(c.tags, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(c.tags.items()))
    if isinstance(c.tags, list):
        return ",".join(map(str, c.tags))
    return str(c.tags) if c.tags is not None else "(none)"


GROUPINGS: dict[str, Callable[[CallRecord], str]] = {
    "model": lambda c: c.model,
    "day": _day,
    "hour": _hour,
    "tag": _tag,
    "workspace": lambda c: c.workspace or "(none)",
    "cause": lambda c: c.cause or "(none)",
}


def report(
    ledger: Ledger,
    *,
    since: float | None = None,
    by: str | None = None,
    now: float | None = None,
    include_emulated: bool = False,
) -> dict[str, Any]:
    """Totals over the ledger (calls started within `since` seconds of `now`), and groups.

    Calls the emulator answered are left out unless `include_emulated` (they cost nothing).
    Calls waiting in this machine's spool (the ledger refused them for a while) are counted,
    and `spooled` says how many."""
    start = None if since is None else (now if now is not None else time.time()) - since
    calls, spooled = selected_calls(ledger, start, include_emulated)
    never = _never_read(calls)
    total = Totals()
    groups: dict[str, Totals] = defaultdict(Totals)
    key = GROUPINGS[by] if by else None
    for n, c in enumerate(calls):
        total.add_call(c, n in never)
        if key is not None:
            groups[key(c)].add_call(c, n in never)
    out = total.to_json()
    out["groups"] = [{"group": name, **t.to_json()} for name, t in sorted(groups.items())]
    out["by"] = by
    out["spooled"] = spooled
    out["emulated_left_out"] = 0 if include_emulated else ledger.emulated_calls(start)
    return out


def selected_calls(
    ledger: Ledger, start: float | None, include_emulated: bool = False
) -> tuple[list[CallRecord], int]:
    """The calls a report covers, oldest first: the ledger's, and those waiting in this machine's
    spool that the ledger does not hold yet (their number is the second value)."""
    from .spool import Spool

    waiting = [
        call
        for call, _ in Spool(ledger.target).pending()
        if (start is None or call.started_at >= start) and (include_emulated or not call.emulated)
    ]
    known = ledger.known_uids([c.uid for c in waiting])
    spooled = [c for c in waiting if c.uid not in known]
    calls = ledger.calls(since=start, include_emulated=include_emulated)
    return sorted([*calls, *spooled], key=lambda c: c.started_at), len(spooled)


def _never_read(calls: Sequence[CallRecord]) -> set[int]:
    """The calls (by index) that wrote a prefix no later call (same workspace and model) read
    within an hour."""
    reads: dict[tuple[str | None, str, str], list[float]] = defaultdict(list)
    for c in calls:
        if c.read_hash:
            reads[(c.workspace, c.model, c.read_hash)].append(c.started_at)
    never = set()
    window = _read_window()
    for n, c in enumerate(calls):
        if c.usage.cache_creation_input_tokens == 0:
            continue
        read_later = any(
            c.started_at < t <= c.started_at + window
            for h in c.prefix_hashes
            for t in reads.get((c.workspace, c.model, h), ())
        )
        if not read_later:
            never.add(n)
    return never


def to_csv(result: dict[str, Any]) -> str:
    """The groups (or the totals, without --by) as CSV."""
    rows = result["groups"] or [
        {"group": "all", **{k: v for k, v in result.items() if k not in ("groups", "by")}}
    ]
    buf = io.StringIO()
    fields = [
        "group",
        "calls",
        "errors",
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "output_tokens",
        "cost_usd",
        "cost_without_cache_usd",
        "savings_pct",
        "cache_hit_rate",
        "writes_never_read",
    ]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        flat = {**row, **row["usage"]}
        writer.writerow({f: flat.get(f) for f in fields})
    return buf.getvalue()


def plot(
    ledger: Ledger,
    path: Path,
    *,
    since: float | None = None,
    by: str | None = None,
    include_emulated: bool = False,
) -> None:
    """A PNG of `figure` for the calls a report of the same window covers."""
    start = None if since is None else time.time() - since
    calls, _ = selected_calls(ledger, start, include_emulated)
    figure(calls, by=by).savefig(path, dpi=110)


def figure(calls: Sequence[CallRecord], *, by: str | None = None) -> Figure:
    """A matplotlib `Figure`: cumulative cost with and without caching over time (UTC), and the
    token mix per group.

    Raises:
        InputError: matplotlib is not installed.
    """
    try:
        import matplotlib.dates as mdates
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        raise InputError(
            "--plot needs matplotlib: pip install 'cachewise[plot]'", field="--plot"
        ) from None
    fig = Figure(figsize=(12, 4.5))  # not pyplot's: nothing global to switch or to close
    left, right = fig.subplots(1, 2)
    times = [datetime.fromtimestamp(c.started_at, UTC) for c in calls]
    spent, plain = Decimal(0), Decimal(0)
    with_cache, without = [], []
    for c in calls:
        spent += c.cost_usd
        plain += c.cost_without_cache_usd
        with_cache.append(float(spent))
        without.append(float(plain))
    left.plot(times, without, label="without caching", color="#b0413e")
    left.plot(times, with_cache, label="with caching", color="#2f6f4f")
    left.set_title("Cumulative cost (USD)")
    left.legend()
    # Ticks at round times, labelled as short as they can be read (seconds, then minutes, days...)
    # with the date once at the end; the default labelled a one-second span "35:29.000000".
    locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    left.xaxis.set_major_locator(locator)
    concise = mdates.ConciseDateFormatter(locator, tz=UTC)  # type: ignore[no-untyped-call]
    left.xaxis.set_major_formatter(concise)
    left.set_xlabel("UTC")
    key = GROUPINGS[by or "model"]
    groups: dict[str, Totals] = defaultdict(Totals)
    for c in calls:
        groups[key(c)].add_call(c, False)
    names = sorted(groups)
    bottom = [0.0] * len(names)
    for label, attr, color in (
        ("input", "input_tokens", "#8c8c8c"),
        ("cache write", "cache_creation_input_tokens", "#d9822b"),
        ("cache read", "cache_read_input_tokens", "#2f6f4f"),
        ("output", "output_tokens", "#3d5a99"),
    ):
        values = [float(getattr(groups[n].usage, attr)) for n in names]
        right.bar(names, values, bottom=bottom, label=label, color=color)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    right.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    right.set_title(f"Tokens by {by or 'model'}")
    right.legend()
    right.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig
