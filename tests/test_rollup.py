"""The report's sums from the database's GROUP BY equal the old row-by-row sums, on SQLite and
on PostgreSQL: the Python computation the report used before is kept here as the oracle."""

from __future__ import annotations

import random
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
from cachewise.ledger import SETTLE_GRACE, CallRecord, Ledger
from cachewise.report import selected_calls, summarize
from cachewise.rollup import Scope, settle, settled_through
from cachewise.schema import HOURLY
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
    equal_to_the_oracle(ledger, since)


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


# -- m007 and the settled horizon ----------------------------------------------------------


def some_calls(n: int, seed: int) -> list[CallRecord]:
    """`n` calls over six hours, with writes read later (and not), tags, roles and spend."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        writes = rng.random() < 0.4
        prefix = rng.choice(HASHES)
        out.append(
            CallRecord(
                started_at=T0 + rng.randrange(6 * 3600 * 1000) / 1000,
                model=rng.choice(["m-a", "m-b"]),
                status=rng.choice(["ok", "ok", "error"]),
                workspace=rng.choice([None, "key_a", ""]),
                usage=Usage(
                    rng.randint(1, 500),
                    0 if writes else rng.choice([0, 3000]),
                    3000 if writes else 0,
                    0,
                    rng.randint(1, 500),
                ),
                cost_usd=Decimal(rng.randint(0, 10**8)).scaleb(-rng.randint(0, 12)),
                cost_without_cache_usd=Decimal(rng.randint(0, 10**8)).scaleb(-10),
                prefix_hashes=[prefix] if writes else [],
                read_hash=None if writes else rng.choice([None, prefix]),
                cause=rng.choice([None, "hit", "cold_start"]),
                tags=rng.choice([None, {"a": 1}, ["x"], {"run": f"r{rng.randrange(5)}"}]),
                emulated=rng.random() < 0.2,
                wire=rng.choice([None, "ok", "lost", "changed"]),
                gate_role=rng.choice([None, "scout", "follower", "timeout"]),
                gate_wait_s=rng.choice([None, rng.random() * 5]),
                prefix_hash=rng.choice([None, "p1", "p2"]),
            )
        )
    return out


def equal_to_the_oracle(ledger: Ledger, since: float | None = None) -> None:
    """Every grouping, cause, marker count, spool count and gate wait of the report equals the
    old row-by-row computation over the same calls."""
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
        for role in ("scout", "follower", "timeout"):
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


@contextmanager
def ledger_target(dialect: str, tmp_path: Path) -> Iterator[str]:
    if dialect == "sqlite":
        yield str(tmp_path / "l.db")
        return
    import psycopg

    schema = f"cw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_m007_makes_its_sums_from_an_m006_ledger_and_reports_stay_equal(
    dialect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    import cachewise.ledger as ledger_module

    if dialect == "postgres":
        request.getfixturevalue("postgres")
    every = ledger_module.MIGRATIONS
    names = [name for name, _ in every]
    drawn = some_calls(300, seed=7)
    with ledger_target(dialect, tmp_path) as target:
        # A ledger of m006 as it ran: rows summed into its hourly table by m006 itself, and the
        # older writes settled as m006's reports settled them (each marked read or not).
        monkeypatch.setattr(ledger_module, "MIGRATIONS", every[: names.index("m006_hourly")])
        with Ledger(target) as old:
            for call in drawn:
                row = call.to_row()
                old.execute(
                    f"INSERT INTO calls ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                    list(row.values()),
                )
        monkeypatch.setattr(ledger_module, "MIGRATIONS", every[: names.index("m006_hourly") + 1])
        window = float(max(catalog().ttl_seconds.values()))
        with Ledger(target) as old:
            read = Scope(old, None, True).read_later("calls", window)
            old.execute(
                f"UPDATE calls AS c SET read_later = CASE WHEN {read} THEN 1 ELSE 0 END "
                "WHERE c.ephemeral_5m_input_tokens + c.ephemeral_1h_input_tokens > 0 "
                "AND c.started_at < ?",
                [T0 + 3 * 3600],
            )
            before = old.query("SELECT COUNT(*), SUM(calls) FROM hourly")[0]
        monkeypatch.setattr(ledger_module, "MIGRATIONS", every)
        with Ledger(target) as ledger:
            assert ledger.query("SELECT SUM(calls) FROM hourly") == [(before[1],)]
            assert ledger.query("SELECT SUM(calls) FROM hourly_tags") == [(before[1],)]
            gated = sum(c.gate_role is not None for c in drawn)
            assert ledger.query("SELECT SUM(calls) FROM hourly_gate") == [(gated,)]
            assert ledger.query("SELECT COUNT(*) FROM hourly")[0][0] < before[0]
            assert settled_through(ledger) == 0  # every write unsettled, the marked ones too
            equal_to_the_oracle(ledger)
            equal_to_the_oracle(ledger, since=T0 + 5400.5)
            # And a ledger made new, the same calls recorded one by one, has the same sums.
            fresh = Ledger(tmp_path / "fresh.db")
            for call in drawn:
                fresh.record(replace(call, id=None))
            for table, (keys, sums) in HOURLY.items():
                cols, order = ", ".join((*keys, *sums)), ", ".join(keys)
                got = ledger.query(f"SELECT {cols} FROM {table} ORDER BY {order}")
                made = fresh.query(f"SELECT {cols} FROM {table} ORDER BY {order}")
                floats = [n == "wait_s" for n in (*keys, *sums)]  # summed in any order
                (exact, rough), (made_exact, made_rough) = apart(got, floats), apart(made, floats)
                assert exact == made_exact and rough == pytest.approx(made_rough)
            fresh.close()


def apart(rows: list[tuple[Any, ...]], floats: list[bool]) -> tuple[list[str], list[float]]:
    """The rows' exact values as text, and their float sums, to compare roughly."""
    exact = [str(v) for row in rows for v, f in zip(row, floats, strict=True) if not f]
    return exact, [float(v) for row in rows for v, f in zip(row, floats, strict=True) if f]


