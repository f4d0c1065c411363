"""The ledger's sums, computed where its rows are: GROUP BY in SQLite or PostgreSQL.

A report reads a few hundred sums, not ten million rows. Each statement groups the calls by the
report's key and by `cause` as well (so misses by cause fall out of the same pass, as do the
markers lost or changed on the wire); `report` folds those parts into its groups.

Money stays exact. Each row keeps its costs as integers of 1e-10 dollars beside their decimal
text (m005); the sums split each into whole dollars and the rest (`/` and `%` by 1e10), so no sum
can overflow, and put them together again as a Decimal. A cost that is not a whole number of
1e-10 dollars (none the catalog makes) has no integer and is added in Python from a query of its
own, from its text.

A write never read is one no later call of the same workspace and model read within the window.
Once the window and a grace have passed that cannot change, so `settle` remembers it: up to the
settled horizon (`settled.through`, m007) a write is never read when its `read_later` is 0, and
read otherwise (only the few never read are written, in batches of writes), and a report looks
it up only for writes after the horizon: a correlated `EXISTS` per such write, one index seek
(`calls_read_in`, m007) per prefix hash. A call written late, before the horizon, moves it back and
opens again the writes it may have read (`Ledger.record_many`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from decimal import Decimal
from typing import Any

from .errors import LedgerError
from .ledger import SETTLE_GRACE, CallRecord, Ledger
from .schema import HOURLY
from .usage import Usage

__all__ = [
    "KEYS",
    "Part",
    "Scope",
    "emulated",
    "gate_waits",
    "parts",
    "scope",
    "settle",
    "settled_through",
    "top_keys",
]

# The raw key each grouping sums by, per dialect; `report` turns a raw key into its label (a
# day number into a date, a tags JSON into `k=v`), merging raw keys that read the same.
KEYS: dict[str, tuple[str, str]] = {
    "model": ("c.model", "c.model"),
    # Whole seconds first, then integer division: a call at 23:59:59.9999 is on its own day.
    "day": ("CAST(c.started_at AS INTEGER) / 86400", "CAST(floor(c.started_at) AS BIGINT) / 86400"),
    "hour": ("CAST(c.started_at AS INTEGER) / 3600", "CAST(floor(c.started_at) AS BIGINT) / 3600"),
    "tag": ("c.tags", "c.tags"),
    "workspace": ("c.workspace", "c.workspace"),
    "cause": ("c.cause", "c.cause"),
    "prefix": ("c.prefix_hash", "c.prefix_hash"),
}

_COLS = (
    "started_at, model, workspace, status, input_tokens, ephemeral_5m_input_tokens, "
    "ephemeral_1h_input_tokens, cache_read_input_tokens, output_tokens, cost_usd, "
    "cost_without_cache_usd, cost_e10, cost_without_cache_e10, read_later, prefix_hashes, "
    "read_hash, cause, tags, emulated, wire, gate_role, gate_wait_s, prefix_hash"
)
# The staged spool's rows as the calls: never settled, whatever their time (-1 is neither answer).
_STAGED_COLS = _COLS.replace("read_later", "-1 AS read_later")
# As the partial indexes of m005 and m006 say them, so that the database can use them.
_WRITES = "c.ephemeral_5m_input_tokens + c.ephemeral_1h_input_tokens > 0"
_INTEGERS = "(c.cost_e10 IS NOT NULL AND c.cost_without_cache_e10 IS NOT NULL)"
_NO_INTEGERS = "(c.cost_e10 IS NULL OR c.cost_without_cache_e10 IS NULL)"


@dataclass
class Part:
    """The sums of the calls sharing one raw key and cause."""

    key: Any
    cause: str | None
    calls: int
    errors: int
    usage: Usage
    writes: int
    reads: int
    never_read: int
    cost_usd: Decimal
    cost_without_cache_usd: Decimal
    markers_lost: int
    markers_changed: int


@dataclass(frozen=True)
class Scope:
    """Which calls a statement covers: the ledger's from `start` on (emulated ones only when
    asked), and the spool's staged in a temporary table (`staged`, or None when there are none)."""

    ledger: Ledger
    start: float | None
    include_emulated: bool
    staged: str | None = None
    until: float | None = None  # and before this
    rows: str = "all"  # whose rows are summed: "all", the "ledger"'s or the "spool"'s
    through: float = 0.0  # the settled horizon: the ledger's writes before it are settled

    @property
    def postgres(self) -> bool:
        return self.ledger.dialect == "postgres"

    def source(self) -> str:
        if self.staged is None or self.rows == "ledger":
            return "calls c"
        if self.rows == "spool":
            return f"(SELECT {_STAGED_COLS} FROM {self.staged}) c"
        return f"(SELECT {_COLS} FROM calls UNION ALL SELECT {_STAGED_COLS} FROM {self.staged}) c"

    def where(self, *more: str) -> tuple[str, list[Any]]:
        clauses, params = list(more), []
        if self.start is not None:
            clauses.append("c.started_at >= ?")
            params.append(self.start)
        if self.until is not None:
            clauses.append("c.started_at < ?")
            params.append(self.until)
        if not self.include_emulated:
            clauses.append("c.emulated = 0")
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), params

    def read_later(self, table: str, window: float) -> str:
        """SQL true when a call in `table` read one of c's prefixes within `window` seconds (a
        call the emulator answered reads only what the emulator wrote, and the API's only the
        API's)."""
        later = (
            f"r.model = c.model AND r.started_at > c.started_at "
            f"AND r.started_at <= c.started_at + {window!r} AND r.emulated = c.emulated"
        )
        if self.postgres:
            # An array, not a joined function: PostgreSQL guesses a function yields 100 rows and
            # then walks the time index over the whole window instead of seeking `calls_read_in`.
            hashes = "ARRAY(SELECT json_array_elements_text(CAST(c.prefix_hashes AS json)))"
            return (
                f"EXISTS (SELECT 1 FROM {table} r WHERE r.read_hash = ANY({hashes}) AND {later} "
                "AND r.workspace IS NOT DISTINCT FROM c.workspace)"
            )
        return (
            f"EXISTS (SELECT 1 FROM json_each(c.prefix_hashes) AS h JOIN {table} r "
            f"ON r.read_hash = h.value WHERE {later} AND r.workspace IS c.workspace)"
        )


