"""`cachewise report` over a ledger with known rows: totals, groups, never-read writes, plot."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from cachewise import InputError
from cachewise.cli import main
from cachewise.ledger import CallRecord, Ledger
from cachewise.report import figure, parse_duration, report
from cachewise.usage import Usage

DAY = 86_400.0
T0 = 1_763_769_600.0  # 2025-11-22 00:00 UTC


TOKENS = ("input_tokens", "output_tokens", "ephemeral_5m_input_tokens", "cache_read_input_tokens")


def call(t: float, **kw: object) -> CallRecord:
    tokens: dict[str, object] = {"input_tokens": 10, "output_tokens": 5}
    tokens.update({k: v for k, v in kw.items() if k in TOKENS})
    base: dict[str, object] = {
        "started_at": t,
        "ended_at": t + 1,
        "model": "claude-sonnet-4-6",
        "workspace": "key_a",
        "usage": Usage(**tokens),  # type: ignore[arg-type]
        "cost_usd": Decimal("0.001"),
        "cost_without_cache_usd": Decimal("0.004"),
    }
    base.update({k: v for k, v in kw.items() if k not in TOKENS})
    return CallRecord(**base)  # type: ignore[arg-type]


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger(tmp_path / "l.db")
    led.record(call(T0, ephemeral_5m_input_tokens=2000, prefix_hashes=["h1"], cause="cold_start"))
    led.record(call(T0 + 10, cache_read_input_tokens=2000, read_hash="h1", cause="hit"))
    led.record(
        call(
            T0 + 20,
            ephemeral_5m_input_tokens=2000,
            prefix_hashes=["h2"],
            cause="prefix_changed",
            model="claude-opus-4-8",
        )
    )
    led.record(
        call(
            T0 + DAY,
            status="error",
            http_status=529,
            error_type="overloaded_error",
            cost_usd=Decimal(0),
            cost_without_cache_usd=Decimal(0),
            input_tokens=0,
            output_tokens=0,
        )
    )
    return led


def test_totals(ledger: Ledger) -> None:
    r = report(ledger)
    assert (r["calls"], r["errors"]) == (4, 1)
    assert r["usage"]["cache_creation_input_tokens"] == 4000
    assert r["usage"]["cache_read_input_tokens"] == 2000
    assert r["cost_usd"] == 0.003 and r["cost_without_cache_usd"] == 0.012
    assert r["savings_pct"] == 75.0
    assert r["cache_hit_rate"] == round(2000 / (30 + 4000 + 2000), 4)
    assert r["writes_never_read"] == 1  # h2 was written and never read
    assert r["misses_by_cause"] == {"cold_start": 1, "prefix_changed": 1}


@pytest.mark.parametrize(
    ("by", "groups"),
    [
        ("model", ["claude-opus-4-8", "claude-sonnet-4-6"]),
        ("day", ["2025-11-22", "2025-11-23"]),
        ("cause", ["(none)", "cold_start", "hit", "prefix_changed"]),
        ("workspace", ["key_a"]),
    ],
)
def test_groups(ledger: Ledger, by: str, groups: list[str]) -> None:
    assert [g["group"] for g in report(ledger, by=by)["groups"]] == groups


def test_since(ledger: Ledger) -> None:
    assert report(ledger, since=3600, now=T0 + DAY + 5)["calls"] == 1


def test_durations() -> None:
    assert parse_duration("30m") == 1800 and parse_duration("7d") == 7 * DAY
    with pytest.raises(InputError):
        parse_duration("yesterday")


def test_cli_json_csv_text_and_plot(ledger: Ledger, tmp_path: Path) -> None:
    target = ledger.target
    run = CliRunner().invoke
    data = json.loads(run(main, ["report", "--ledger", target, "--format", "json"]).output)
    assert data["calls"] == 4 and set(data) >= {
        "usage",
        "cost_usd",
        "cost_without_cache_usd",
        "savings_pct",
        "groups",
    }
    csv_out = run(main, ["report", "--ledger", target, "--by", "model", "--format", "csv"]).output
    assert (
        csv_out.splitlines()[0].startswith("group,calls,errors") and len(csv_out.splitlines()) == 3
    )
    png = tmp_path / "report.png"
    result = run(main, ["report", "--ledger", target, "--by", "model", "--plot", str(png)])
    assert result.exit_code == 0 and "75.0%" in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def tick_labels(calls: list[CallRecord]) -> tuple[list[str], str]:
    """The labels the chart's time axis gets, and the offset (the part they share) after them."""
    axis = figure(calls).axes[0].xaxis
    formatter = axis.get_major_formatter()
    labels = formatter.format_ticks(axis.get_major_locator()())
    return labels, formatter.get_offset()


