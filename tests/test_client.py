"""`cachewise.wrap` with the official SDK against the emulator, calls overlapping for real."""

from __future__ import annotations

import asyncio
import threading
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import pytest

from cachewise import cost, wrap
from cachewise.cost import uncached_cost
from cachewise.errors import CachewiseWarning, LintError
from cachewise.ledger import Ledger
from cachewise.report import report
from cachewise.testing import Emulator
from conftest import CC, block, text

SYSTEM = text(1500, "wrapped")
MODEL = "claude-sonnet-4-6"


def ask(client: Any, q: str, **kw: Any) -> Any:
    kw.setdefault("system", SYSTEM)
    kw.setdefault("model", MODEL)
    return client.messages.create(max_tokens=20, messages=[{"role": "user", "content": q}], **kw)


@pytest.fixture
def emu() -> Any:
    with Emulator(clock="real", ttft_ms=300) as e:
        yield e


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    with Ledger(tmp_path / "ledger.db") as led:
        yield led


def fan_out(client: Any, n: int = 8) -> list[Any]:
    results: list[Any] = []
    barrier = threading.Barrier(n)

    def worker(i: int) -> None:
        barrier.wait()
        results.append(ask(client, f"Question {i}"))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def writes_reads(messages: list[Any]) -> tuple[int, int]:
    return (
        sum(bool(m.usage.cache_creation_input_tokens) for m in messages),
        sum(bool(m.usage.cache_read_input_tokens) for m in messages),
    )


def test_eight_threads_on_one_cold_prefix_write_once(emu: Emulator, ledger: Ledger) -> None:
    results = fan_out(wrap(emu.client(), ledger=ledger))
    assert writes_reads(results) == (1, 7)
    assert isinstance(results[0], anthropic.types.Message)
    assert len(ledger.calls()) == 8


def test_every_returned_message_has_its_request_id(emu: Emulator, ledger: Ledger) -> None:
    # The scout runs as a stream under the hood; its caller still asked for `create`.
    results = fan_out(wrap(emu.client(), ledger=ledger), n=4)
    ids = {m._request_id for m in results}
    assert None not in ids and len(ids) == 4
    assert {c.request_id for c in ledger.calls()} == ids

    async def main() -> Any:
        client = wrap(emu.async_client(), ledger=ledger)
        try:
            return await client.messages.create(
                model=MODEL,
                max_tokens=20,
                system=SYSTEM + " async",
                messages=[{"role": "user", "content": "Q"}],
            )
        finally:
            await client.close()

    assert asyncio.run(main())._request_id is not None


def test_without_the_gate_every_cold_call_writes(emu: Emulator, ledger: Ledger) -> None:
    assert writes_reads(fan_out(wrap(emu.client(), ledger=ledger, gate="off"))) == (8, 0)


def test_eight_asyncio_tasks_on_one_cold_prefix_write_once(emu: Emulator, ledger: Ledger) -> None:
    async def main() -> list[Any]:
        client = wrap(emu.async_client(), ledger=ledger)
        calls = [
            client.messages.create(
                model=MODEL,
                max_tokens=20,
                system=SYSTEM,
                messages=[{"role": "user", "content": f"Q{i}"}],
            )
            for i in range(8)
        ]
        try:
            return list(await asyncio.gather(*calls))
        finally:
            await client.close()

    assert writes_reads(asyncio.run(main())) == (1, 7)


def test_streaming_calls_are_recorded(emu: Emulator, ledger: Ledger) -> None:
    client = wrap(emu.client(), ledger=ledger)
    kw: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 20,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    with client.messages.stream(**kw) as stream:
        assert isinstance(stream, anthropic.lib.streaming.MessageStream)
        text_out = "".join(stream.text_stream)
        final = stream.get_final_message()
    events = list(client.messages.create(stream=True, **kw))
    assert text_out and events[0].type == "message_start"
    first, second = ledger.calls()
    assert first.usage.ephemeral_5m_input_tokens == final.usage.cache_creation_input_tokens > 0
    assert first.usage.output_tokens == final.usage.output_tokens and first.first_byte_at
    assert second.usage.cache_read_input_tokens == first.usage.ephemeral_5m_input_tokens


def test_auto_plan_makes_the_second_unmarked_call_read(emu: Emulator, ledger: Ledger) -> None:
    client = wrap(emu.client(), ledger=ledger)
    first, second = ask(client, "one"), ask(client, "two")
    assert first.usage.cache_creation_input_tokens and second.usage.cache_read_input_tokens
    write, read = ledger.calls()
    assert [write.cause, read.cause] == ["cold_start", "hit"]
    # The read names the prefix the first call wrote: what the report matches writes to reads by.
    assert read.read_hash is not None and read.read_hash in write.prefix_hashes


def test_an_agent_loop_sending_the_sdks_own_content_back_is_planned(
    emu: Emulator, ledger: Ledger
) -> None:
    # The usual loop appends `reply.content` (SDK objects, not dicts) to the history it sends.
    client = wrap(emu.client(), ledger=ledger)
    messages: list[dict[str, Any]] = []
    usages = []
    for question in ["First question", "Second question", "Third question"]:
        messages.append({"role": "user", "content": question})
        reply = client.messages.create(model=MODEL, max_tokens=20, system=SYSTEM, messages=messages)
        messages.append({"role": "assistant", "content": reply.content})
        usages.append(reply.usage)
    assert all(u.cache_read_input_tokens > 0 for u in usages[1:])
    assert usages[2].cache_read_input_tokens > usages[1].cache_read_input_tokens  # the history
    assert all(call.breakpoints for call in ledger.calls())