@contextmanager
def scope(
    ledger: Ledger, start: float | None, include_emulated: bool, spooled: Sequence[CallRecord]
) -> Iterator[Scope]:
    """A `Scope`, with the spooled calls staged beside the ledger's while it lasts."""
    through = settled_through(ledger)
    if not spooled:
        yield Scope(ledger, start, include_emulated, through=through)
        return
    with ledger.staged(spooled) as table:
        yield Scope(ledger, start, include_emulated, table, through=through)


def settled_through(ledger: Ledger) -> float:
    """The settled horizon: every write of the ledger before it is settled (`settle`)."""
    return float(ledger.query("SELECT through FROM settled")[0][0])


# Writes settled in one transaction: a first report after a bulk load of millions of calls
# settles them in steps that each hold their locks briefly and that another report may continue.
SETTLE_BATCH = 50_000


def settle(
    ledger: Ledger, window: float, now: float | None = None, *, batch: int = SETTLE_BATCH
) -> int:
    """Settle every writing call whose window and grace have passed: mark those no later call
    read (`read_later` = 0) and move the settled horizon past them all, `batch` writes a
    transaction; the number found never read. Best effort: a ledger this process may not write
    (read-only, locked) is left as it is, and reports look the answers up as before."""
    horizon = (time.time() if now is None else now) - window - SETTLE_GRACE
    read = Scope(ledger, None, True).read_later("calls", window)
    never, fill = 0, False
    with contextlib.suppress(LedgerError):
        while (through := settled_through(ledger)) < horizon:
            # The horizon moves past `batch` writes (or to the end), whole instants at once: past
            # more, when more than that started at the same instant.
            after = ">" if fill else ">="
            nth = ledger.query(
                f"SELECT c.started_at FROM calls c WHERE c.read_later IS NULL AND {_WRITES} "
                f"AND c.started_at {after} ? ORDER BY c.started_at LIMIT 1 OFFSET ?",
                [through, 0 if fill else batch],
            )
            upto = min(float(nth[0][0]), horizon) if nth else horizon
            if upto <= through and not fill:
                fill = True
                continue
            fill = False
            # Only if the horizon is where it was read: a late call may have moved it back (and
            # then this waits for it), or another report settled these first.
            _, found = ledger.execute_many(
                [
                    ("UPDATE settled SET through = ? WHERE through = ?", [upto, through]),
                    (
                        f"UPDATE calls AS c SET read_later = 0 WHERE c.read_later IS NULL "
                        f"AND {_WRITES} AND c.started_at >= ? AND c.started_at < ? "
                        f"AND (SELECT through FROM settled) = ? AND NOT ({read})",
                        [through, upto, upto],
                    ),
                ]
            )
            never += found
    return never


