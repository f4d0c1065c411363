"""Fuzzing, kept: whatever body arrives, every face answers with the API's own 4xx, a clean
located error, or success (the contract in tests/contract.py); and every crash the fuzzer ever
found stays fixed (tests/fuzz_corpus).

The hypothesis profile is `fuzz-ci` (seconds; the default) or `fuzz-long`
(CACHEWISE_FUZZ=long: a campaign of minutes). bench/fuzz.py runs the same grammar and contract
over hundreds of thousands of bodies. docs/reliability.md says what was tried and what held.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachewise.cli import main
from cachewise.errors import InputError
from cachewise.server.faults import parse_faults
from cachewise.server.limits import parse_limits
from conftest import examples
from contract import check_app, check_core, check_route, emulator_client
from fuzzing import Pick, bodies, nested, wire

# Fast by default (100 examples a test, seconds in all); CACHEWISE_FUZZ=long runs a campaign of
# 5,000 a test (minutes), and so does `make properties` (CACHEWISE_PROPERTY_SCALE=20: 4,000).
_ANY_HEALTH = list(HealthCheck)  # a body may be slow to count or large: that is the point
settings.register_profile(
    "fuzz-ci", max_examples=examples(200), deadline=None, suppress_health_check=_ANY_HEALTH
)
settings.register_profile(
    "fuzz-long", max_examples=5000, deadline=None, suppress_health_check=_ANY_HEALTH
)
FUZZ = settings.get_profile(
    "fuzz-long" if os.environ.get("CACHEWISE_FUZZ") == "long" else "fuzz-ci"
)
CORPUS = Path(__file__).parent / "fuzz_corpus"


@FUZZ
@given(bodies())
def test_parse_engine_lint_and_plan_keep_the_contract(body: Any) -> None:
    assert check_core(body)


async def _emulate(body: Any, stream: bool) -> list[str]:
    app, client = emulator_client()
    async with client:
        return await check_app(app, client, body, stream)


@FUZZ
@given(bodies(), st.booleans())
def test_the_emulator_keeps_the_contract_on_every_route(body: Any, stream: bool) -> None:
    """Messages (JSON and SSE, twice, the second over what the first wrote), count_tokens
    against the parser's own verdict, and a batch; a 4xx leaves the cache as it was."""
    assert asyncio.run(_emulate(body, stream))


ODD_TEXT = st.text(max_size=12) | st.sampled_from(["²", "٣", "-1", "0", "1e3", "%00", "..", "a/b"])
ROUTES = [
    ("GET", "/v1/models?limit={0}&after_id={1}"),
    ("GET", "/v1/models?before_id={0}&limit={1}"),
    ("GET", "/v1/models/{0}"),
    ("GET", "/v1/messages/batches/{0}"),
    ("GET", "/v1/messages/batches/{0}/{1}"),
    ("POST", "/v1/messages/batches/{0}/cancel"),
    ("DELETE", "/v1/messages/batches/{0}"),
    ("POST", "/_emulator/clock"),
    ("GET", "/_emulator/{0}"),
]


@st.composite
def odd_json(draw: st.DrawFn) -> Any:
    """A value where a number or an object is expected, for the control API."""
    return {"advance_seconds": Pick(draw).odd()} if draw(st.booleans()) else Pick(draw).odd()


@FUZZ
@given(st.sampled_from(ROUTES), ODD_TEXT, ODD_TEXT, odd_json())
def test_every_other_route_answers_or_refuses_in_the_api_shape(
    route: tuple[str, str], first: str, second: str, body: Any
) -> None:
    method, template = route
    url = template.format(quote(first, safe=""), quote(second, safe=""))
    sent = body if route[1] == "/_emulator/clock" else None

    async def call() -> str:
        _, client = emulator_client()
        async with client:
            return await check_route(client, method, url, sent)

    assert asyncio.run(call())


@FUZZ
@given(st.text(alphabet="0123456789.:@+=,-² abdimnoprstwx", max_size=24))
def test_a_fault_or_limit_spec_is_parsed_or_refused_by_field(spec: str) -> None:
    for parse in (parse_faults, parse_limits):
        try:
            parse(spec)
        except InputError as exc:
            assert exc.field in ("--faults", "--limits")


@FUZZ
@given(st.lists(bodies(), min_size=1, max_size=3))
def test_a_file_of_any_lines_is_findings_or_one_located_error(lines: list[Any]) -> None:
    """`cachewise lint` on a JSONL file of whatever bodies: findings (exit 0 or 1), or a usage
    error (exit 2) that names the file and line, never a traceback."""
    _lint_file(lines)


