"""The report's sums from the database's GROUP BY equal the old row-by-row sums, on SQLite and
on PostgreSQL: the Python computation the report used before is kept here as the oracle."""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachewise.catalog import catalog
from cachewise.ledger import CallRecord, Ledger
from cachewise.report import selected_calls, summarize
from cachewise.rollup import settled_through
from cachewise.spool import Spool
from cachewise.usage import Tally, Usage
from conftest import POSTGRES_URL, examples, require_or_skip

T0 = 1_763_769_600.0  # 2025-11-22 00:00 UTC

# -- the oracle: the report as it was computed before, one row at a time ----------------------


@dataclass
class OldTotals(Tally):
    writes_never_read: int = 0
    misses_by_cause: Counter[str] = field(default_factory=Counter)

    def add_call(self, call: CallRecord, never_read: bool) -> None:
        self.add(call.usage, call.cost_usd, call.cost_without_cache_usd, error=call.status != "ok")
        self.writes_never_read += never_read
        if call.cause and call.cause != "hit":
            self.misses_by_cause[call.cause] += 1


def _old_tag(c: CallRecord) -> str:
    if isinstance(c.tags, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(c.tags.items()))
    if isinstance(c.tags, list):
        return ",".join(map(str, c.tags))
    return str(c.tags) if c.tags is not None else "(none)"


OLD_GROUPINGS: dict[str, Callable[[CallRecord], str]] = {
    "model": lambda c: c.model,
    "day": lambda c: datetime.fromtimestamp(c.started_at, UTC).strftime("%Y-%m-%d"),
    "hour": lambda c: datetime.fromtimestamp(c.started_at, UTC).strftime("%Y-%m-%d %H:00"),
    "tag": _old_tag,
    "workspace": lambda c: c.workspace or "(none)",
    "cause": lambda c: c.cause or "(none)",
    "prefix": lambda c: c.prefix_hash or "(none)",  # new, grouped the same way
}


def old_never_read(calls: Sequence[CallRecord]) -> set[int]:
    # The emulator's cache and the API's are apart: a call reads only what its side wrote.
    reads: dict[tuple[str | None, str, bool, str], list[float]] = defaultdict(list)
    for c in calls:
        if c.read_hash:
            reads[(c.workspace, c.model, c.emulated, c.read_hash)].append(c.started_at)
    never = set()
    window = float(max(catalog().ttl_seconds.values()))
    for n, c in enumerate(calls):
        if c.usage.cache_creation_input_tokens == 0:
            continue
        read_later = any(
            c.started_at < t <= c.started_at + window
            for h in c.prefix_hashes
            for t in reads.get((c.workspace, c.model, c.emulated, h), ())
        )
        if not read_later:
            never.add(n)
    return never


def old_report(
    calls: Sequence[CallRecord], by: str | None
) -> tuple[OldTotals, dict[str, OldTotals]]:
    never = old_never_read(calls)
    total, groups = OldTotals(), defaultdict(OldTotals)
    for n, c in enumerate(calls):
        total.add_call(c, n in never)
        if by is not None:
            groups[OLD_GROUPINGS[by](c)].add_call(c, n in never)
    return total, dict(groups)


def same(new: Any, old: OldTotals) -> None:
    for name in ("calls", "errors", "usage", "writes", "reads", "writes_never_read"):
        assert getattr(new, name) == getattr(old, name), name
    assert new.cost_usd == old.cost_usd and new.cost_without_cache_usd == old.cost_without_cache_usd
    assert new.misses_by_cause == old.misses_by_cause


# -- random ledgers ----------------------------------------------------------------------------

HASHES = ["h1", "h2", "h3"]
# Times to the microsecond, clustered so that reads fall inside (and exactly on the edge of) the
# hour a write waits for them, with a few days apart for the day and hour groups.
times = st.one_of(
    st.integers(0, 8).map(lambda k: T0 + k * 1800.0),
    st.integers(0, 3 * 86_400 * 10**6).map(lambda us: T0 + us / 1e6),
    st.integers(0, 7200 * 10**6).map(lambda us: T0 + 86_399 + us / 1e6),
)
# Costs as `str(Decimal)` writes them: plain, tiny (`4E-8`), long (more than 10 places), large
# ($10,000 and more). Within 1e-16..1e9, so that a sum of them fits Decimal's 28 digits: beyond,
# the oracle's own sum rounds, and differently in another order.
money = st.builds(lambda n, e: Decimal(n).scaleb(-e), st.integers(0, 10**9), st.integers(0, 16))
tokens = st.one_of(st.just(0), st.integers(1, 5000))


