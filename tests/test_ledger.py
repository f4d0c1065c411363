"""The ledger on SQLite and on a real PostgreSQL: migrations, rows, exact decimals."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from cachewise.errors import LedgerError
from cachewise.ledger import (
    CallRecord,
    Ledger,
    default_path,
    is_emulated,
    key_workspace,
)
from cachewise.schema import MIGRATIONS
from cachewise.usage import Usage

EXPECTED_COLUMNS = [
    "id",
    "started_at",
    "started_utc",
    "first_byte_at",
    "ended_at",
    "workspace",
    "model",
    "request_id",
    "status",
    "http_status",
    "error_type",
    "input_tokens",
    "ephemeral_5m_input_tokens",
    "ephemeral_1h_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
    "cost_usd",
    "cost_without_cache_usd",
    "prefix_hashes",
    "read_hash",
    "breakpoints",
    "cause",
    "source",
    "batch",
    "tags",
    "usage_json",
    "uid",
    "emulated",
    "intended_breakpoints",
    "wire",
    "gate_role",
    "gate_wait_s",
    "prefix_hash",
    "cost_e10",
    "cost_without_cache_e10",
    "read_later",
]


def sample(**kw: object) -> CallRecord:
    base = {
        "started_at": 1_763_790_000.25,
        "model": "claude-sonnet-4-6",
        "ended_at": 1_763_790_001.5,
        "workspace": key_workspace("sk-secret"),
        "usage": Usage(
            input_tokens=7,
            ephemeral_5m_input_tokens=3,
            ephemeral_1h_input_tokens=2,
            cache_read_input_tokens=100,
            output_tokens=9,
        ),
        "cost_usd": Decimal("0.000123456789"),
        "cost_without_cache_usd": Decimal("0.0004"),
        "prefix_hashes": ["abc"],
        "breakpoints": [{"path": "/system/0", "ttl": "5m", "tokens": 105}],
        "cause": "hit",
        "tags": {"job": "nightly"},
        "raw_usage": {"input_tokens": 7},
    }
    base.update(kw)
    return CallRecord(**base)  # type: ignore[arg-type]


def roundtrip(ledger: Ledger) -> None:
    assert ledger.columns() == EXPECTED_COLUMNS
    first = ledger.record(sample())
    ledger.record(
        sample(
            started_at=1_763_790_100.0,
            status="error",
            http_status=529,
            error_type="overloaded_error",
        ),
        prompt={"model": "m", "messages": []},
    )
    calls = ledger.calls()
    assert [c.id for c in calls] == [first, first + 1]
    c = calls[0]
    assert c.cost_usd == Decimal("0.000123456789") and c.usage.cache_creation_input_tokens == 5
    assert c.tags == {"job": "nightly"} and c.breakpoints[0]["ttl"] == "5m"
    assert [c.status for c in ledger.calls(since=1_763_790_050.0)] == ["error"]
    assert ledger.prompts() == {first + 1: {"model": "m", "messages": []}}
    assert ledger.prompts(since=1_763_790_200.0) == {}
    assert ledger.migrate() == []  # applied once, recorded, never again


def test_sqlite_roundtrip(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.db") as ledger:
        roundtrip(ledger)
    db = sqlite3.connect(tmp_path / "ledger.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [r[0] for r in db.execute("SELECT name FROM _cachewise_migrations")] == [
        name for name, _ in MIGRATIONS
    ]


def test_postgres_roundtrip(postgres_url: str) -> None:
    with Ledger(postgres_url) as ledger:
        assert ledger.dialect == "postgres"
        roundtrip(ledger)
    with Ledger(postgres_url) as again:  # reopening applies nothing twice
        assert len(again.calls()) == 2


def test_default_path_follows_cachewise_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHEWISE_HOME", str(tmp_path / "home"))
    assert default_path() == tmp_path / "home" / "ledger.db"


def test_the_workspace_is_a_one_way_hash() -> None:
    ws = key_workspace("sk-ant-very-secret")
    assert ws is not None and "secret" not in ws and ws == key_workspace("sk-ant-very-secret")
    assert key_workspace(None) is None


def test_an_unreachable_postgres_is_a_clear_error() -> None:
    with pytest.raises(LedgerError, match="cannot connect"):
        Ledger("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")


OPEN_AT_ONCE = """
import sys, time
from cachewise.ledger import Ledger
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
with Ledger(sys.argv[1]) as ledger:
    print(len(ledger.columns()))
"""


def open_together(target: str, processes: int) -> list[subprocess.CompletedProcess[str]]:
    """`processes` processes open the same new ledger at the same instant."""
    start = time.time() + 1.5  # after every interpreter has started
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AT_ONCE, target, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def open_concurrently(path: Path, openers: int) -> list[BaseException]:
    barrier = threading.Barrier(openers)
    errors: list[BaseException] = []

    def open_it() -> None:
        barrier.wait()
        try:
            Ledger(path).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(openers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_a_new_sqlite_ledger_opened_by_many_connections_at_once(tmp_path: Path) -> None:
    """Each opener reads the applied list inside the transaction that applies the rest (before,
    8 of 20 such trials failed with `table calls already exists`)."""
    for trial in range(5):
        path = tmp_path / f"new-{trial}" / "ledger.db"
        assert open_concurrently(path, 16) == []
        db = sqlite3.connect(path)
        names = [r[0] for r in db.execute("SELECT name FROM _cachewise_migrations")]
        assert names == [name for name, _ in MIGRATIONS]  # each applied once


def test_a_new_postgres_ledger_opened_by_many_processes_at_once(postgres_url: str) -> None:
    for run in open_together(postgres_url, 10):
        assert run.returncode == 0, run.stderr
    with Ledger(postgres_url) as ledger:
        assert ledger.migrate() == [] and ledger.columns() == EXPECTED_COLUMNS


def test_reading_never_creates_a_ledger(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "x.db"
    with pytest.raises(LedgerError, match=f"no ledger at {missing}"):
        Ledger(missing, create=False)
    assert not missing.parent.exists()
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)")
    with pytest.raises(LedgerError, match="not a cachewise ledger"):
        Ledger(other, create=False)
    assert [r[0] for r in sqlite3.connect(other).execute("SELECT name FROM sqlite_master")] == ["t"]


def test_reading_never_creates_tables_in_a_postgres_database(postgres_url: str) -> None:
    import psycopg

    with pytest.raises(LedgerError, match="not a cachewise ledger"):
        Ledger(postgres_url, create=False)
    with psycopg.connect(postgres_url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
    assert tables == []


def test_the_ledger_is_private(tmp_path: Path) -> None:
    path = tmp_path / "home" / "ledger.db"
    with Ledger(path) as ledger:
        ledger.record(sample())
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for f in path.parent.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f.name


def test_emulated_calls_are_marked_and_left_out_of_reads_when_asked(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db") as ledger:
        ledger.record(sample(request_id="req_011CXYZ"))
        ledger.record(sample(request_id="req_emu00000001", emulated=True))
        assert len(ledger.calls()) == 2
        assert [c.emulated for c in ledger.calls(include_emulated=False)] == [False]
        assert ledger.emulated_calls() == 1
    assert is_emulated("msg_emu00000007") and is_emulated("msgbatch_emu00000001")
    assert not is_emulated("msg_01AbCdEf") and not is_emulated(None)