@pytest.mark.parametrize("batch", [1, 7, 50_000])
def test_settling_in_batches_settles_every_write_as_settling_at_once(
    batch: int, tmp_path: Path
) -> None:
    drawn = some_calls(200, seed=3)
    window = float(max(catalog().ttl_seconds.values()))
    never = old_never_read(sorted(drawn, key=lambda c: c.started_at))
    with Ledger(tmp_path / "l.db") as ledger:
        for call in drawn:
            ledger.record(call)
        # Half the hours first (a horizon in the middle of the calls), then the rest.
        half = T0 + 3 * 3600 + window + SETTLE_GRACE
        first = settle(ledger, window, now=half, batch=batch)
        assert settled_through(ledger) == half - window - SETTLE_GRACE
        assert first + settle(ledger, window, batch=batch) == len(never)
        assert settled_through(ledger) > T0 + 6 * 3600
        marked = ledger.query(
            "SELECT COUNT(*) FROM calls WHERE read_later = 0 AND ephemeral_5m_input_tokens > 0"
        )
        assert marked == [(len(never),)]
        equal_to_the_oracle(ledger)


def test_settling_goes_in_steps_of_its_batch(tmp_path: Path) -> None:
    write = CallRecord(T0, "m", usage=Usage(ephemeral_5m_input_tokens=3000), prefix_hashes=["h"])
    with Ledger(tmp_path / "l.db") as ledger:
        for n in range(10):
            ledger.record(replace(write, started_at=T0 + n, uid=f"w{n}"))
        steps = []
        real = ledger.execute_many

        def spy(statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
            steps.append(statements[0][1][0])  # where the horizon moves to
            return real(statements)

        ledger.execute_many = spy  # type: ignore[method-assign]
        assert settle(ledger, 3600.0, batch=4) == 10
    assert steps[:3] == [T0 + 4, T0 + 8, steps[2]] and len(steps) == 3


def test_a_write_recorded_late_is_not_taken_for_settled(tmp_path: Path) -> None:
    write = CallRecord(T0, "m", usage=Usage(ephemeral_5m_input_tokens=3000), prefix_hashes=["h"])
    with Ledger(tmp_path / "l.db") as ledger:
        ledger.record(write)
        assert summarize(ledger).total.writes_never_read == 1
        assert settled_through(ledger) > T0 + 3600
        # Another write of that day, from a spool, after the horizon passed it: never read too.
        ledger.record(replace(write, started_at=T0 + 30, uid="late"))
        assert settled_through(ledger) <= T0
        assert summarize(ledger).total.writes_never_read == 2


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_resum_after_a_bulk_load_settles_again_and_reports_stay_equal(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if dialect == "postgres":
        request.getfixturevalue("postgres")
    drawn = some_calls(150, seed=11)
    with ledger_target(dialect, tmp_path) as target, Ledger(target) as ledger:
        for call in drawn[:50]:
            ledger.record(call)
        summarize(ledger)  # settled through the first calls
        for call in drawn[50:]:  # loaded around `record`: no sums, no horizon moved
            row = call.to_row()
            ledger.execute(
                f"INSERT INTO calls ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
        ledger.resum(settle=False)
        assert settled_through(ledger) == 0  # every write unsettled: the next report settles
        equal_to_the_oracle(ledger)
        ledger.resum()  # and settled here
        assert settled_through(ledger) > T0 + 6 * 3600
        equal_to_the_oracle(ledger)


def test_a_read_arriving_after_the_grace_opens_a_write_settled_since(tmp_path: Path) -> None:
    # Settled: its hour and the grace have passed. The read came within that hour, but its row
    # arrives now, more than the grace after it started (and less than an hour and the grace).
    w = time.time() - 2 * 3600 - 100
    write = CallRecord(w, "m", usage=Usage(ephemeral_5m_input_tokens=3000), prefix_hashes=["h"])
    with Ledger(tmp_path / "l.db") as ledger:
        ledger.record(write)
        assert summarize(ledger).total.writes_never_read == 1
        read = Usage(cache_read_input_tokens=3000)
        ledger.record(CallRecord(w + 3500, "m", usage=read, read_hash="h"))
        assert summarize(ledger).total.writes_never_read == 0
