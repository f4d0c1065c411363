"""`cachewise doctor` and `--version`: what is installed, the ledger, the catalog, the services."""

from __future__ import annotations

import json
import platform
import sqlite3
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cachewise import __version__
from cachewise.catalog import catalog
from cachewise.cli import main
from cachewise.ledger import CallRecord, Ledger
from cachewise.schema import MIGRATIONS
from conftest import REDIS_URL

DEAD_REDIS = "redis://:hunter2@127.0.0.1:1/0"
DEAD_POSTGRES = "postgresql://me:hunter2@127.0.0.1:1/nothing"


def doctor(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["doctor", *args])
    return result.exit_code, result.output


def doctor_json(*args: str) -> tuple[int, dict[str, Any]]:
    code, out = doctor(*args, "--format", "json")
    return code, json.loads(out)


def checks(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in data["checks"]}


def test_version_names_the_python_it_runs_on() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert f"cachewise {__version__}" in result.output
    assert f"Python {platform.python_version()}" in result.output


def test_nothing_named_passes_and_says_where_the_ledger_and_the_prices_come_from(
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "ledger.db"
    code, out = doctor("--ledger", str(ledger))
    assert code == 0, out
    assert f"cachewise {__version__}" in out and platform.python_version() in out
    assert f"as of {catalog().as_of}" in out
    assert f"{ledger}: not created yet" in out
    assert "not named (--redis URL" in out and "not named (--postgres URL" in out
    assert not ledger.exists()  # looking is not creating


def test_a_ledger_with_calls_is_counted_without_being_changed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger(path) as ledger:
        ledger.record(CallRecord(started_at=time.time(), model="claude-sonnet-4-6"))
        ledger.record(CallRecord(started_at=time.time(), model="claude-sonnet-4-6", emulated=True))
    before = path.read_bytes()
    code, data = doctor_json("--ledger", str(path))
    found = checks(data)["ledger"]
    assert code == 0 and data["ok"] is True
    assert found["status"] == "ok" and found["detail"] == "2 calls (1 emulated)"
    assert found["target"] == str(path)
    assert path.read_bytes() == before


def test_an_older_ledger_is_reported_with_its_pending_migrations_and_left_as_it_is(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE _cachewise_migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    name, first = MIGRATIONS[0]
    for statement in first("sqlite"):
        db.execute(statement)
    db.execute("INSERT INTO _cachewise_migrations VALUES (?, 'then')", (name,))
    db.commit()
    db.close()
    code, data = doctor_json("--ledger", str(path))
    assert code == 0
    assert f"{len(MIGRATIONS) - 1} migration(s) to apply" in checks(data)["ledger"]["detail"]
    with sqlite3.connect(path) as again:
        assert again.execute("SELECT COUNT(*) FROM _cachewise_migrations").fetchone() == (1,)


def test_a_file_that_is_not_a_ledger_fails(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("shopping list\n")
    code, out = doctor("--ledger", str(path))
    assert code == 1
    assert "FAIL  ledger" in out and "not a cachewise ledger" in out


def test_services_that_do_not_answer_fail_quickly_and_never_show_a_password() -> None:
    start = time.monotonic()
    code, out = doctor("--redis", DEAD_REDIS, "--postgres", DEAD_POSTGRES, "--timeout", "0.5")
    assert time.monotonic() - start < 10
    assert code == 1
    assert "FAIL  redis" in out and "FAIL  postgresql" in out
    assert "2 check(s) failed: redis, postgresql" in out
    assert "hunter2" not in out and "redis://…@127.0.0.1:1/0" in out


def test_urls_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHEWISE_REDIS_URL", DEAD_REDIS)
    code, data = doctor_json("--timeout", "0.5")
    assert code == 1 and checks(data)["redis"]["status"] == "fail"
    assert checks(data)["postgresql"]["status"] == "skip"


def test_a_redis_that_answers_passes(redis_prefix: str) -> None:
    code, data = doctor_json("--redis", REDIS_URL)
    found = checks(data)["redis"]
    assert code == 0 and found["status"] == "ok" and found["detail"].startswith("Redis ")
    assert found["ms"] > 0


def test_a_postgresql_ledger_and_server_that_answer_pass(postgres_url: str) -> None:
    with Ledger(postgres_url) as ledger:
        ledger.record(CallRecord(started_at=time.time(), model="claude-sonnet-4-6"))
    code, data = doctor_json("--ledger", postgres_url, "--postgres", postgres_url)
    found = checks(data)
    assert code == 0, data
    assert found["ledger"]["detail"] == "1 call (0 emulated)"
    assert found["postgresql"]["status"] == "ok"
    assert found["postgresql"]["detail"].startswith("PostgreSQL ")


def test_every_extra_the_package_declares_is_listed_with_its_packages() -> None:
    try:
        declared = set(metadata.metadata("cachewise").get_all("Provides-Extra") or [])
    except metadata.PackageNotFoundError:
        pytest.skip("cachewise is not installed as a package here (a source tree only)")
    code, data = doctor_json()
    listed = {e["name"]: e for e in data["extras"]}
    assert code == 0
    assert set(listed) == declared - {"dev", "docs"}
    # The test environment has the dev extra, which includes every user-facing extra's packages.
    assert listed["postgres"]["installed"] and listed["postgres"]["packages"]["psycopg"]
    assert listed["proxy"]["packages"]["redis"] == metadata.version("redis")
