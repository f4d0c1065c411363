"""`cachewise run`: the scout, resumability, bad input, faults and the Message Batches path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cachewise import InputError, cost
from cachewise.cli import main
from cachewise.ledger import Ledger
from cachewise.results import completed_ids
from cachewise.runner import RunOptions, _prepare, read_requests, run_requests
from cachewise.testing import Emulator
from conftest import text

CONTEXTS = [text(1500, "alpha"), text(1500, "beta")]


def requests(n: int, prefixes: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"r{i}",
            "params": {
                "model": "claude-sonnet-4-6",
                "max_tokens": 20,
                "system": CONTEXTS[i % prefixes],
                "messages": [{"role": "user", "content": f"Question {i}"}],
            },
        }
        for i in range(n)
    ]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def emu() -> Any:
    with Emulator(clock="real", ttft_ms=200) as e:
        yield e


def test_fifty_requests_over_one_prefix_with_eight_workers_write_once(
    emu: Emulator, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    s = run_requests(requests(50), out, emu.client(), options=RunOptions(workers=8))
    assert (s.succeeded, s.errored, s.writes, s.reads) == (50, 0, 1, 49)
    assert {r["result"]["type"] for r in results(out)} == {"succeeded"}
    assert s.cost_usd < s.cost_without_cache_usd / 5


def test_two_prefixes_write_twice(emu: Emulator, tmp_path: Path) -> None:
    s = run_requests(
        requests(40, prefixes=2), tmp_path / "o.jsonl", emu.client(), options=RunOptions(workers=8)
    )
    assert (s.writes, s.reads) == (2, 38)


def test_without_the_scout_more_than_one_call_writes(emu: Emulator, tmp_path: Path) -> None:
    s = run_requests(
        requests(24), tmp_path / "o.jsonl", emu.client(), options=RunOptions(workers=8, scout=False)
    )
    assert s.writes > 1


def test_a_persistently_failing_request_is_errored_and_the_run_goes_on(tmp_path: Path) -> None:
    with Emulator(faults="500@1+2+3") as emu:
        s = run_requests(
            requests(6),
            tmp_path / "o.jsonl",
            emu.client(),
            options=RunOptions(workers=1, retries=2),
        )
    lines = {r["custom_id"]: r["result"] for r in results(tmp_path / "o.jsonl")}
    assert (s.errored, s.succeeded) == (1, 5)
    assert lines["r0"]["type"] == "errored" and lines["r0"]["error"]["error"]["type"] == "api_error"


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    with Emulator(faults="429=1@1") as emu:
        start = time.monotonic()
        s = run_requests(
            requests(1), tmp_path / "o.jsonl", emu.client(), options=RunOptions(workers=1)
        )
    assert s.succeeded == 1 and time.monotonic() - start >= 1.0


def test_a_rerun_skips_what_is_done_and_repairs_a_cut_line(emu: Emulator, tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    run_requests(requests(5), out, emu.client())
    out.write_text(out.read_text() + '{"custom_id": "r9", "resu')  # a crash mid-write
    assert completed_ids(out) == {f"r{i}" for i in range(5)}
    s = run_requests(requests(8), out, emu.client())
    assert (s.skipped, s.succeeded) == (5, 3)
    assert sorted(r["custom_id"] for r in results(out)) == sorted(f"r{i}" for i in range(8))


GOOD = '"params": {"model": "claude-sonnet-4-6", "messages": []}'


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ('{"custom_id": "a", ' + GOOD + "}\nnot json\n", ":2:"),
        ("{" + GOOD + "}\n", "field custom_id"),
        ('{"custom_id": "a b", ' + GOOD + "}\n", "field custom_id"),
        ('{"custom_id": "a"}\n', "field params"),
        (
            '{"custom_id": "a", ' + GOOD + '}\n{"custom_id": "a", ' + GOOD + "}\n",
            "duplicate of line 1",
        ),
        (
            '{"custom_id": "a", "params": {"model": "claude-sonet-4-6", "messages": []}}\n',
            "field params.model",
        ),
        ('{"custom_id": "a", "params": {"messages": []}}\n', "field params.model"),
        ('{"custom_id": "a", "params": {"model": "claude-sonnet-4-6"}}\n', "field params.messages"),
    ],
)
def test_bad_input_stops_before_anything_is_sent(tmp_path: Path, content: str, where: str) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(content)
    with pytest.raises(InputError) as err:
        read_requests(path)
    assert str(path) in str(err.value) and where in str(err.value)
    result = CliRunner().invoke(
        main, ["run", str(path), "--out", str(tmp_path / "o.jsonl"), "--emulate"]
    )
    assert result.exit_code == 2 and not (tmp_path / "o.jsonl").exists()


def test_no_key_and_no_emulate_says_how(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", requests(1))
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2 and "ANTHROPIC_API_KEY" in result.output
    assert "--emulate" in result.output


def test_killed_mid_run_and_rerun_gives_every_id_exactly_once(tmp_path: Path) -> None:
    reqs = write_jsonl(tmp_path / "in.jsonl", requests(24))
    out = tmp_path / "out.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "cachewise",
        "run",
        str(reqs),
        "--out",
        str(out),
        "--emulate",
        "--workers",
        "6",
        "--format",
        "json",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if out.exists() and len(out.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    partial = len(completed_ids(out))
    assert 4 <= partial < 24
    finished = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    counts = Counter(r["custom_id"] for r in results(out))
    assert set(counts) == {f"r{i}" for i in range(24)} and set(counts.values()) == {1}
    assert json.loads(finished.stdout)["skipped"] == partial


def test_the_batches_path_primes_then_runs_the_rest_at_batch_prices(
    emu: Emulator, tmp_path: Path
) -> None:
    out = tmp_path / "o.jsonl"
    with Ledger(tmp_path / "l.db") as ledger:
        s = run_requests(
            requests(12, prefixes=2),
            out,
            emu.client(),
            options=RunOptions(via="batches", poll_seconds=0.05),
            ledger=ledger,
        )
        rows = ledger.calls()
    assert s.succeeded == 12 and len(results(out)) == 12
    assert any("priming batch" in n for n in s.notes)
    assert s.writes == 2 and s.reads == 10  # the primers wrote; the rest read
    assert all(r.batch and r.source == "run" for r in rows)
    usage = results(out)[0]["result"]["message"]["usage"]
    assert usage["service_tier"] == "batch"
    reader = rows[-1]  # the primers paid the 1h write (2x); the rest read at 0.1x
    assert reader.cost_without_cache_usd > reader.cost_usd > 0
    full = cost(reader.usage, model=reader.model, batch=False).total_usd
    assert reader.cost_usd * 2 == full


def test_ttl_auto_takes_1h_when_the_allowed_rate_spaces_calls_beyond_five_minutes() -> None:
    _, _, notes = _prepare(requests(10), RunOptions(max_rps=1 / 600))
    assert any("ttl 1h" in n for n in notes)
    _, _, notes = _prepare(requests(10), RunOptions(max_rps=2))
    assert any("ttl 5m" in n for n in notes)


def test_the_cli_prints_the_seed_table(tmp_path: Path) -> None:
    reqs = write_jsonl(tmp_path / "in.jsonl", requests(6))
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(reqs),
            "--out",
            str(tmp_path / "o.jsonl"),
            "--emulate",
            "--ledger",
            str(tmp_path / "l.db"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "embedded cachewise emulator" in result.output and "without caching" in result.output


def test_demo_json(tmp_path: Path) -> None:
    args = ["demo", "--format", "json", "--workers", "12", "--out-dir", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    data = json.loads(result.output)
    off, on = data["scenarios"]
    assert (off["name"], on["name"]) == ("off", "on")
    assert off["usage"]["cache_read_input_tokens"] == 0 and on["writes"] == 1
    assert on["reads"] == 49 and data["savings_pct"] > 80
    assert (tmp_path / "demo.png").exists()


def start_run(reqs: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "cachewise", "run", str(reqs), "--out", str(out), "--emulate"]
    return subprocess.Popen(
        [*cmd, "--workers", "2", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
    )


def wait_for_results(out: Path, n: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if out.exists() and len(completed_ids(out)) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} results in {out}")


def test_ctrl_c_sends_nothing_new_finishes_what_is_in_flight_and_says_how_to_resume(
    tmp_path: Path,
) -> None:
    reqs = write_jsonl(tmp_path / "in.jsonl", requests(40))
    out = tmp_path / "out.jsonl"
    proc = start_run(reqs, out, "--format", "json")
    wait_for_results(out, 2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    summary = json.loads(stdout)
    done = completed_ids(out)
    assert summary["interrupted"] and summary["not_sent"] == 40 - len(done) > 0
    assert summary["succeeded"] == len(done) and summary["errored"] == 0  # in flight: finished
    assert "Interrupted" in stderr and "run the same command again" in stderr


def test_a_second_ctrl_c_exits_at_once(tmp_path: Path) -> None:
    reqs = write_jsonl(tmp_path / "in.jsonl", requests(40))
    out = tmp_path / "out.jsonl"
    proc = start_run(reqs, out)
    wait_for_results(out, 2)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.monotonic() - sent < 2.0, stderr
    assert "Interrupted again" in stderr
    assert all(line.endswith("}") for line in out.read_text().splitlines())


def test_the_requests_file_cannot_be_the_results(tmp_path: Path) -> None:
    reqs = write_jsonl(tmp_path / "in.jsonl", requests(3))
    before = reqs.read_text()
    result = CliRunner().invoke(main, ["run", str(reqs), "--out", str(reqs), "--emulate"])
    assert result.exit_code == 2 and "is also the requests file" in result.output
    assert reqs.read_text() == before


def test_a_run_against_the_emulator_is_not_counted_as_spend(tmp_path: Path) -> None:
    reqs = write_jsonl(tmp_path / "in.jsonl", requests(4))
    ledger = str(tmp_path / "l.db")
    runner = CliRunner()
    ran = runner.invoke(
        main,
        ["run", str(reqs), "--out", str(tmp_path / "o.jsonl"), "--emulate", "--ledger", ledger],
    )
    assert ran.exit_code == 0, ran.output
    with Ledger(ledger) as led:
        assert [c.emulated for c in led.calls()] == [True] * 4
    plain = json.loads(
        runner.invoke(main, ["report", "--ledger", ledger, "--format", "json"]).output
    )
    assert (plain["calls"], plain["cost_usd"], plain["emulated_left_out"]) == (0, 0, 4)
    text = runner.invoke(main, ["report", "--ledger", ledger]).output
    assert "4 call(s) the emulator answered are not counted" in text
    rehearsal = runner.invoke(
        main, ["report", "--ledger", ledger, "--include-emulated", "--format", "json"]
    )
    assert json.loads(rehearsal.output)["calls"] == 4


def test_input_that_is_not_utf8_names_the_line_and_byte(tmp_path: Path) -> None:
    reqs = tmp_path / "in.jsonl"
    good = json.dumps(requests(1)[0]).encode()
    reqs.write_bytes(good + b"\n" + good[:20] + b"\xff\xfe" + good[20:] + b"\n")
    out = str(tmp_path / "o.jsonl")
    result = CliRunner().invoke(main, ["run", str(reqs), "--out", out, "--emulate"])
    assert result.exit_code == 2
    assert f"{reqs}:2: not UTF-8 text (byte {len(good) + 21})" in result.output


def test_no_key_is_said_before_anything_slow(tmp_path: Path) -> None:
    """The key is checked first: a run that cannot start says so before it reads, plans or
    imports the SDK (it took 7 s to say so)."""
    result = CliRunner().invoke(
        main, ["run", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o.jsonl")]
    )
    assert result.exit_code == 2 and "ANTHROPIC_API_KEY" in result.output
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom cachewise.cli import main\n"
            "try:\n    main(['run', 'missing.jsonl', '--out', 'o.jsonl'])\n"
            "except SystemExit:\n    pass\n"
            "print('anthropic' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")},
    )
    assert probe.stdout.strip().splitlines()[-1] == "False", probe.stderr


def test_a_demo_stopped_before_it_starts_says_so_and_sends_nothing(tmp_path: Path) -> None:
    import threading

    from cachewise.demo import run_demo

    stop = threading.Event()
    stop.set()  # Ctrl-C before the first call
    result = run_demo(4, tmp_path, stop)
    assert result["interrupted"] and result["scenarios"] == []
