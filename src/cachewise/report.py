"""`cachewise report`: what the ledger's calls cost, what caching saved, and why calls missed."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import rollup
from .errors import InputError
from .ledger import CallRecord, Ledger, read_window
from .rollup import Part
from .usage import Tally

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "GROUPINGS",
    "Summary",
    "Totals",
    "figure",
    "parse_duration",
    "plot",
    "report",
    "summarize",
]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


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
    """A `Tally` of ledger calls, with what only the ledger knows: writes never read, the
    explainer's cause of each miss, and the markers lost or changed on the way to the API."""

    writes_never_read: int = 0
    misses_by_cause: Counter[str] = field(default_factory=Counter)
    markers_lost: int = 0
    markers_changed: int = 0

    def add_call(self, call: CallRecord, never_read: bool) -> None:
        self.add(call.usage, call.cost_usd, call.cost_without_cache_usd, error=call.status != "ok")
        self.writes_never_read += never_read
        self._story(call.cause, 1)
        self.markers_lost += call.wire == "lost"
        self.markers_changed += call.wire == "changed"

    def add_part(self, part: Part) -> None:
        """Add the database's sums over some calls (`cachewise.rollup`)."""
        self.calls += part.calls
        self.errors += part.errors
        self.usage = self.usage + part.usage
        self.cost_usd += part.cost_usd
        self.cost_without_cache_usd += part.cost_without_cache_usd
        self.writes += part.writes
        self.reads += part.reads
        self.writes_never_read += part.never_read
        self._story(part.cause, part.calls)
        self.markers_lost += part.markers_lost
        self.markers_changed += part.markers_changed

    def merge(self, other: Totals) -> None:
        """Add another group's totals (hours into days)."""
        self.calls += other.calls
        self.errors += other.errors
        self.usage = self.usage + other.usage
        self.cost_usd += other.cost_usd
        self.cost_without_cache_usd += other.cost_without_cache_usd
        self.writes += other.writes
        self.reads += other.reads
        self.writes_never_read += other.writes_never_read
        self.misses_by_cause.update(other.misses_by_cause)
        self.markers_lost += other.markers_lost
        self.markers_changed += other.markers_changed

    def _story(self, cause: str | None, calls: int) -> None:
        if cause and cause != "hit":
            self.misses_by_cause[cause] += calls

    def to_json(self) -> dict[str, Any]:
        return {
            **super().to_json(),
            "writes_never_read": self.writes_never_read,
            "misses_by_cause": dict(sorted(self.misses_by_cause.items())),
            "markers_lost": self.markers_lost,
            "markers_changed": self.markers_changed,
        }