@st.composite
def calls(draw: st.DrawFn) -> CallRecord:
    return CallRecord(
        started_at=draw(times),
        model=draw(st.sampled_from(["m-a", "m-b"])),
        status=draw(st.sampled_from(["ok", "ok", "error"])),
        workspace=draw(st.sampled_from([None, "key_a", "key_b", ""])),
        usage=Usage(draw(tokens), draw(tokens), draw(tokens), draw(tokens), draw(tokens)),
        cost_usd=draw(money),
        cost_without_cache_usd=draw(money),
        prefix_hashes=draw(st.lists(st.sampled_from(HASHES), max_size=3)),
        read_hash=draw(st.sampled_from([None, *HASHES])),
        cause=draw(st.sampled_from([None, "hit", "cold_start", "likely_server_side"])),
        tags=draw(st.sampled_from([None, {"a": 1}, {"b": 2, "a": 1}, ["x", "y"], "s"])),
        emulated=draw(st.booleans()),
        wire=draw(st.sampled_from([None, "ok", "lost", "changed"])),
        gate_role=draw(st.sampled_from([None, "scout", "follower"])),
        gate_wait_s=draw(st.one_of(st.none(), st.floats(0, 30))),
        prefix_hash=draw(st.sampled_from([None, "p1", "p2", "p3"])),
    )


rows = st.lists(st.tuples(calls(), st.booleans()), max_size=25)  # (call, waits in the spool)


@contextmanager
def sqlite_ledger() -> Iterator[Ledger]:
    with tempfile.TemporaryDirectory() as folder, Ledger(Path(folder) / "l.db") as ledger:
        yield ledger


@contextmanager
def postgres_ledger() -> Iterator[Ledger]:
    import psycopg

    schema = f"cw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            with Ledger(f"{POSTGRES_URL}?options=-csearch_path%3D{schema}") as ledger:
                yield ledger
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def check(
    ledger: Ledger, drawn: list[tuple[CallRecord, bool]], since: float | None, recent: bool
) -> None:
    """`recent`: the calls moved to start half an hour ago, so that no write can be settled yet
    and every never-read answer is looked up; otherwise the first report settles them all."""
    if recent:
        shift = time.time() - 1800 - T0
        drawn = [(replace(c, started_at=c.started_at + shift), s) for c, s in drawn]
        since = None if since is None else since + shift
    spool = Spool(ledger.target)
    for c, spooled in drawn:
        if spooled:
            spool.write(c, None)
        else:
            ledger.record(c)
    for include_emulated in (False, True):
        chosen, spooled = selected_calls(ledger, since, include_emulated)
        for by in (None, "model", "day", "hour", "tag", "workspace", "cause", "prefix"):
            new = summarize(ledger, start=since, by=by, include_emulated=include_emulated, top=9)
            old_total, old_groups = old_report(chosen, by)
            same(new.total, old_total)
            assert sorted(new.groups) == sorted(old_groups), by
            for name, group in new.groups.items():
                same(group, old_groups[name])
            _, old_causes = old_report(chosen, "cause")
            assert sorted(new.causes) == sorted(old_causes)
            for name, group in new.causes.items():
                same(group, old_causes[name])
            assert new.total.markers_lost == sum(c.wire == "lost" for c in chosen)
            assert new.total.markers_changed == sum(c.wire == "changed" for c in chosen)
            assert new.spooled == spooled
        waits = new.gate_waits
        for role in ("scout", "follower"):
            gated = [c for c in chosen if c.gate_role == role]
            seconds = [c.gate_wait_s for c in gated if c.gate_wait_s is not None]
            if not gated:
                assert role not in waits
                continue
            assert (waits[role]["calls"], waits[role]["waited"]) == (len(gated), len(seconds))
            assert waits[role]["total_wait_s"] == pytest.approx(sum(seconds), abs=1e-5)
            if seconds:
                median = statistics.median(seconds)
                assert waits[role]["median_wait_s"] == pytest.approx(median, abs=1e-5)


SETTINGS = settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(rows, st.sampled_from([None, T0 + 3600.0, T0 + 5400.5]), st.booleans())
def test_sqlite_sums_equal_the_row_by_row_sums(
    drawn: list[tuple[CallRecord, bool]], since: float | None, recent: bool
) -> None:
    with sqlite_ledger() as ledger:
        check(ledger, drawn, since, recent)


@pytest.fixture(scope="module")
def postgres() -> None:
    try:
        import psycopg

        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except Exception as exc:
        require_or_skip(f"no PostgreSQL at {POSTGRES_URL} ({type(exc).__name__}: {exc})")


