"""Reading requests and traces: every malformed input names its file, line and field."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from cachewise import InputError
from cachewise.trace import DEFAULT_TTFT_MS, read_rows, replay
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