def _tags_label(tags: Any) -> str:
    if isinstance(tags, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
    if isinstance(tags, list):
        return ",".join(map(str, tags))
    return str(tags) if tags is not None else "(none)"


GROUPINGS: dict[str, Callable[[CallRecord], str]] = {
    "model": lambda c: c.model,
    "day": lambda c: _utc_label(c.started_at, "%Y-%m-%d"),
    "hour": lambda c: _utc_label(c.started_at, "%Y-%m-%d %H:00"),
    "tag": lambda c: _tags_label(c.tags),
    "workspace": lambda c: c.workspace or "(none)",
    "cause": lambda c: c.cause or "(none)",
    "prefix": lambda c: c.prefix_hash or "(none)",
}


def _utc_label(t: float, fmt: str) -> str:
    # Whole seconds, as the database buckets them: 23:59:59.9999 is still that day.
    return datetime.fromtimestamp(int(t // 1), UTC).strftime(fmt)


def _label(by: str, raw: Any) -> str:
    """The label of a raw key the database grouped by (see `rollup.KEYS`)."""
    if by in ("day", "hour"):
        size = 86400 if by == "day" else 3600
        return _utc_label(int(raw) * size, "%Y-%m-%d" if by == "day" else "%Y-%m-%d %H:00")
    if by == "tag":
        return _tags_label(json.loads(raw) if raw else None)
    if by == "model":
        return str(raw)
    return str(raw) if raw else "(none)"


@dataclass
class Summary:
    """A report before it is written out: the totals, the groups by label and by cause (from
    the same sums), and where the calls came from."""

    by: str | None
    total: Totals
    groups: dict[str, Totals]
    causes: dict[str, Totals]
    spooled: int
    emulated_left_out: int
    groups_left_out: int = 0
    gate_waits: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The report's JSON: groups sorted by name, prefixes by spend."""
        groups = sorted(self.groups.items())
        if self.by == "prefix":
            groups.sort(key=lambda item: item[1].cost_usd, reverse=True)
        out = self.total.to_json()
        out["predicted_reads_not_served"] = self.total.misses_by_cause.get("likely_server_side", 0)
        out["groups"] = [{"group": name, **t.to_json()} for name, t in groups]
        out["groups_left_out"] = self.groups_left_out
        out["by"] = self.by
        out["spooled"] = self.spooled
        out["emulated_left_out"] = self.emulated_left_out
        out["gate_waits"] = self.gate_waits
        return out


def summarize(
    ledger: Ledger,
    *,
    start: float | None = None,
    by: str | None = None,
    include_emulated: bool = False,
    top: int = 20,
    waits: bool = True,
) -> Summary:
    """The sums of the calls started at or after `start` (unix seconds), from the database's
    GROUP BY; the spool's calls the ledger does not hold yet are counted with them. With
    `by="prefix"`, the `top` prefixes by spend; `waits` adds the warm gate's waits."""
    spooled = spooled_calls(ledger, start, include_emulated)
    window = read_window()
    rollup.settle(ledger, window)  # what can no longer change, remembered: later reports skip it
    total, groups = Totals(), defaultdict[str, Totals](Totals)
    causes = defaultdict[str, Totals](Totals)
    left_out = 0
    with rollup.scope(ledger, start, include_emulated, spooled) as s:
        if by == "prefix":
            keys, count = rollup.top_keys(s, by, top)
            left_out = count - len(keys)
            for part in rollup.parts(s, by, window, keys=keys):
                groups[_label(by, part.key)].add_part(part)
        for part in rollup.parts(s, None if by == "prefix" else by, window):
            total.add_part(part)
            causes[_label("cause", part.cause)].add_part(part)
            if by is not None and by != "prefix":
                groups[_label(by, part.key)].add_part(part)
        gate = rollup.gate_waits(s) if waits else {}
        emulated = 0 if include_emulated else rollup.emulated(s)
    return Summary(by, total, dict(groups), dict(causes), len(spooled), emulated, left_out, gate)


def report(
    ledger: Ledger,
    *,
    since: float | None = None,
    by: str | None = None,
    now: float | None = None,
    include_emulated: bool = False,
    top: int = 20,
) -> dict[str, Any]:
    """Totals over the ledger (calls started within `since` seconds of `now`), and groups.

    Calls the emulator answered are left out unless `include_emulated` (they cost nothing).
    Calls waiting in this machine's spool (the ledger refused them for a while) are counted,
    and `spooled` says how many. Groups are sorted by name; prefixes (`by="prefix"`) by spend,
    the `top` of them, and `groups_left_out` says how many more there are."""
    start = None if since is None else (now if now is not None else time.time()) - since
    return summarize(
        ledger, start=start, by=by, include_emulated=include_emulated, top=top
    ).to_json()


def spooled_calls(
    ledger: Ledger, start: float | None, include_emulated: bool = False
) -> list[CallRecord]:
    """The calls waiting in this machine's spool that a report covers and the ledger does not
    hold yet."""
    from .spool import Spool

    waiting = [
        call
        for call, _ in Spool(ledger.target).pending()
        if (start is None or call.started_at >= start) and (include_emulated or not call.emulated)
    ]
    known = ledger.known_uids([c.uid for c in waiting])
    return [c for c in waiting if c.uid not in known]


def selected_calls(
    ledger: Ledger, start: float | None, include_emulated: bool = False
) -> tuple[list[CallRecord], int]:
    """The calls a report covers, oldest first, as records (the chart draws each one): the
    ledger's, and the spool's it does not hold yet (their number is the second value)."""
    spooled = spooled_calls(ledger, start, include_emulated)
    calls = ledger.calls(since=start, include_emulated=include_emulated)
    return sorted([*calls, *spooled], key=lambda c: c.started_at), len(spooled)


def to_csv(result: dict[str, Any]) -> str:
    """The groups (or the totals, without --by) as CSV; by cause, with the markers lost and
    changed on the way."""
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
    if result["by"] == "cause":
        fields += ["markers_lost", "markers_changed"]
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