@settings(SETTINGS, max_examples=examples(30))
@given(drawn=rows, since=st.sampled_from([None, T0 + 3600.0, T0 + 5400.5]), recent=st.booleans())
def test_postgres_sums_equal_the_row_by_row_sums(
    postgres: None, drawn: list[tuple[CallRecord, bool]], since: float | None, recent: bool
) -> None:
    with postgres_ledger() as ledger:
        check(ledger, drawn, since, recent)


def test_a_tiny_cost_and_a_long_one_are_summed_exactly(tmp_path: Path) -> None:
    costs = [Decimal(c) for c in ("4E-8", "0.1234567890123456789012", "12.5", "0.000001", "0E-20")]
    with Ledger(tmp_path / "l.db") as ledger:
        for n, cost in enumerate(costs):
            ledger.record(CallRecord(T0 + n, "m", cost_usd=cost, cost_without_cache_usd=cost * 2))
        total = summarize(ledger).total
    assert total.cost_usd == sum(costs) and total.cost_without_cache_usd == 2 * sum(costs)


def test_a_write_settled_as_never_read_is_opened_again_by_a_late_read(tmp_path: Path) -> None:
    write = CallRecord(T0, "m", usage=Usage(ephemeral_5m_input_tokens=3000), prefix_hashes=["h"])
    with Ledger(tmp_path / "l.db") as ledger:
        ledger.record(write)
        assert summarize(ledger).total.writes_never_read == 1  # settled now: T0 is long past
        assert ledger.query("SELECT read_later FROM calls") == [(0,)]
        # A call that read it, written only now (from a spool, after an outage).
        ledger.record(
            CallRecord(T0 + 60, "m", usage=Usage(cache_read_input_tokens=3000), read_hash="h")
        )
        assert ledger.query("SELECT read_later FROM calls WHERE id = 1") == [(None,)]
        assert settled_through(ledger) <= T0  # the horizon moved back before the write
        assert summarize(ledger).total.writes_never_read == 0
        # Settled again: read (still NULL, before the horizon, which is past it once more).
        assert ledger.query("SELECT read_later FROM calls WHERE id = 1") == [(None,)]
        assert settled_through(ledger) > T0 + 3600


def test_a_ledger_from_before_the_integers_gets_them_from_its_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cachewise.ledger as ledger_module

    costs = [Decimal(c) for c in ("0.0123456789", "4E-8", "12.5", "0.12345678901", "20000.5")]
    path = tmp_path / "l.db"
    every = ledger_module.MIGRATIONS
    monkeypatch.setattr(ledger_module, "MIGRATIONS", every[:4])
    with Ledger(path) as old:
        for n, cost in enumerate(costs):
            row = CallRecord(T0 + n, "m", cost_usd=cost, cost_without_cache_usd=cost).to_row()
            for new in ("cost_e10", "cost_without_cache_e10", "read_later"):
                del row[new]
            old.execute(
                f"INSERT INTO calls ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
    monkeypatch.setattr(ledger_module, "MIGRATIONS", every)
    with Ledger(path) as ledger:
        made = [r[0] for r in ledger.query("SELECT cost_e10 FROM calls ORDER BY id")]
        total = summarize(ledger).total
    # Exactly, where the text is plain digits, at most 10 places, under $10,000; else none (an
    # exponent, 11 places, $20,000: those rows are summed from their text).
    assert made == [123456789, None, 125000000000, None, None]
    assert total.cost_usd == sum(costs)


def test_a_settled_write_read_by_a_call_still_in_the_spool_was_read(tmp_path: Path) -> None:
    write = CallRecord(T0, "m", usage=Usage(ephemeral_5m_input_tokens=3000), prefix_hashes=["h"])
    read = CallRecord(T0 + 60, "m", usage=Usage(cache_read_input_tokens=3000), read_hash="h")
    with Ledger(tmp_path / "l.db") as ledger:
        ledger.record(write)
        assert summarize(ledger).total.writes_never_read == 1  # settled: T0 is long past
        Spool(ledger.target).write(read, None)  # the ledger refused it for a while
        assert summarize(ledger).total.writes_never_read == 0


def test_a_call_recorded_twice_is_summed_once(tmp_path: Path) -> None:
    call = CallRecord(T0, "m", usage=Usage(input_tokens=10), cost_usd=Decimal("0.5"))
    with Ledger(tmp_path / "l.db") as ledger:
        ledger.record(call)
        ledger.record(call)  # from the spool, after a crash: the same uid
        total = summarize(ledger).total
        assert ledger.query("SELECT SUM(calls) FROM hourly") == [(1,)]
    assert (total.calls, total.usage.input_tokens, total.cost_usd) == (1, 10, Decimal("0.5"))
