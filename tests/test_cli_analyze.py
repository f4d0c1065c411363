"""`cachewise lint`, `explain` and `plan` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from cachewise import parse_request
from cachewise.cli import main
from cachewise.testing import Emulator
from conftest import CC, CC_1H, block, request, text

SYSTEM = text(1500, "cli")


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.output


def dump(tmp_path: Path, name: str, *bodies: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(b) for b in bodies) + "\n")
    return str(path)


def test_lint_exit_codes(tmp_path: Path) -> None:
    clean = dump(tmp_path, "clean.json", request(system=[block(SYSTEM, CC)]))
    warn = dump(tmp_path, "warn.json", request(system=SYSTEM))
    bad = dump(tmp_path, "bad.json", request(system=[block(SYSTEM, CC), block("x", CC_1H)]))
    assert run("lint", clean)[0] == 0
    assert run("lint", warn)[0] == 0
    code, out = run("lint", bad)
    assert code == 1 and "CW002" in out and f"{bad}:1" in out
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"model": "claude-sonnet-4-6", "messages": []}\n{oops\n')
    code, out = run("lint", str(broken))
    assert code == 2 and f"{broken}:2" in out and "Traceback" not in out


def test_lint_json_shape(tmp_path: Path) -> None:
    path = dump(tmp_path, "w.json", request(system=SYSTEM))
    _code, out = run("lint", path, "--format", "json")
    data = json.loads(out)
    [f] = data["findings"]
    assert {"rule", "severity", "message", "request_index", "path", "suggestion"} <= set(f)
    assert data["summary"] == {"files": 1, "requests": 1, "errors": 0, "warnings": 0, "info": 1}


def test_lint_sarif_and_select(tmp_path: Path) -> None:
    path = dump(tmp_path, "w.json", request(model="claude-haiku-4-5", system=[block(SYSTEM, CC)]))
    _code, out = run("lint", path, "--format", "sarif", "--select", "CW101")
    sarif = json.loads(out)
    assert [r["ruleId"] for r in sarif["runs"][0]["results"]] == ["CW101"]
    _code, out = run("lint", path, "--format", "json", "--ignore", "CW101")
    assert json.loads(out)["findings"] == []


def test_lint_reads_standard_input() -> None:
    code, out = run("lint", "-", "--format", "json", stdin=json.dumps(request(system=SYSTEM)))
    assert code == 0 and json.loads(out)["findings"][0]["rule"] == "CW105"


def test_explain_a_pair(tmp_path: Path) -> None:
    prev = dump(
        tmp_path, "prev.json", request(system=[block("Today is 2026-11-21. " + SYSTEM, CC)])
    )
    curr = dump(
        tmp_path, "curr.json", request(system=[block("Today is 2026-11-22. " + SYSTEM, CC)])
    )
    code, out = run("explain", prev, curr, "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["cause"] == "prefix_changed" and data["path"] == "/system/0"
    assert {"cause", "level", "path", "expected_read_tokens", "missed_tokens", "suggestion"} <= set(
        data
    )
    code, out = run("explain", prev, curr)
    assert "prefix_changed" in out and "before:" in out


def test_explain_a_trace(tmp_path: Path) -> None:
    body = request(system=[block(SYSTEM, CC)])
    rows = [{"started_at": t, "request": body} for t in (0, 10, 400)]
    path = dump(tmp_path, "trace.jsonl", *rows)
    _code, out = run("explain", path, "--format", "json")
    assert [e["cause"] for e in json.loads(out)["explanations"]] == ["hit", "ttl_expired"]


def test_explain_needs_two_requests(tmp_path: Path) -> None:
    code, _out = run("explain", dump(tmp_path, "one.json", request()))
    assert code == 2


def test_plan_json_lints_clean(tmp_path: Path) -> None:
    path = dump(
        tmp_path,
        "req.json",
        request(
            system=SYSTEM,
            messages=[
                {"role": "user", "content": "Q1"},
                {"role": "assistant", "content": "A1"},
                {"role": "user", "content": "Q2"},
            ],
        ),
    )
    code, out = run("plan", path, "--format", "json")
    data = json.loads(out)
    assert code == 0 and len(data["breakpoints"]) == 2
    assert {"path", "ttl", "tokens", "why"} == set(data["breakpoints"][0])
    planned = dump(tmp_path, "planned.json", data["request"])
    assert run("lint", planned)[0] == 0


def test_plan_with_history_and_text(tmp_path: Path) -> None:
    body = request(system=SYSTEM, messages=[{"role": "user", "content": "Q"}])
    history = dump(
        tmp_path, "h.jsonl", *[{"started_at": 900 * i, "request": body} for i in range(4)]
    )
    code, out = run("plan", dump(tmp_path, "r.json", body), "--history", history)
    assert code == 0 and "1h" in out and "/system/0" in out


def test_plan_takes_one_request(tmp_path: Path) -> None:
    code, out = run("plan", dump(tmp_path, "two.jsonl", request(), request()))
    assert code == 2 and "plan takes one" in out


def conversation(tmp_path: Path) -> str:
    messages = [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "Q2"},
    ]
    return dump(tmp_path, "req.json", request(system=SYSTEM, messages=messages))


def test_plan_output_request_is_a_body_the_sdk_sends(tmp_path: Path) -> None:
    path = conversation(tmp_path)
    code, out = run("plan", path, "--output", "request")
    assert code == 0
    planned = json.loads(out)
    report = json.loads(run("plan", path, "--format", "json")[1])
    assert planned == report["request"]
    assert [m.path for m in parse_request(planned).markers] == [
        b["path"] for b in report["breakpoints"]
    ]
    with Emulator() as emu:
        client = emu.client()
        first = client.messages.create(**planned)
        second = client.messages.create(**planned)
    assert (first.usage.cache_creation_input_tokens or 0) > 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens


def test_plan_output_report_is_the_report_as_before(tmp_path: Path) -> None:
    path = conversation(tmp_path)
    code, out = run("plan", path, "--output", "report", "--format", "json")
    assert code == 0 and set(json.loads(out)) == {"request", "breakpoints", "notes"}
    assert out == run("plan", path, "--format", "json")[1]
    code, text_out = run("plan", path, "--output", "report")
    assert code == 0 and "/system/0" in text_out and "`--output request`" in text_out


def test_plan_help_says_what_each_output_prints() -> None:
    code, out = run("plan", "--help")
    words = " ".join(out.split())
    assert code == 0 and "--output [report|request]" in words
    assert "--format json the JSON {request, breakpoints, notes}" in words
    assert "only the planned request body as JSON, ready to send" in words
    assert "--format does not apply" in words


def test_a_message_batches_file_is_read_by_lint_explain_and_simulate_as_one_burst(
    tmp_path: Path,
) -> None:
    """The requests file `cachewise run` takes: lint reads it (its lines are under `params`),
    and explain and simulate start its lines together, as the Batches API runs them."""
    body = request(system=[block(SYSTEM, CC)])
    lines = [{"custom_id": f"q{i}", "params": body} for i in range(3)]
    path = dump(tmp_path, "requests.jsonl", *lines)
    code, out = run("lint", path, "--format", "json")
    assert code == 0 and json.loads(out)["summary"]["requests"] == 3
    code, out = run("explain", path, "--format", "json")
    causes = [e["cause"] for e in json.loads(out)["explanations"]]
    assert code == 0 and causes == ["concurrent_write", "concurrent_write"]
    code, out = run("simulate", path, "--strategy", "as-is", "--format", "json")
    [strategy] = [s for s in json.loads(out)["strategies"] if s["name"] == "as-is"]
    assert code == 0 and strategy["writes"] == 3  # all three race on the cold prefix
    bad = dump(tmp_path, "bad.jsonl", {"custom_id": "q0", "params": {"messages": []}})
    code, out = run("lint", bad)
    assert code == 2 and "bad.jsonl:1" in out and "field params.model" in out
