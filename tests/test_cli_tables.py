"""Every table the CLI prints, in an 80-column terminal: ids and money are never cut to `…`."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from cachewise.catalog import catalog
from cachewise.cli import main
from cachewise.cli.main import usd
from cachewise.cli.run_cmds import _demo_table, _table
from cachewise.ledger import CallRecord, Ledger
from cachewise.runner import RunSummary
from cachewise.strategies import STRATEGIES
from cachewise.usage import Usage
from conftest import CC, block, request, text

# A plain 80-column terminal: rich takes it for one, without colour codes in the text.
TERMINAL = {"COLUMNS": "80", "TTY_COMPATIBLE": "1", "TERM": "dumb"}
LONG_ID = "claude-3-5-sonnet-20241022"


def cli(*args: str, env: dict[str, str] = TERMINAL) -> str:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def assert_whole(out: str, *needles: str) -> None:
    assert "…" not in out
    assert all(len(line) <= 80 for line in out.splitlines() if line[:1] in "┏┃┡│└")
    for needle in needles:
        assert needle in out, needle


@pytest.mark.parametrize("env", [TERMINAL, {"COLUMNS": "80"}], ids=["terminal", "piped"])
def test_models(env: dict[str, str]) -> None:
    out = cli("models", env=env)
    names = [name for m in catalog().models for name in (m.id, *m.aliases)]
    kinds = ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output")
    prices = [f"{getattr(m.prices, k)}" for m in catalog().models if m.prices for k in kinds]
    assert_whole(out, *names, *prices)


@pytest.mark.parametrize("static", ["8000", "200000000"])  # up to 10,000,000,000 tokens a cell
def test_cost(static: str) -> None:
    args = ["--model", LONG_ID, "--calls", "50", "--static-tokens", static]
    args += ["--dynamic-tokens", "420", "--output-tokens", "900", "--gap-seconds", "400"]
    data = json.loads(cli("cost", *args, "--format", "json"))
    out = cli("cost", *args)
    figures = [usd(s["cost_usd"]) for s in data["scenarios"]]
    assert_whole(out, LONG_ID, *figures, "% more")


@pytest.mark.parametrize("by", [[], ["--by", "model"]], ids=["total", "by model"])
def test_report(tmp_path: Path, by: list[str]) -> None:
    with Ledger(tmp_path / "l.db") as ledger:
        for i, (model, dollars) in enumerate([(LONG_ID, "12345.6789"), ("claude-opus-4-1", "7")]):
            ledger.record(
                CallRecord(
                    started_at=1_763_769_600.0 + i,
                    ended_at=1_763_769_601.0 + i,
                    model=model,
                    usage=Usage(input_tokens=123_456_789, cache_read_input_tokens=987_654_321),
                    cost_usd=Decimal(dollars),
                    cost_without_cache_usd=Decimal(dollars) * 3,
                )
            )
        target = ledger.target
    out = cli("report", "--ledger", target, *by)
    figures = [usd(Decimal(d)) for d in ("12352.6789", "37058.0367")]
    if by:
        figures += [usd(Decimal(d)) for d in ("12345.6789", "37037.0367", "7", "21")]
    assert_whole(out, *figures, *([LONG_ID, "claude-opus-4-1"] if by else []))


def test_simulate(tmp_path: Path) -> None:
    body = request(model=LONG_ID, system=[block(text(1500, "tables"), CC)])
    trace = tmp_path / "trace.jsonl"
    trace.write_text(
        "".join(json.dumps({"started_at": t, "request": body}) + "\n" for t in (0, 1, 400, 4000))
    )
    data = json.loads(cli("simulate", str(trace), "--format", "json"))
    out = cli("simulate", str(trace))
    figures = [usd(s["cost_usd"]) for s in data["strategies"]]
    assert_whole(out, *STRATEGIES, "oracle", *figures)


def test_plan(tmp_path: Path) -> None:
    body = request(
        model=LONG_ID,
        system=text(1500, "plan"),
        messages=[
            {"role": "user", "content": text(300, "q1")},
            {"role": "assistant", "content": text(300, "a1")},
            {"role": "user", "content": "And then?"},
        ],
    )
    path = tmp_path / "request.json"
    path.write_text(json.dumps(body))
    data = json.loads(cli("plan", str(path), "--format", "json"))
    out = cli("plan", str(path))
    assert data["breakpoints"]
    assert_whole(out, *(b["path"] for b in data["breakpoints"]))
    assert_whole(out, *(f"{b['tokens']:,}" for b in data["breakpoints"]))


def test_run_and_demo() -> None:
    big = Usage(
        input_tokens=9_876_543_210,
        cache_read_input_tokens=9_876_543_210,
        ephemeral_5m_input_tokens=9_876_543_210,
        output_tokens=9_876_543,
    )
    summary = RunSummary(
        calls=500_000,
        usage=big,
        cost_usd=Decimal("98765.4321"),
        cost_without_cache_usd=Decimal("987654.321"),
        total=500_000,
    )
    run_out = io.StringIO()
    _table(summary, Console(file=run_out, width=80))
    assert_whole(run_out.getvalue(), "$98,765.43", "$987,654.32", "9,876,543,210")

    result = {
        "model": LONG_ID,
        "calls": 500_000,
        "scenarios": [
            {"name": name, "usage": big.to_api(), "cost_usd": dollars, "wall_seconds": 12345.6}
            for name, dollars in (("off", 987654.321), ("on", 98765.4321))
        ],
    }
    demo_out = io.StringIO()
    out = Console(file=demo_out, width=80)
    out.print(_demo_table(result, 64, out))
    assert_whole(demo_out.getvalue(), LONG_ID, "$98,765.43", "$987,654.32", "9,876,543,210")