def _lint_file(lines: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "calls.jsonl"
        path.write_bytes(b"\n".join(wire(line) for line in lines) + b"\n")
        result = CliRunner().invoke(main, ["lint", str(path), "--format", "json"])
    assert result.exit_code in (0, 1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    if result.exit_code == 2:
        assert "calls.jsonl:" in result.output, result.output  # file:line


def _simulate_file(lines: list[Any]) -> None:
    """Every strategy of `simulate` over the lines, sent once each: a table or a located error."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "calls.jsonl"
        path.write_bytes(b"\n".join(wire(line) for line in lines) + b"\n")
        result = CliRunner().invoke(main, ["simulate", str(path)])
    assert result.exit_code in (0, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output


ODD_ARGS = ["", "0", "-1", "3", "1e308", "nan", "inf", "-inf", "x", "CW1", ",,", "CW001,cw9"]
ODD_ARGS += ["claude-sonnet-4-6", "sonnet", "claude-nope", "\udc80", "5m", "1h", "json", "FILE"]
COMMANDS: dict[str, tuple[list[str], list[str]]] = {
    "lint": (["FILE"], ["--model", "--select", "--ignore", "--format"]),
    "plan": (["FILE"], ["--history", "--ttl", "--output", "--format"]),
    "explain": (["FILE", "FILE"], ["--format"]),
    "simulate": (["FILE"], ["--strategy", "--model", "--format"]),
    "cost": (
        [],
        [
            "--model",
            "--calls",
            "--static-tokens",
            "--dynamic-tokens",
            "--output-tokens",
            "--workers",
            "--gap-seconds",
            "--format",
        ],
    ),
}


@FUZZ
@given(
    st.sampled_from(sorted(COMMANDS)),
    st.lists(st.tuples(st.integers(0, 9), st.sampled_from(ODD_ARGS)), max_size=5),
    bodies(),
)
def test_any_arguments_are_a_result_or_a_usage_error(
    command: str, options: list[tuple[int, str]], body: Any
) -> None:
    """Each command with options from its own list given odd values (`nan`, `inf`, negative,
    empty, a lone surrogate as a non-UTF-8 argv byte decodes to), over a file of a fuzzed body:
    a result or a one-line error, exit 0, 1 or 2, never a traceback or a hang."""
    positional, flags = COMMANDS[command]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "calls.jsonl"
        path.write_bytes(wire(body) + b"\n")
        args = [command, *(str(path) for _ in positional)]
        for which, value in options:
            args += [flags[which % len(flags)], str(path) if value == "FILE" else value]
        if command == "cost":  # its required options first; a fuzzed one given twice wins
            args[1:1] = ["--model", "claude-sonnet-4-6", "--calls", "3"]
            args[1:1] = ["--static-tokens", "2000", "--dynamic-tokens", "10"]
        result = CliRunner().invoke(main, args)
    assert result.exit_code in (0, 1, 2), (args, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args,
        result.output,
    )


def _corpus() -> list[Path]:
    return sorted(CORPUS.glob("*.json"))


def _entry(case: Path) -> dict[str, Any]:
    """A corpus file: `about` (what broke), `found` (where), and the input: a `body` (with a
    `nest` too deep for a JSON file spliced in at `key`, `first` among the keys or last), CLI
    `args` and the `exit` they must end in, or a URL to `get` from the emulator."""
    entry: dict[str, Any] = json.loads(case.read_text())
    nest = entry.get("nest")
    if nest:
        deep = {nest["key"]: nested(nest["depth"], "deep")}
        body = entry["body"]
        entry["body"] = {**deep, **body} if nest.get("first") else {**body, **deep}
    return entry


@pytest.mark.parametrize("case", _corpus(), ids=lambda p: p.stem)
def test_a_crash_once_found_stays_fixed(case: Path) -> None:
    """Each file holds one minimized input that once broke the contract; every face gets it."""
    entry = _entry(case)
    if "get" in entry:

        async def call() -> str:
            _, client = emulator_client()
            async with client:
                return await check_route(client, "GET", entry["get"])

        assert asyncio.run(call())
        return
    if "args" in entry:
        result = CliRunner().invoke(main, entry["args"])
        assert result.exit_code == entry["exit"], result.output
        assert isinstance(result.exception, SystemExit | None), result.output
        return
    body = entry["body"]
    assert check_core(body)
    assert asyncio.run(_emulate(body, stream=True))
    assert asyncio.run(_emulate(body, stream=False))
    _lint_file([body])
    _simulate_file([body])
