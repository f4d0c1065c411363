"""Fault injection and rate limits: reproducible, in the API's shapes, honoured by the SDK."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import pytest

from cachewise import InputError
from cachewise.server.faults import parse_faults
from cachewise.server.limits import parse_limits
from cachewise.testing import Emulator
from conftest import CC, block, text

SYSTEM = text(1500, "faults")


def body(q: str = "Hi") -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 20,
        "system": [block(SYSTEM, CC)],
        "messages": [{"role": "user", "content": q}],
    }


def post(emu: Emulator, data: dict[str, Any]) -> httpx2.Response:
    return httpx2.post(
        emu.base_url + "/v1/messages",
        json=data,
        headers={"anthropic-version": "2023-06-01", "x-api-key": "k"},
    )


def test_faults_on_given_request_numbers() -> None:
    with Emulator(faults="429@1,529@2,500@3") as emu:
        first, second, third, fourth = (post(emu, body()) for _ in range(4))
        assert (first.status_code, first.json()["error"]["type"]) == (429, "rate_limit_error")
        assert first.headers["retry-after"] == "1"
        assert (second.status_code, second.json()["error"]["type"]) == (529, "overloaded_error")
        assert (third.status_code, third.json()["error"]["type"]) == (500, "api_error")
        assert fourth.status_code == 200 and "request-id" in fourth.headers


def test_the_sdk_retries_through_429_and_529() -> None:
    with Emulator(faults="429=0@1,529@2") as emu:
        m = emu.client(max_retries=2).messages.create(**body())
        assert m.usage.cache_creation_input_tokens
        assert emu.stats()["by_status"] == {"429": 1, "529": 1, "200": 1}


def test_rate_faults_are_reproducible_with_a_seed() -> None:
    def statuses(seed: int) -> list[int]:
        with Emulator(faults="529:0.3", seed=seed) as emu:
            return [post(emu, body()).status_code for _ in range(20)]

    assert statuses(3) == statuses(3)
    assert 529 in statuses(3) and 200 in statuses(3)


def test_dropped_connection_is_a_connection_error_for_the_sdk() -> None:
    with Emulator(faults="drop@1") as emu, pytest.raises(anthropic.APIConnectionError):
        emu.client(max_retries=0).messages.create(**body())


def test_a_dropped_response_has_begun_so_the_next_call_reads() -> None:
    with Emulator(clock="virtual", ttft_ms=400, prefill_ms_per_1k=25, faults="drop@1") as emu:
        client = emu.client(max_retries=0)
        with pytest.raises(anthropic.APIConnectionError):
            client.messages.create(**body())
        assert client.messages.create(**body()).usage.cache_read_input_tokens


def test_midstream_error_event() -> None:
    with Emulator(faults="midstream@1") as emu:
        client = emu.client(max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as err, client.messages.stream(**body()) as s:
            for _ in s:
                pass
        assert "Overloaded" in str(err.value)


def test_slow_fault_delays_the_first_byte_and_the_entry() -> None:
    with Emulator(clock="real", ttft_ms=0, faults="slow=400@1") as emu:
        client = emu.client()
        import threading
        import time

        done: list[anthropic.types.Message] = []
        t = threading.Thread(target=lambda: done.append(client.messages.create(**body())))
        t.start()
        time.sleep(0.15)
        early = client.messages.create(**body("second"))  # before the slow call's first byte
        t.join()
        assert early.usage.cache_read_input_tokens == 0


def test_rate_limits_send_headers_and_429_with_retry_after() -> None:
    with Emulator(limits="rpm=2,itpm=100000") as emu:
        ok = post(emu, body())
        assert ok.headers["anthropic-ratelimit-requests-limit"] == "2"
        assert ok.headers["anthropic-ratelimit-requests-remaining"] == "1"
        assert ok.headers["anthropic-ratelimit-input-tokens-reset"].endswith("Z")
        post(emu, body())
        limited = post(emu, body())
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        emu.advance(60)
        assert post(emu, body()).status_code == 200


def test_cache_reads_do_not_count_toward_input_limits() -> None:
    """ITPM meters uncached input and cache writes; reads are free on most models."""
    with Emulator(limits="itpm=3000") as emu:
        assert post(emu, body()).status_code == 200  # ~2,000 written
        for i in range(5):
            assert post(emu, body(f"q{i}")).status_code == 200  # reads only


@pytest.mark.parametrize("spec", ["418:0.5", "429", "529:2", "slow@x"])
def test_bad_fault_specs(spec: str) -> None:
    with pytest.raises(InputError):
        parse_faults(spec)


@pytest.mark.parametrize("spec", ["rpm", "rpm=0", "tpm=5"])
def test_bad_limit_specs(spec: str) -> None:
    with pytest.raises(InputError):
        parse_limits(spec)