def _pieces(col: str) -> list[str]:
    """Whole dollars, and the rest in units of 1e-10 (under 1e10 a row: 64-bit sums hold 900
    million rows of them), of the rows whose costs both have their integers (not `%`, which
    PostgreSQL's driver reads as a placeholder)."""
    return [
        f"SUM(CASE WHEN g THEN {col} / 10000000000 END)",
        f"SUM(CASE WHEN g THEN {col} - {col} / 10000000000 * 10000000000 END)",
    ]


def _joined(whole: Any, fraction: Any) -> Decimal:
    return Decimal(whole or 0) + Decimal(fraction or 0).scaleb(-10)


def parts(
    s: Scope, by: str | None, window: float, *, keys: Sequence[Any] | None = None
) -> list[Part]:
    """The sums by raw key (None without `by`) and cause; `keys` keeps only those keys.

    The ledger's calls in whole hours come from the hourly sums, with what those cannot hold
    (writes never read or not settled yet, costs without their integers) read from the calls
    through indexes that hold only such rows; the calls of a part hour at the start, the
    spool's, and groups by prefix are summed row by row."""
    if keys is not None or by == "prefix":
        return _row_by_row(s, by, window, keys)
    edge = _edge(s.start)
    found: dict[tuple[Any, Any], Part] = {}
    ledger = replace(s, start=edge, rows="ledger")
    for part in (
        *_hourly(ledger, by),
        *_never_read(ledger, by, window),
        *_text_costs(ledger, by),
        *(
            _row_by_row(replace(s, until=edge, rows="ledger"), by, window)
            if edge != s.start
            else ()
        ),
        *(_row_by_row(replace(s, rows="spool"), by, window) if s.staged is not None else ()),
    ):
        _add(found, part)
    return list(found.values())


