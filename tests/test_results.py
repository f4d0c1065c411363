"""The results file: never the input, never a file that is not ours, one run at a time, and a
line a full disk refused is kept, not dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cachewise import InputError
from cachewise.results import ResultsFile, completed_ids


def line(custom_id: str) -> dict[str, object]:
    return {"custom_id": custom_id, "result": {"type": "succeeded", "message": {"id": "m"}}}


def test_the_requests_file_is_refused_as_results(tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    original = '{"custom_id": "a", "params": {}}\n{"custom_id": "b", "params": {}}'
    requests.write_text(original)
    with pytest.raises(InputError, match="is also the requests file"):
        ResultsFile(requests, inputs=[requests])
    with pytest.raises(InputError, match="is also the requests file"):
        ResultsFile(tmp_path / "." / "requests.jsonl", inputs=[str(requests)])
    assert requests.read_text() == original


@pytest.mark.parametrize(
    "content",
    [
        "my notes\nabout things",  # a text file without a last newline
        '{"custom_id": "a", "params": {}}\n',  # a requests file
        '{"custom_id": "a", "result": {"type": "succeeded"}}\n{"oops": 1}\n',
    ],
)
def test_a_file_that_is_not_a_results_file_is_left_untouched(tmp_path: Path, content: str) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text(content)
    with pytest.raises(InputError, match="not a cachewise results file"):
        ResultsFile(out)
    assert out.read_text() == content


def test_a_cut_last_result_is_repaired_and_a_whole_one_kept(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps(line("a")) + "\n" + '{"custom_id":"b","resu')
    results = ResultsFile(out)
    assert results.done == {"a"}
    results.write(line("b"))
    assert results.close() is None
    assert completed_ids(out) == {"a", "b"}
    out.write_text(out.read_text() + json.dumps(line("c")))  # whole, but no newline
    again = ResultsFile(out)
    again.write(line("d"))
    again.close()
    assert [json.loads(x)["custom_id"] for x in out.read_text().splitlines()] == [
        "a",
        "b",
        "c",
        "d",
    ]


def test_one_run_at_a_time_and_the_second_is_told_who_holds_it(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    first = ResultsFile(out)
    with pytest.raises(InputError, match=r"another cachewise run \(pid \d+ on "):
        ResultsFile(out)
    first.close()
    assert not (tmp_path / "out.jsonl.lock").exists()
    ResultsFile(out).close()  # free again


def test_results_a_full_disk_refused_are_kept_elsewhere(full_disk: Path) -> None:
    out = full_disk / "out.jsonl"
    results = ResultsFile(out)
    big = {**line("x"), "pad": "y" * 20_000}
    for n in range(30):  # ~600 KB: more than the 256 KB the disk has
        results.write({**big, "custom_id": f"r{n}"})
    assert results.error is not None
    note = results.close()
    assert note is not None and "append them to" in note
    kept = completed_ids(out)
    rescue = Path(note.split(" they are in ")[1].split(":")[0])
    rescued = completed_ids(rescue)
    assert kept | rescued == {f"r{n}" for n in range(30)} and not kept & rescued
    rescue.unlink()
    out.read_text().encode()  # no half line left behind
    assert all(x.endswith("}") for x in out.read_text().splitlines())
