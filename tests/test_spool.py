"""The spool: a row the ledger refuses is kept durably, recorded later exactly once, counted by
report meanwhile; a wrapped call never fails for its bookkeeping."""

from __future__ import annotations

import sqlite3
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from cachewise import CachewiseWarning, wrap
from cachewise.ledger import CallRecord, Ledger
from cachewise.report import report
from cachewise.spool import Recorder, Spool
from cachewise.testing import Emulator
from cachewise.usage import Usage
from conftest import block, request, text

SYSTEM = text(3000, "spool")


def row(n: int) -> CallRecord:
    return CallRecord(
        started_at=1_763_790_000.0 + n,
        model="claude-sonnet-4-6",
        usage=Usage(input_tokens=10, output_tokens=5),
        request_id=f"req_{n}",
    )


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[tuple[Ledger, sqlite3.Connection]]:
    """A ledger whose database another connection holds locked (as a busy writer would)."""
    path = tmp_path / "ledger.db"
    ledger = Ledger(path, busy_timeout=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    yield ledger, other
    if other.in_transaction:
        other.execute("ROLLBACK")
    other.close()
    ledger.close()


def test_a_refused_row_is_spooled_durably_and_recorded_once_later(
    locked: tuple[Ledger, sqlite3.Connection],
) -> None:
    ledger, other = locked
    recorder = Recorder(ledger)
    with pytest.warns(CachewiseWarning, match="is kept in") as caught:
        for n in range(5):
            recorder.record(row(n))
    assert len(caught) == 1  # one warning, not one per row
    assert recorder.spooled == 5 and len(recorder.spool.pending()) == 5
    files = recorder.spool.files()
    assert files and stat.S_IMODE(files[0].stat().st_mode) == 0o600
    other.execute("ROLLBACK")
    recorder.record(row(5))  # the ledger takes rows again: the spool is drained
    assert sorted(c.request_id or "" for c in ledger.calls()) == [f"req_{n}" for n in range(6)]
    assert recorder.spool.files() == []


def test_a_row_recorded_twice_is_kept_once(tmp_path: Path) -> None:
    """A crash between the insert and the spool's cleanup records the rows again: the uid keeps
    each once."""
    with Ledger(tmp_path / "l.db") as ledger:
        spool = Spool(ledger.target)
        first = row(1)
        assert ledger.record(first) is not None
        spool.write(first, None)
        spool.write(row(2), {"model": "m", "messages": []})
        assert spool.drain(ledger) == 2
        assert [c.request_id for c in ledger.calls()] == ["req_1", "req_2"]
        assert list(ledger.prompts().values()) == [{"model": "m", "messages": []}]


def test_a_spool_file_being_written_is_left_alone(tmp_path: Path) -> None:
    import fcntl

    with Ledger(tmp_path / "l.db") as ledger:
        spool = Spool(ledger.target)
        spool.write(row(1), None)
        (path,) = spool.files()
        with path.open("a") as held:
            fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # a writer appending this moment
            assert Spool(ledger.target).drain(ledger) == 0
        assert Spool(ledger.target).drain(ledger) == 1
        assert [c.request_id for c in ledger.calls()] == ["req_1"] and spool.files() == []


def test_report_counts_the_spooled_calls(locked: tuple[Ledger, sqlite3.Connection]) -> None:
    ledger, _ = locked
    recorder = Recorder(ledger)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CachewiseWarning)
        for n in range(3):
            recorder.record(row(n))
    result = report(ledger)
    assert (result["calls"], result["spooled"]) == (3, 3)
    assert result["usage"]["input_tokens"] == 30


def test_a_wrapped_call_on_a_locked_ledger_returns_its_message(
    locked: tuple[Ledger, sqlite3.Connection],
) -> None:
    ledger, other = locked
    body = request(system=[block(SYSTEM, {"type": "ephemeral"})])
    with Emulator() as emu:
        client = wrap(emu.client(), ledger=ledger)
        with pytest.warns(CachewiseWarning, match="The call itself succeeded"):
            first = client.messages.create(**body)
        second = client.messages.create(**body)
        assert first.usage.cache_creation_input_tokens > 0
        assert second.usage.cache_read_input_tokens > 0
        other.execute("ROLLBACK")
        client.messages.create(**body)
    assert len(ledger.calls()) == 3


def test_a_full_disk_loses_no_call_the_api_answered(full_disk: Path) -> None:
    """400 wrapped calls with the ledger on a 256 KB filesystem: every call returns its message,
    and every row is in the ledger or the spool."""
    body = request(system=[block(SYSTEM, {"type": "ephemeral"})])
    ledger = Ledger(full_disk / "ledger.db")
    returned = 0
    with Emulator() as emu, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = wrap(emu.client(), ledger=ledger, tags={"filler": "x" * 2000})
        for i in range(400):
            message = client.messages.create(
                **{**body, "messages": [{"role": "user", "content": f"call {i}"}]}
            )
            returned += message.usage.output_tokens > 0
    assert returned == 400
    assert [str(w.message) for w in caught if issubclass(w.category, CachewiseWarning)]
    kept = {c.uid for c in ledger.calls()} | {c.uid for c, _ in Spool(ledger.target).pending()}
    assert len(kept) == 400
    ledger.close()


WRITER = """
import sys, warnings
from cachewise.ledger import CallRecord, Ledger
from cachewise.spool import Recorder
warnings.simplefilter("ignore")
recorder = Recorder(Ledger(sys.argv[1], busy_timeout=0.001))
for n in range(int(sys.argv[2])):
    recorder.record(CallRecord(float(n), "claude-sonnet-4-6", request_id=f"{sys.argv[3]}-{n}"))
"""

READER = """
import sys, time
from cachewise.ledger import Ledger
from cachewise.report import report
end = time.time() + float(sys.argv[2])
while time.time() < end:
    with Ledger(sys.argv[1], create=False) as ledger:
        report(ledger)
"""


def test_busy_writers_and_readers_lose_no_row(tmp_path: Path) -> None:
    """Six processes record 150 rows each with almost no patience for locks while two report in
    a loop: every row ends up in the ledger (some by way of the spool), none twice."""
    import subprocess
    import sys

    path = str(tmp_path / "ledger.db")
    Ledger(path).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, path, "150", f"w{i}"]) for i in range(6)
    ]
    procs += [subprocess.Popen([sys.executable, "-c", READER, path, "3"]) for _ in range(2)]
    assert [p.wait(120) for p in procs] == [0] * 8
    with Ledger(path) as ledger:
        Recorder(ledger)  # a writer opening the ledger records what waits in the spool
        ids = [c.request_id for c in ledger.calls()]
    assert len(ids) == 900 and len(set(ids)) == 900
