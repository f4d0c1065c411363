"""Message Batches on the emulator, through the official SDK."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import pytest

from cachewise.testing import Emulator
from conftest import CC_1H, block, text

SYSTEM = text(1500, "batch-system")


def params(question: str, **kw: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 50,
        "system": [block(SYSTEM, CC_1H)],
        "messages": [{"role": "user", "content": question}],
        **kw,
    }


def finish(client: anthropic.Anthropic, batch_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while client.messages.batches.retrieve(batch_id).processing_status != "ended":
        assert time.monotonic() < deadline, "batch did not end"
        time.sleep(0.02)
    return {r.custom_id: r.result for r in client.messages.batches.results(batch_id)}


@pytest.fixture
def emu() -> Any:
    with Emulator() as e:
        yield e


def test_batch_results_with_batch_pricing(emu: Emulator) -> None:
    client = emu.client()
    batch = client.messages.batches.create(
        requests=[{"custom_id": f"q{i}", "params": params(f"Question {i}")} for i in range(10)]
    )
    assert batch.processing_status == "in_progress" and batch.request_counts.processing == 10
    results = finish(client, batch.id)
    assert set(results) == {f"q{i}" for i in range(10)}
    assert all(
        r.type == "succeeded" and r.message.usage.service_tier == "batch" for r in results.values()
    )
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.request_counts.succeeded == 10 and ended.results_url


def test_within_a_batch_the_first_wave_writes_and_later_waves_read(emu: Emulator) -> None:
    """Best effort: a wave of concurrent requests over a cold prefix all pay the write."""
    client = emu.client()
    batch = client.messages.batches.create(
        requests=[{"custom_id": f"q{i}", "params": params(f"Question {i}")} for i in range(12)]
    )
    results = finish(client, batch.id)
    usage = [results[f"q{i}"].message.usage for i in range(12)]
    wave = emu.config.batch_concurrency
    assert all((u.cache_creation_input_tokens or 0) > 0 for u in usage[:wave])
    assert all((u.cache_read_input_tokens or 0) > 0 for u in usage[wave:])


def test_a_batch_moves_no_time_on_the_virtual_clock(emu: Emulator) -> None:
    """Its waves begin one after another, so the second reads the first without the clock
    moving: time moves only when told."""
    client = emu.client()
    batch = client.messages.batches.create(
        requests=[{"custom_id": f"q{i}", "params": params(f"Question {i}")} for i in range(8)]
    )
    results = finish(client, batch.id)
    assert (results["q7"].message.usage.cache_read_input_tokens or 0) > 0
    assert emu.now() == 0


def test_a_batch_does_not_read_what_the_messages_api_wrote(emu: Emulator) -> None:
    client = emu.client()
    client.messages.create(**params("warm it"))
    batch = client.messages.batches.create(requests=[{"custom_id": "a", "params": params("x")}])
    [result] = finish(client, batch.id).values()
    assert result.message.usage.cache_read_input_tokens == 0


def test_priming_batch_then_the_rest_all_read(emu: Emulator) -> None:
    """The documented pattern: one request with the shared prefix and a 1h block, then the rest."""
    client = emu.client()
    prime = client.messages.batches.create(requests=[{"custom_id": "prime", "params": params("p")}])
    finish(client, prime.id)
    rest = client.messages.batches.create(
        requests=[{"custom_id": f"q{i}", "params": params(f"Question {i}")} for i in range(8)]
    )
    assert all(
        (r.message.usage.cache_read_input_tokens or 0) > 0 for r in finish(client, rest.id).values()
    )


def test_invalid_requests_in_a_batch_are_errored_not_fatal(emu: Emulator) -> None:
    client = emu.client()
    batch = client.messages.batches.create(
        requests=[
            {"custom_id": "ok", "params": params("fine")},
            {"custom_id": "prewarm", "params": params("warm", max_tokens=0)},
            {"custom_id": "unknown", "params": {**params("x"), "model": "claude-nope"}},
        ]
    )
    results = finish(client, batch.id)
    assert results["ok"].type == "succeeded"
    assert results["prewarm"].type == "errored" and results["unknown"].type == "errored"


def test_bad_batch_bodies_are_400s(emu: Emulator) -> None:
    client = emu.client()
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.create(requests=[])
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.create(
            requests=[
                {"custom_id": "a", "params": params("x")},
                {"custom_id": "a", "params": params("y")},
            ]
        )
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.create(requests=[{"custom_id": "no spaces", "params": params("x")}])


def test_batches_are_scoped_to_the_workspace(emu: Emulator) -> None:
    batch = emu.client(api_key="sk-a").messages.batches.create(
        requests=[{"custom_id": "a", "params": params("x")}]
    )
    with pytest.raises(anthropic.NotFoundError):
        emu.client(api_key="sk-b").messages.batches.retrieve(batch.id)
    assert [b.id for b in emu.client(api_key="sk-a").messages.batches.list()] == [batch.id]


def test_cancel_and_delete(emu: Emulator) -> None:
    client = emu.client()
    batch = client.messages.batches.create(
        requests=[{"custom_id": f"q{i}", "params": params(f"Q{i}")} for i in range(40)]
    )
    canceled = client.messages.batches.cancel(batch.id)
    assert canceled.processing_status in ("canceling", "ended")
    results = finish(client, batch.id)
    assert len(results) == 40
    assert {r.type for r in results.values()} <= {"succeeded", "canceled"}
    deleted = client.messages.batches.delete(batch.id)
    assert deleted.type == "message_batch_deleted"
