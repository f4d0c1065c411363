"""The CLI is a thin shell: each command's JSON matches the library, and errors are one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cachewise import __version__
from cachewise.cli import cost_cmd, main
from cachewise.cli.main import COMMANDS
from conftest import request


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_version() -> None:
    code, out = run("--version")
    assert code == 0 and __version__ in out


def test_every_command_is_listed_with_its_module() -> None:
    """Commands load lazily, from `COMMANDS`: a command missing there would vanish from the CLI."""
    import importlib
    import pkgutil

    import cachewise.cli as cli

    for module in pkgutil.iter_modules(cli.__path__):
        importlib.import_module(f"cachewise.cli.{module.name}")
    registered = {n: c.callback.__module__.rsplit(".", 1)[1] for n, c in main.commands.items()}
    assert registered == COMMANDS


def test_a_lint_loads_no_server_and_no_http_client(tmp_path: Path) -> None:
    """What a pre-commit hook pays for: the lint's own modules, not asyncio's or the servers'."""
    import subprocess
    import sys

    body = tmp_path / "request.json"
    body.write_text(json.dumps(request(system="Short.")))
    script = (
        "import sys\n"
        "from cachewise.cli import main\n"
        f"main(['lint', {str(body)!r}], standalone_mode=False)\n"
        "loaded = [m for m in ('asyncio', 'starlette', 'anthropic', 'aiohttp', 'cachewise.client')"
        " if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_models_json_shape() -> None:
    code, out = run("models", "--format", "json")
    data = json.loads(out)
    assert code == 0
    ids = {m["id"] for m in data["models"]}
    assert {"claude-opus-5", "claude-3-5-sonnet-20240620"} <= ids
    m = next(m for m in data["models"] if m["id"] == "claude-opus-4-5-20251101")
    assert m["aliases"] == ["claude-opus-4-5"] and m["min_cacheable_tokens"] == 4096
    assert m["prices"]["cache_write_1h"] == "10"


def test_models_text_lists_every_model() -> None:
    code, out = run("models")
    assert code == 0 and "claude-haiku-5-5" in out and "unknown" in out


def test_cost_json_seed_example() -> None:
    code, out = run(
        "cost",
        "--model",
        "claude-opus-4-1",
        "--calls",
        "50",
        "--static-tokens",
        "8000",
        "--dynamic-tokens",
        "420",
        "--output-tokens",
        "0",
        "--format",
        "json",
    )
    assert code == 0
    data = json.loads(out)
    s = {x["name"]: x for x in data["scenarios"]}
    assert s["off"]["usage"]["input_tokens"] == 421_000 and s["off"]["cost_usd"] == 6.315
    assert s["5m"]["usage"]["cache_creation_input_tokens"] == 8000
    assert s["5m"]["usage"]["cache_read_input_tokens"] == 392_000
    assert s["5m"]["cost_usd"] == 1.053 and s["1h"]["cost_usd"] == 1.143


def test_cost_gap_example_and_note() -> None:
    code, out = run(
        "cost",
        "--model",
        "claude-opus-4-1",
        "--calls",
        "50",
        "--static-tokens",
        "8000",
        "--dynamic-tokens",
        "420",
        "--gap-seconds",
        "400",
    )
    assert code == 0 and "$7.8150" in out and "$1.1430" in out and "1h TTL keeps it" in out


def test_cost_says_more_when_caching_costs_more_and_same_when_it_changes_nothing() -> None:
    args = ["--dynamic-tokens", "420", "--calls", "50"]
    code, out = run(
        "cost",
        "--model",
        "claude-opus-4-1",
        "--static-tokens",
        "8000",
        *args,
        "--gap-seconds",
        "400",
    )
    assert code == 0 and "24% more" in out and "-24%" not in out and "82% less" in out
    # Below Haiku 4.5's minimum of 4,096 tokens nothing is cached: every row costs the same.
    code, out = run("cost", "--model", "claude-haiku-4-5", "--static-tokens", "2000", *args)
    assert code == 0 and out.count(" same ") == 2


def test_cost_says_when_workers_race() -> None:
    code, out = run(
        "cost",
        "--model",
        "claude-sonnet-4-6",
        "--calls",
        "10",
        "--static-tokens",
        "8000",
        "--dynamic-tokens",
        "10",
        "--workers",
        "3",
        "--format",
        "json",
    )
    assert code == 0
    assert any("The first 3 calls started before" in n for n in json.loads(out)["notes"])


def test_cost_says_how_many_calls_started_together_not_how_many_workers() -> None:
    def notes(*extra: str) -> list[str]:
        code, out = run(
            "cost", "--model", "claude-sonnet-4-6", "--calls", "50", "--static-tokens", "8000",
            "--dynamic-tokens", "10", "--format", "json", *extra,
        )  # fmt: skip
        assert code == 0
        return list(json.loads(out)["notes"])

    raced = notes("--workers", "100000")
    assert any("The first 50 calls started before any response" in n for n in raced)
    assert not any("100000" in n for n in raced)
    # Spaced out, the workers never race: the first response has begun before the second call.
    assert not any("started before" in n for n in notes("--workers", "4", "--gap-seconds", "1"))


def test_unknown_model_is_one_line_without_a_traceback() -> None:
    code, out = run(
        "cost", "--model", "nope", "--calls", "1", "--static-tokens", "1", "--dynamic-tokens", "1"
    )
    assert code == 2 and "Traceback" not in out and "'nope'" in out and "--model" in out


TYPO = "claude-sonet-4-6"


@pytest.mark.parametrize(
    "args",
    [
        ["cost", "--model", TYPO, "--calls", "1", "--static-tokens", "1", "--dynamic-tokens", "1"],
        ["lint", "--model", TYPO, "{good}"],
        ["simulate", "--model", TYPO, "{good}"],
        ["lint", "{typo}"],
        ["explain", "{typo}"],
        ["plan", "{typo1}"],
        ["plan", "{good1}", "--history", "{typo}"],
        ["simulate", "{typo}"],
    ],
    ids=" ".join,
)
def test_an_unknown_model_is_bad_input_with_the_closest_ids(
    tmp_path: Path, args: list[str]
) -> None:
    body = request(system="Stable instructions. " * 20)
    files = {}
    for name, model, times in (
        ("good", "claude-sonnet-4-6", (0, 10)),
        ("good1", "claude-sonnet-4-6", (0,)),
        ("typo", TYPO, (0, 10)),
        ("typo1", TYPO, (0,)),
    ):
        rows = [{"started_at": t, "request": body | {"model": model}} for t in times]
        files[name] = tmp_path / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out = run(*(a.format(**{k: str(v) for k, v in files.items()}) for a in args))
    assert code == 2, out
    assert "did you mean claude-sonnet-4-6" in out  # the nearest ids, not the newest models
    assert "strategy" not in out  # nothing was replayed or printed before the error
    if "--model" in args:
        assert "'--model'" in out and "good.jsonl" not in out  # the flag, not the file
    else:
        assert "typo.jsonl:1" in out or "typo1.jsonl:1" in out


def test_bad_numbers_are_usage_errors() -> None:
    code, _out = run(
        "cost",
        "--model",
        "claude-opus-4-1",
        "--calls",
        "0",
        "--static-tokens",
        "1",
        "--dynamic-tokens",
        "1",
    )
    assert code == 2


def test_cost_refuses_more_calls_than_it_can_run_in_minutes() -> None:
    code, out = run(
        "cost", "--model", "claude-sonnet-4-6", "--calls", "1000001", "--static-tokens", "1",
        "--dynamic-tokens", "1",
    )  # fmt: skip
    assert code == 2 and "--calls" in out and "1000000" in out
    assert "at most 1,000,000" in CliRunner().invoke(main, ["cost", "--help"]).output


def test_cost_shows_progress_on_standard_error_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cost_cmd, "PROGRESS_FROM", 10)  # a bar for a scenario this small
    args = ["--model", "claude-sonnet-4-6", "--calls", "10", "--static-tokens", "8000"]
    result = CliRunner().invoke(
        main,
        ["cost", *args, "--dynamic-tokens", "10", "--format", "json"],
        env={"TTY_COMPATIBLE": "1"},  # rich draws live only on a terminal
    )
    assert result.exit_code == 0 and "100%" in result.stderr and "━" in result.stderr
    assert json.loads(result.stdout)["scenarios"][0]["usage"]["input_tokens"] == 80_100


def test_every_option_and_argument_has_help() -> None:
    def walk(command: click.Command, name: str) -> Iterator[tuple[str, click.Parameter]]:
        for param in command.get_params(click.Context(command)):
            yield name, param
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for sub_name in command.list_commands(ctx):
                sub = command.get_command(ctx, sub_name)
                assert sub is not None, sub_name
                yield from walk(sub, f"{name} {sub_name}")

    missing = [
        f"{name} {'/'.join(param.opts)}"
        for name, param in walk(main, "cachewise")
        if not isinstance(param, click.Option | click.Argument) or not param.help
    ]
    assert missing == []