def test_plan_off_leaves_requests_alone(emu: Emulator, ledger: Ledger) -> None:
    client = wrap(emu.client(), ledger=ledger, plan="off")
    ask(client, "one")
    assert ask(client, "two").usage.cache_read_input_tokens == 0
    assert ledger.calls()[1].cause == "no_breakpoint"


def test_lint_error_stops_a_bad_request_before_it_is_sent(emu: Emulator, ledger: Ledger) -> None:
    client = wrap(emu.client(), ledger=ledger, lint="error")
    bad = [block(f"b{i}", CC) for i in range(5)]
    with pytest.raises(LintError, match="CW001"):
        client.messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": bad}]
        )
    assert emu.stats()["requests"] == 0


def test_lint_warn_warns_and_sends(emu: Emulator, ledger: Ledger) -> None:
    client = wrap(emu.client(), ledger=ledger)
    with pytest.warns(CachewiseWarning, match="CW102"):
        ask(client, "q", system=[block("Now: 2026-11-22T05:00:00Z " + SYSTEM, CC)])
    assert emu.stats()["requests"] == 1


def test_failed_calls_are_recorded_and_raised(ledger: Ledger) -> None:
    with Emulator(faults="529@1") as emu:
        client = wrap(emu.client(max_retries=0), ledger=ledger)
        with pytest.raises(anthropic.APIStatusError):
            ask(client, "q")
        ask(client, "again")
    failed, ok = ledger.calls()
    assert (failed.status, failed.http_status, failed.error_type) == (
        "error",
        529,
        "overloaded_error",
    )
    assert ok.status == "ok"


def test_report_totals_equal_the_responses_exactly(emu: Emulator, ledger: Ledger) -> None:
    client = wrap(emu.client(), ledger=ledger, tags={"job": "test"})
    responses = [*fan_out(client, 4), ask(client, "late"), ask(client, "later")]
    assert report(ledger)["calls"] == 0  # rehearsals on the emulator are not money spent
    result = report(ledger, include_emulated=True)
    usage = result["usage"]
    for field in (
        "input_tokens",
        "cache_read_input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
    ):
        assert usage[field] == sum(getattr(m.usage, field) or 0 for m in responses), field
    expected = sum((cost(m.usage, model=MODEL).total_usd for m in responses), Decimal(0))
    without = sum((uncached_cost(m.usage, model=MODEL).total_usd for m in responses), Decimal(0))
    assert sum((c.cost_usd for c in ledger.calls()), Decimal(0)) == expected
    assert result["cost_usd"] == float(expected)
    assert result["cost_without_cache_usd"] == float(without)
    assert result["calls"] == 6 and result["savings_pct"] > 0
    assert report(ledger, by="tag", include_emulated=True)["groups"][0]["group"] == "job=test"


def test_the_api_key_and_prompts_are_never_on_disk(emu: Emulator, tmp_path: Path) -> None:
    secret = "sk-ant-api03-THIS-KEY-MUST-NOT-LEAK"
    marker = "PROMPT-TEXT-THAT-MUST-NOT-BE-STORED"
    with Ledger(tmp_path / "l.db") as ledger:
        ask(wrap(emu.client(api_key=secret), ledger=ledger), marker)
    found = [
        p
        for p in tmp_path.rglob("*")
        if p.is_file() and (secret.encode() in p.read_bytes() or marker.encode() in p.read_bytes())
    ]
    assert found == []
    with Ledger(tmp_path / "with-prompts.db") as ledger:
        ask(wrap(emu.client(api_key=secret), ledger=ledger, store_prompts=True), marker)
    data = b"".join(p.read_bytes() for p in tmp_path.glob("with-prompts.db*"))
    assert marker.encode() in data and secret.encode() not in data


def test_everything_else_passes_through(emu: Emulator, ledger: Ledger) -> None:
    client = wrap(emu.client(), ledger=ledger)
    assert (
        client.messages.count_tokens(
            model=MODEL, messages=[{"role": "user", "content": "hi"}]
        ).input_tokens
        > 0
    )
    assert any(m.id == MODEL for m in client.models.list(limit=100))
    assert ask(client.with_options(max_retries=0), "q").usage.output_tokens > 0
    assert len(ledger.calls()) == 1


def test_a_request_cachewise_cannot_parse_is_sent_as_it_is(emu: Emulator, ledger: Ledger) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(anthropic.NotFoundError):
            ask(wrap(emu.client(max_retries=0), ledger=ledger), "q", model="claude-unknown")
    assert ledger.calls()[0].http_status == 404


def test_async_streams_are_recorded(emu: Emulator, ledger: Ledger) -> None:
    async def main() -> tuple[Any, list[Any]]:
        client = wrap(emu.async_client(), ledger=ledger)
        kw: dict[str, Any] = {
            "model": MODEL,
            "max_tokens": 20,
            "system": SYSTEM,
            "messages": [{"role": "user", "content": "Hi"}],
        }
        try:
            async with client.messages.stream(**kw) as stream:
                final = await stream.get_final_message()
            events = [e async for e in await client.messages.create(stream=True, **kw)]
            return final, events
        finally:
            await client.close()

    final, events = asyncio.run(main())
    assert events[-1].type == "message_stop"
    first, second = ledger.calls()
    assert first.usage.ephemeral_5m_input_tokens == final.usage.cache_creation_input_tokens > 0
    assert second.usage.cache_read_input_tokens == first.usage.ephemeral_5m_input_tokens