def emulated(s: Scope) -> int:
    """How many of the ledger's calls from `s.start` on the emulator answered."""
    edge = _edge(s.start)
    hour = "WHERE h.emulated = 1" + ("" if edge is None else " AND h.hour >= ?")
    params = [] if edge is None else [edge // 3600]
    n = s.ledger.query(f"SELECT SUM(h.calls) FROM hourly h {hour}", params)[0][0] or 0
    if edge is not None and s.start is not None and edge != s.start:
        n += s.ledger.query(
            "SELECT COUNT(*) FROM calls c WHERE c.emulated = 1 AND c.started_at >= ? "
            "AND c.started_at < ?",
            [s.start, edge],
        )[0][0]
    return int(n)


def _edge(start: float | None) -> int | None:
    """The first whole hour at or after `start`: from there on, the hourly sums hold the calls."""
    return None if start is None else math.ceil(start / 3600) * 3600


def _add(found: dict[tuple[Any, Any], Part], part: Part) -> None:
    have = found.setdefault((part.key, part.cause), part)
    if have is not part:
        for f in _SUMMED:  # every field after the key and the cause is a sum
            setattr(have, f, getattr(have, f) + getattr(part, f))


_SUMMED = [f.name for f in fields(Part)][2:]


def _empty(key: Any, cause: Any) -> Part:
    zero = Decimal(0)
    return Part(key, cause, 0, 0, Usage(), 0, 0, 0, zero, zero, 0, 0)


# The hourly table's key for each grouping: its text keys are '' (none) or '=' + the value.
def _decoded(col: str) -> str:
    return f"CASE WHEN {col} = '' THEN NULL ELSE substr({col}, 2) END"


_HOURLY_KEYS = {
    "model": "h.model",
    "day": "h.hour / 24",
    "hour": "h.hour",
    "tag": _decoded("h.tags"),
    "workspace": _decoded("h.workspace"),
    "cause": _decoded("h.cause"),
}


def _hourly(s: Scope, by: str | None) -> list[Part]:
    """The ledger's calls from `s.start` (a whole hour) on, from the hourly sums."""
    clauses, params = [], []
    if s.start is not None:
        clauses.append("h.hour >= ?")
        params.append(int(s.start) // 3600)
    if not s.include_emulated:
        clauses.append("h.emulated = 0")
    where = "WHERE " + " AND ".join(clauses) if clauses else ""
    table = "hourly_tags" if by == "tag" else "hourly"  # the only one keyed by tags
    sums = ", ".join(f"SUM(h.{n})" for n in HOURLY[table][1])
    out = []
    for k, cause, *n in s.ledger.query(
        f"SELECT {_HOURLY_KEYS[by] if by else 'NULL'}, {_decoded('h.cause')}, {sums} "
        f"FROM {table} h {where} GROUP BY 1, 2",
        params,
    ):
        calls, errors, i, rd, w5, w1, o, writes, reads, lost, changed = (int(x) for x in n[:11])
        out.append(
            Part(
                k,
                cause,
                calls,
                errors,
                Usage(i, rd, w5, w1, o),
                writes,
                reads,
                0,
                _joined(n[11], n[12]),
                _joined(n[13], n[14]),
                lost,
                changed,
            )
        )
    return out


def _never_read(s: Scope, by: str | None, window: float) -> list[Part]:
    """The ledger's writes never read: those settled so (`calls_never_read`), unless a call in
    the spool read them, and those after the settled horizon, looked up (`calls_unsettled`)."""
    key = KEYS[by][s.postgres] if by else "NULL"
    spooled = s.read_later(s.staged, window) if s.staged is not None else None
    settled = f"CASE WHEN {spooled} THEN 0 ELSE 1 END" if spooled else "1"
    read = s.read_later("calls", window) + (f" OR {spooled}" if spooled else "")
    out = []
    for which, after, never in (
        ("c.read_later = 0", [], settled),
        ("c.read_later IS NULL", [s.through], f"CASE WHEN {read} THEN 0 ELSE 1 END"),
    ):
        where, params = s.where(which, _WRITES, *("c.started_at >= ?" for _ in after))
        for k, cause, n in s.ledger.query(
            f"SELECT {key}, c.cause, SUM({never}) FROM calls c {where} GROUP BY 1, 2",
            [*after, *params],
        ):
            part = _empty(k, cause)
            part.never_read = int(n)
            out.append(part)
    return out


def _text_costs(s: Scope, by: str | None) -> list[Part]:
    """The costs of the ledger's calls without their integers, summed from their text."""
    key = KEYS[by][s.postgres] if by else "NULL"
    where, params = s.where(_NO_INTEGERS)
    out = []
    for k, cause, cost, plain in s.ledger.query(
        f"SELECT {key}, c.cause, c.cost_usd, c.cost_without_cache_usd FROM calls c {where}", params
    ):
        part = _empty(k, cause)
        part.cost_usd, part.cost_without_cache_usd = Decimal(str(cost)), Decimal(str(plain))
        out.append(part)
    return out


def _row_by_row(
    s: Scope, by: str | None, window: float, keys: Sequence[Any] | None = None
) -> list[Part]:
    """The sums of `s`'s calls, read one by one."""
    key = KEYS[by][s.postgres] if by else "NULL"
    read = s.read_later("calls", window)
    # A settled write was not read by the ledger's calls; one of the spool's may have read it.
    settled_never = "1"
    if s.staged is not None:
        spooled = s.read_later(s.staged, window)
        read = f"{read} OR {spooled}"
        settled_never = f"CASE WHEN {spooled} THEN 0 ELSE 1 END"
    plain = _INTEGERS
    extra, named = [], [k for k in keys or () if k is not None]
    if keys is not None:
        among = f"{key} IN ({', '.join('?' * len(named))})" if named else "FALSE"
        extra.append(f"({among} OR {key} IS NULL)" if None in keys else among)
    where, params = s.where(*extra)
    params = [*named, *params]
    # Each row's values once, in a subquery the LIMIT keeps SQLite from folding into the sums
    # (it would evaluate the cost test once per sum): a third less time a row.
    sql = (
        "SELECT k, cause, COUNT(*), SUM(CASE WHEN status = 'ok' THEN 0 ELSE 1 END), "
        "SUM(i), SUM(rd), SUM(w5), SUM(w1), SUM(o), SUM(CASE WHEN w5 + w1 > 0 THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN rd > 0 THEN 1 ELSE 0 END), SUM(never), "
        "SUM(CASE WHEN wire = 'lost' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN wire = 'changed' THEN 1 ELSE 0 END), "
        f"{', '.join([*_pieces('cu'), *_pieces('cw')])} FROM (SELECT {key} AS k, c.cause, c.wire, "
        "c.status, "
        "c.input_tokens AS i, c.cache_read_input_tokens AS rd, c.ephemeral_5m_input_tokens AS w5, "
        "c.ephemeral_1h_input_tokens AS w1, c.output_tokens AS o, "
        f"CASE WHEN NOT ({_WRITES}) THEN 0 WHEN c.read_later = 1 THEN 0 "
        f"WHEN c.read_later = 0 THEN {settled_never} "
        f"WHEN c.read_later IS NULL AND c.started_at < {s.through!r} THEN 0 "
        f"WHEN {read} THEN 0 ELSE 1 END AS never, "
        f"{plain} AS g, "
        f"c.cost_e10 AS cu, c.cost_without_cache_e10 AS cw FROM {s.source()} {where} "
        f"{'' if s.postgres else 'LIMIT -1'}) AS rows GROUP BY 1, 2"
    )
    found: dict[tuple[Any, Any], Part] = {}
    for row in s.ledger.query(sql, params):
        k, cause, calls, errors, i, rd, w5, w1, o, writes_n, reads_n, never, lost, changed = row[
            :14
        ]
        cost, plain_cost = _joined(*row[14:16]), _joined(*row[16:18])
        found[(k, cause)] = Part(
            k,
            cause,
            int(calls),
            int(errors),
            Usage(int(i), int(rd), int(w5), int(w1), int(o)),
            int(writes_n),
            int(reads_n),
            int(never),
            cost,
            plain_cost,
            int(lost),
            int(changed),
        )
    # The costs without their integers, summed here from their text: rare rows.
    sql = (
        f"SELECT {key}, c.cause, c.cost_usd, c.cost_without_cache_usd "
        f"FROM {s.source()} {where} {'AND' if where else 'WHERE'} {_NO_INTEGERS}"
    )
    for k, cause, cost_text, plain_text in s.ledger.query(sql, params):
        part = found[(k, cause)]
        part.cost_usd += Decimal(str(cost_text))
        part.cost_without_cache_usd += Decimal(str(plain_text))
    return list(found.values())


def top_keys(s: Scope, by: str, n: int) -> tuple[list[Any], int]:
    """The `n` raw keys with the most spend (ranked by the database, as floats on SQLite), and
    how many keys there are in all (counted over the groups, in the same statement)."""
    key = KEYS[by][s.postgres]
    spend = "SUM(c.cost_usd)" if s.postgres else "SUM(CAST(c.cost_usd AS REAL))"
    where, params = s.where()
    ranked = s.ledger.query(
        f"SELECT {key}, {spend}, COUNT(*) OVER () FROM {s.source()} {where} "
        "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?",
        [*params, n],
    )
    return [row[0] for row in ranked], int(ranked[0][2]) if ranked else 0


def gate_waits(s: Scope) -> dict[str, dict[str, Any]]:
    """By the warm gate's verdict: calls, how many waited, and the total and median wait (s).
    The counts come as `parts` come (hourly sums, then the part hour and the spool row by row)."""
    edge = _edge(s.start)
    counts: dict[str, list[Any]] = {}

    def count(sql: str, params: list[Any]) -> None:
        for role, calls, waited, total in s.ledger.query(sql, params):
            have = counts.setdefault(role, [0, 0, 0.0])
            have[0], have[1], have[2] = have[0] + calls, have[1] + waited, have[2] + (total or 0)

    clauses, params = [], []
    if edge is not None:
        clauses.append("h.hour >= ?")
        params.append(edge // 3600)
    if not s.include_emulated:
        clauses.append("h.emulated = 0")
    count(
        f"SELECT {_decoded('h.gate_role')}, SUM(h.calls), SUM(h.waited), SUM(h.wait_s) "
        f"FROM hourly_gate h {'WHERE ' + ' AND '.join(clauses) if clauses else ''} GROUP BY 1",
        params,
    )
    by_row = [replace(s, rows="spool")] if s.staged is not None else []
    if edge != s.start:
        by_row.append(replace(s, until=edge, rows="ledger"))
    for part in by_row:
        where, params = part.where("c.gate_role IS NOT NULL")
        count(
            f"SELECT c.gate_role, COUNT(*), COUNT(c.gate_wait_s), SUM(c.gate_wait_s) "
            f"FROM {part.source()} {where} GROUP BY 1",
            params,
        )
    rows = [(role, *counts[role]) for role in sorted(counts)]
    # The middle wait (the mean of the middle two) of each role: the waits in order from
    # `calls_gate`, skipping to the middle (no sort, no window over every wait).
    medians = {}
    for role, _, waited, _ in rows:
        if waited:
            role_where, role_params = s.where("c.gate_role = ?", "c.gate_wait_s IS NOT NULL")
            two = s.ledger.query(
                f"SELECT c.gate_wait_s FROM {s.source()} {role_where} ORDER BY c.gate_wait_s "
                "LIMIT ? OFFSET ?",
                [role, *role_params, 2 - waited % 2, (waited - 1) // 2],
            )
            medians[role] = sum(float(w) for (w,) in two) / len(two)
    return {
        role: {
            "calls": int(calls),
            "waited": int(waited),
            "total_wait_s": round(float(total or 0.0), 6),
            "median_wait_s": round(medians[role], 6) if role in medians else None,
        }
        for role, calls, waited, total in rows
    }
