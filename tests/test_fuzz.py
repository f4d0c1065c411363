"""Fuzzing, kept: whatever body arrives, every face answers with the API's own 4xx, a clean
located error, or success (the contract in tests/contract.py); and every crash the fuzzer ever
found stays fixed (tests/fuzz_corpus).

The hypothesis profile is `fuzz-ci` (seconds; the default) or `fuzz-long`
(CACHEWISE_FUZZ=long: a campaign of minutes). bench/fuzz.py runs the same grammar and contract
over hundreds of thousands of bodies.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachewise.cli import main
from contract import check_app, check_core, emulator_client
from fuzzing import bodies, wire

settings.register_profile(
    "fuzz-ci", max_examples=60, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.register_profile(
    "fuzz-long", max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck)
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


@FUZZ
@given(st.lists(bodies(), min_size=1, max_size=3))
def test_a_file_of_any_lines_is_findings_or_one_located_error(lines: list[Any]) -> None:
    """`cachewise lint` on a JSONL file of whatever bodies: findings (exit 0 or 1), or a usage
    error (exit 2) that names the file and line, never a traceback."""
    runner = CliRunner()
    with runner.isolated_filesystem():
        Path("calls.jsonl").write_bytes(b"\n".join(wire(line) for line in lines) + b"\n")
        result = runner.invoke(main, ["lint", "calls.jsonl", "--format", "json"])
    assert result.exit_code in (0, 1, 2), result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    if result.exit_code == 2:
        assert "calls.jsonl:" in result.output, result.output


def _corpus() -> list[Path]:
    return sorted(CORPUS.glob("*.json"))


@pytest.mark.parametrize("case", _corpus(), ids=lambda p: p.stem)
def test_a_crash_once_found_stays_fixed(case: Path) -> None:
    """Each file holds one minimized input that broke the contract, and why."""
    entry = json.loads(case.read_text())
    body = entry["body"]
    assert check_core(body)
    assert asyncio.run(_emulate(body, stream=True))
    assert asyncio.run(_emulate(body, stream=False))