def test_the_time_axis_reads_as_times_with_the_date_once() -> None:
    second = [call(T0 + 35 * 60 + 20 + i / 10) for i in range(11)]
    labels, offset = tick_labels(second)  # it read 35:19.800000, 35:20.000000...
    assert labels and all(re.fullmatch(r"\d\d\.\d", label) for label in labels), labels
    assert offset == "2025-Nov-22 00:35"
    days = [call(T0 + i * 3600) for i in range(72)]
    labels, offset = tick_labels(days)
    assert labels[:3] == ["Nov-22", "12:00", "Nov-23"] and offset.startswith("2025-Nov-2")


def test_bad_since_is_a_usage_error(ledger: Ledger) -> None:
    result = CliRunner().invoke(main, ["report", "--ledger", ledger.target, "--since", "soon"])
    assert result.exit_code == 2 and "--since" in result.output


def test_by_cause_shows_markers_lost_on_the_wire_and_unserved_reads(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "w.db")
    led.record(call(T0, cause="prefix_changed", wire="lost", gate_role="follower", gate_wait_s=1.5))
    led.record(call(T0 + 1, cause="prefix_changed", wire="changed", gate_role="follower"))
    led.record(call(T0 + 2, cause="likely_server_side", wire="ok", gate_role="scout"))
    r = report(led, by="cause")
    assert (r["markers_lost"], r["markers_changed"], r["predicted_reads_not_served"]) == (1, 1, 1)
    group = next(g for g in r["groups"] if g["group"] == "prefix_changed")
    assert (group["markers_lost"], group["markers_changed"]) == (1, 1)
    assert r["gate_waits"]["follower"] == {
        "calls": 2,
        "waited": 1,
        "total_wait_s": 1.5,
        "median_wait_s": 1.5,
    }
    run = CliRunner().invoke
    text = run(main, ["report", "--ledger", led.target, "--by", "cause"]).output
    assert "Markers lost on the way to the API: 1; changed: 1" in text and "markers" in text
    assert "did not serve (likely_server_side): 1" in text and "median 1.50 s" in text
    csv_out = run(main, ["report", "--ledger", led.target, "--by", "cause", "--format", "csv"])
    assert csv_out.output.splitlines()[0].endswith("writes_never_read,markers_lost,markers_changed")


def test_by_prefix_is_the_top_spend_first(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "p.db")
    for n, (prefix, cost) in enumerate([("pa", "0.5"), ("pb", "2"), ("pb", "1"), ("pc", "0.1")]):
        led.record(call(T0 + n, prefix_hash=prefix, cost_usd=Decimal(cost)))
    led.record(call(T0 + 9, prefix_hash=None))
    r = report(led, by="prefix", top=2)
    assert [(g["group"], g["cost_usd"]) for g in r["groups"]] == [("pb", 3.0), ("pa", 0.5)]
    assert r["groups_left_out"] == 2 and r["calls"] == 5  # pc and (none); totals keep them all
    text = CliRunner().invoke(main, ["report", "--ledger", led.target, "--by", "prefix"]).output
    assert "pb" in text and "pc" in text and "more prefixes" not in text
    led.record(call(T0 + 10, prefix_hash="f" * 64, cost_usd=Decimal(9)))
    text = CliRunner().invoke(main, ["report", "--ledger", led.target, "--by", "prefix"]).output
    assert "f" * 16 + "…" in text and "f" * 17 not in text
