"""Reading requests and traces: every malformed input names its file, line and field."""

from __future__ import annotations

import io
import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cachewise import InputError
from cachewise.simulate import simulate
from cachewise.trace import DEFAULT_TTFT_MS, Row, read_rows, replay, schedule, timeline
from conftest import CC, block, request, text


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


def test_a_single_body_file(tmp_path: Path) -> None:
    path = write(tmp_path, "one.json", json.dumps(request(), indent=2))
    [row] = read_rows(path)
    assert row.request["model"] == "claude-sonnet-4-6" and row.line == 1


def test_jsonl_of_bodies_and_trace_rows(tmp_path: Path) -> None:
    lines = [
        json.dumps(request()),
        "",
        json.dumps(
            {
                "started_at": 5,
                "request": request(),
                "workspace": "w",
                "ttft_ms": 200,
                "usage": {"input_tokens": 1},
            }
        ),
    ]
    rows = read_rows(write(tmp_path, "t.jsonl", "\n".join(lines)))
    assert [r.line for r in rows] == [1, 3]
    assert (rows[1].started_at, rows[1].workspace, rows[1].ttft_ms) == (5.0, "w", 200.0)


def test_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(request())))
    assert len(read_rows("-")) == 1


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ('{"model": "m", "messages": []}\n{not json', ":2:"),
        # A body over several lines breaks where the document does; JSON Lines where its line does.
        (
            '{"model": "m",\n "max_tokens": 5,\n "messages": [}\n',
            ":3: not JSON: Expecting value (column 15)",
        ),
        (
            '{"model": "m", "messages": [}\n{"model": "m"}\n',
            ":1: not JSON: Expecting value (column 29)",
        ),
        # ... counted from the file's first line, blank ones included.
        (
            '\n\n{\n "model": "m",\n "messages": [ ,]\n}\n',
            ":5: not JSON: Expecting value (column 16)",
        ),
        (
            '\n{"model": "m", "messages": [}\n{"model": "m"}\n',
            ":2: not JSON: Expecting value (column 29)",
        ),
        ("[1, 2]\n", ":1:"),
        ('{"request": {"model": "m", "messages": []}, "started_at": "soon"}', "field started_at"),
        ('{"request": {"model": "m"}}', "field request.messages"),
        ('{"request": [], "started_at": 1}', "field request"),
        ('{"request": {"model": "m", "messages": []}, "workspace": 7}', "field workspace"),
        ("", "empty"),
    ],
)
def test_bad_input_names_file_line_and_field(tmp_path: Path, content: str, where: str) -> None:
    path = write(tmp_path, "bad.jsonl", content)
    with pytest.raises(InputError) as err:
        read_rows(path)
    assert str(path) in str(err.value) and where in str(err.value)


def test_a_missing_file() -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_rows("/nonexistent/trace.jsonl")


def test_replay_orders_by_time_and_defaults_the_first_byte() -> None:
    body = request(system=[block(text(1500, "s"), CC)])
    rows = read_rows_from([{"started_at": 10, "request": body}, {"started_at": 0, "request": body}])
    steps = replay(rows)
    assert steps[1].account is not None and steps[1].account.usage.cache_creation_input_tokens > 0
    assert steps[0].account is not None and steps[0].account.usage.cache_read_input_tokens > 0
    assert steps[1].ready == pytest.approx(DEFAULT_TTFT_MS / 1000)


def read_rows_from(items: list[dict[str, object]]):  # type: ignore[no-untyped-def]
    from cachewise.trace import rows_from

    return rows_from(items)


def conversation(turns: int, gaps: list[float], ttft_ms: float | None = None) -> list[Row]:
    """A sequential client's trace: each request is the previous one, its answer and a question,
    started `gaps[i]` after the previous one started."""
    system = text(1500, "conv")
    messages: list[dict[str, Any]] = []
    rows, at = [], 100.0
    for turn in range(turns):
        if turn:
            messages.append({"role": "assistant", "content": f"answer {turn - 1}"})
            at += gaps[turn - 1]
        messages.append({"role": "user", "content": f"question {turn}"})
        body = request(system=system, messages=[dict(m) for m in messages])
        rows.append(Row(body, started_at=at, ttft_ms=ttft_ms))
    return rows


def costs(rows: list[Row]) -> dict[str, float]:
    names = ["auto", "litellm", "langchain", "pydantic-ai", "oracle"]
    return {o.name: float(o.cost_usd) for o in simulate(rows, names)}


def test_a_conversation_replays_the_same_whatever_the_jitter_of_its_timestamps() -> None:
    # A ledger of a fast sequential client: rows 15-300 ms apart, less than the default first
    # byte. Each request carries the previous answer, so it came after it.
    rng = random.Random(7)
    turns = 8
    spaced = costs(conversation(turns, [10.0] * turns))  # far apart: every turn reads the last
    for _ in range(5):
        jittered = conversation(turns, [rng.uniform(0.0, 0.3) for _ in range(turns)])
        assert costs(jittered) == spaced
    # Shifted by up to 300 ms so that a later turn's timestamp comes first: the same again.
    rows = conversation(turns, [0.015] * turns)
    shifted = [replace(r, started_at=(r.started_at or 0) + rng.uniform(0, 0.3)) for r in rows]
    assert costs(shifted) == spaced


def test_a_known_first_byte_holds_the_next_turn_until_it() -> None:
    rows = conversation(3, [0.05, 0.05], ttft_ms=400)
    times = schedule(rows)
    assert times[1][0] == pytest.approx(times[0][1]) and times[0][1] == pytest.approx(100.4)
    assert times[2][0] == pytest.approx(100.8)
    steps = replay([replace(r, request=r.request | {"cache_control": CC}) for r in rows])
    assert all(s.account and s.account.usage.cache_read_input_tokens for s in steps[1:])


def test_without_a_first_byte_it_arrived_before_the_next_turn_started() -> None:
    rows = conversation(2, [0.02])
    times = schedule(rows)
    assert times[0] == (100.0, pytest.approx(100.02)) and times[1][1] == pytest.approx(100.52)
    # Independent requests keep their timestamps and the default first byte.
    body = request(system=text(1500, "conv"), messages=[{"role": "user", "content": "x"}])
    other = [Row(body, started_at=0.0), Row(body, started_at=0.1)]
    assert schedule(other) == [(0.0, 0.5), (0.1, pytest.approx(0.6))]


def test_the_answer_is_found_whatever_the_markers_and_string_or_block_content() -> None:
    first = request(messages=[{"role": "user", "content": "q"}])
    second = request(
        messages=[
            {"role": "user", "content": [block("q", CC)]},
            {"role": "assistant", "content": "a"},
            {"role": "user", "content": "q2"},
        ]
    )
    rows = [Row(second, started_at=5.0), Row(first, started_at=5.2)]  # swapped by jitter
    assert [r.request for _, _, r in timeline(rows)] == [first, second]
