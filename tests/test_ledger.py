"""The ledger on SQLite and on a real PostgreSQL: migrations, rows, exact decimals."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from cachewise.ledger import MIGRATIONS, CallRecord, Ledger, default_path, key_workspace
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
    from cachewise.errors import LedgerError

    with pytest.raises(LedgerError, match="cannot connect"):
        Ledger("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
