"""The emulator, driven by the official SDK over loopback: every engine rule, end to end."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anthropic
import httpx2
import pytest

from cachewise import get_model
from cachewise.testing import Emulator
from conftest import CC, CC_1H, block, text, tool

SYSTEM = text(1500, "system")  # above Sonnet 4.6's 1,024 minimum
MODEL = "claude-sonnet-4-6"


def ask(client: anthropic.Anthropic, question: str = "Hi", **kw: Any) -> anthropic.types.Message:
    kw.setdefault("system", [block(SYSTEM, CC)])
    kw.setdefault("model", MODEL)
    kw.setdefault("max_tokens", 200)
    return client.messages.create(messages=[{"role": "user", "content": question}], **kw)


def written(m: anthropic.types.Message) -> int:
    return m.usage.cache_creation_input_tokens or 0


def read(m: anthropic.types.Message) -> int:
    return m.usage.cache_read_input_tokens or 0


@pytest.fixture
def emu() -> Any:
    with Emulator() as e:
        yield e


def test_write_then_read(emu: Emulator) -> None:
    client = emu.client()
    first, second = ask(client), ask(client, "Another question")
    assert written(first) > 0 and read(first) == 0
    assert read(second) == written(first) and written(second) == 0
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == written(first)


def test_total_equals_count_tokens(emu: Emulator) -> None:
    client = emu.client()
    for _ in range(2):
        m = ask(client, "What is in the context?")
        counted = client.messages.count_tokens(
            model=MODEL,
            system=[block(SYSTEM, CC)],
            messages=[{"role": "user", "content": "What is in the context?"}],
        )
        assert m.usage.input_tokens + read(m) + written(m) == counted.input_tokens


def test_message_shape_and_headers(emu: Emulator) -> None:
    raw = emu.client().messages.with_raw_response.create(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Hello"}]
    )
    m = raw.parse()
    assert m.type == "message" and m.role == "assistant" and m.stop_reason == "end_turn"
    assert m.content[0].type == "text" and m.usage.output_tokens > 0
    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["anthropic-workspace-id"].startswith("wrkspc_")
    assert m.usage.service_tier == "standard"


def test_fast_mode_is_reported_in_usage_and_priced_by_cost(emu: Emulator) -> None:
    from cachewise import cost

    client = emu.client()
    fast = ask(client, model="claude-opus-5", extra_body={"speed": "fast"})
    ignored = ask(client, model="claude-opus-4-6", extra_body={"speed": "fast"})
    standard = ask(client, model="claude-opus-5", system=[block(SYSTEM)])
    assert (fast.usage.speed, ignored.usage.speed, standard.usage.speed) == (
        "fast",
        "standard",
        "standard",
    )
    assert (
        cost(fast.usage, model="claude-opus-5").input_usd
        == 2 * cost(fast.usage, model="claude-opus-5", speed="standard").input_usd
    )


def test_responses_are_deterministic(emu: Emulator) -> None:
    client = emu.client()
    assert ask(client, "same").content == ask(client, "same").content


def test_forced_tool_choice_returns_tool_use(emu: Emulator) -> None:
    t = {
        **tool("lookup"),
        "input_schema": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    }
    m = emu.client().messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[t],
        tool_choice={"type": "tool", "name": "lookup"},
        messages=[{"role": "user", "content": "find it"}],
    )
    assert m.stop_reason == "tool_use"
    assert m.content[0].type == "tool_use" and m.content[0].input == {"query": "example"}


def test_more_than_four_breakpoints_is_a_400_with_the_api_text(emu: Emulator) -> None:
    content = [block(f"part {i}", CC) for i in range(5)]
    with pytest.raises(anthropic.BadRequestError) as err:
        emu.client().messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": content}]
        )
    assert err.value.status_code == 400
    assert err.value.body["error"]["message"] == (  # type: ignore[index]
        "A maximum of 4 blocks with cache_control may be provided. Found 5."
    )
    assert err.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_one_hour_after_five_minutes_is_a_400(emu: Emulator) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        ask(emu.client(), system=[block(SYSTEM, CC), block("more", CC_1H)])
    assert "must not come after a ttl='5m'" in err.value.message


def test_below_minimum_is_silently_uncached(emu: Emulator) -> None:
    client = emu.client()
    for _ in range(2):
        m = ask(client, system=[block("Short system prompt.", CC)])
        assert written(m) == 0 and read(m) == 0


def test_cache_is_per_model(emu: Emulator) -> None:
    client = emu.client()
    ask(client)
    assert read(ask(client, model="claude-opus-4-8")) == 0


def test_cache_is_per_workspace(emu: Emulator) -> None:
    ask(emu.client(api_key="sk-team-a"))
    assert read(ask(emu.client(api_key="sk-team-b"))) == 0
    assert read(ask(emu.client(api_key="sk-team-a"))) > 0


def test_workspaces_file_maps_keys_to_one_workspace() -> None:
    with Emulator(workspaces={"sk-a": "wrkspc_shared", "sk-b": "wrkspc_shared"}) as emu:
        ask(emu.client(api_key="sk-a"))
        assert read(ask(emu.client(api_key="sk-b"))) > 0


def test_x_api_key_and_bearer_are_one_workspace(emu: Emulator) -> None:
    body = {
        "model": MODEL,
        "max_tokens": 5,
        "system": [block(SYSTEM, CC)],
        "messages": [{"role": "user", "content": "Hi"}],
    }
    v = {"anthropic-version": "2023-06-01"}
    first = httpx2.post(emu.base_url + "/v1/messages", json=body, headers={**v, "x-api-key": "k1"})
    second = httpx2.post(
        emu.base_url + "/v1/messages", json=body, headers={**v, "authorization": "Bearer k1"}
    )
    assert first.json()["usage"]["cache_creation_input_tokens"] > 0
    assert second.json()["usage"]["cache_read_input_tokens"] > 0


def test_the_beta_endpoint_and_the_plain_one_share_one_cache(emu: Emulator) -> None:
    # Recorded: ruby_llm's call through `?beta=true` read a prefix another test had written.
    body = {
        "model": MODEL,
        "max_tokens": 5,
        "system": [block(SYSTEM, CC)],
        "messages": [{"role": "user", "content": "Hi"}],
    }
    h = {"anthropic-version": "2023-06-01", "x-api-key": "k1"}
    first = httpx2.post(emu.base_url + "/v1/messages?beta=true", json=body, headers=h)
    second = httpx2.post(emu.base_url + "/v1/messages", json=body, headers=h)
    written = first.json()["usage"]["cache_creation_input_tokens"]
    assert written > 0 and second.json()["usage"]["cache_read_input_tokens"] == written


def test_tool_order_invalidates_everything(emu: Emulator) -> None:
    client = emu.client()
    a, b = tool("alpha"), tool("beta")
    ask(client, tools=[a, {**b, "cache_control": CC}])
    assert read(ask(client, tools=[b, {**a, "cache_control": CC}])) == 0


def test_tool_choice_keeps_the_system_level_and_drops_the_messages_level(emu: Emulator) -> None:
    client = emu.client()
    tools = [tool("alpha")]
    history = [block(text(400, "history"), CC)]

    def call(**kw: Any) -> anthropic.types.Message:
        return client.messages.create(
            model=MODEL,
            max_tokens=50,
            tools=tools,
            system=[block(SYSTEM, CC)],
            messages=[{"role": "user", "content": history}],
            **kw,
        )

    first = call()
    forced = call(tool_choice={"type": "any"})
    assert 0 < read(forced) < written(first)
    forced_extra = get_model(MODEL).tool_frame("any")[2]  # rendered after the last block
    assert written(forced) == written(first) - read(forced)
    assert forced.usage.input_tokens == first.usage.input_tokens + forced_extra


def test_ttl_expiry_and_refresh_on_read(emu: Emulator) -> None:
    client = emu.client()
    ask(client)
    emu.advance(290)
    assert read(ask(client)) > 0  # refreshes the entry
    emu.advance(290)
    assert read(ask(client)) > 0
    emu.advance(301)
    assert read(ask(client)) == 0


def test_one_hour_survives_a_30_minute_gap(emu: Emulator) -> None:
    client = emu.client()
    first = ask(client, system=[block(SYSTEM, CC_1H)])
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == written(first)  # type: ignore[union-attr]
    emu.advance(1800)
    assert read(ask(client, system=[block(SYSTEM, CC_1H)])) == written(first)


def test_mixed_ttl_billing(emu: Emulator) -> None:
    client = emu.client()
    sys1 = block(SYSTEM, CC_1H)
    first = ask(client, system=[sys1])
    m = client.messages.create(
        model=MODEL,
        max_tokens=50,
        system=[sys1, block(text(300, "docs"), CC_1H)],
        messages=[{"role": "user", "content": [block(text(200, "turn"), CC)]}],
    )
    split = m.usage.cache_creation
    assert split is not None and read(m) == written(first)
    assert split.ephemeral_1h_input_tokens > 0 and split.ephemeral_5m_input_tokens > 0


def test_lookback_worked_example_10_15_35(emu: Emulator) -> None:
    client = emu.client()

    def turn(n: int, marks: set[int]) -> anthropic.types.Message:
        blocks = [
            block(SYSTEM if i == 1 else f"step {i}", CC if i in marks else None)
            for i in range(1, n + 1)
        ]
        return client.messages.create(
            model=MODEL, max_tokens=20, messages=[{"role": "user", "content": blocks}]
        )

    t1 = turn(10, {10})
    t2 = turn(15, {15})
    assert read(t2) == written(t1)
    assert read(turn(35, {35})) == 0
    emu.reset()  # again, now with the docs' fix: a second breakpoint at 15
    turn(10, {10})
    turn(15, {15})
    assert read(turn(35, {15, 35})) == read(t2) + written(t2)


def test_automatic_caching(emu: Emulator) -> None:
    client = emu.client()
    history = [{"role": "user", "content": SYSTEM}]
    first = client.messages.create(
        model=MODEL, max_tokens=50, messages=history, cache_control={"type": "ephemeral"}
    )
    history += [{"role": "assistant", "content": "Noted."}, {"role": "user", "content": "Next?"}]
    second = client.messages.create(
        model=MODEL, max_tokens=50, messages=history, cache_control={"type": "ephemeral"}
    )
    assert read(second) == written(first) and written(second) > 0


def test_prewarm_with_max_tokens_zero(emu: Emulator) -> None:
    client = emu.client()
    warm = ask(client, max_tokens=0)
    assert warm.content == [] and warm.stop_reason == "max_tokens"
    assert warm.usage.output_tokens == 0 and written(warm) > 0
    assert read(ask(client)) == written(warm)
    with pytest.raises(anthropic.BadRequestError):
        ask(client, max_tokens=0, tool_choice={"type": "any"}, tools=[tool("a")])


def test_streaming_usage(emu: Emulator) -> None:
    client = emu.client()
    kw: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 100,
        "system": [block(SYSTEM, CC)],
        "messages": [{"role": "user", "content": "Hi"}],
    }
    with client.messages.stream(**kw) as stream:
        events = list(stream)
        final = stream.get_final_message()
    start = next(e for e in events if e.type == "message_start")
    assert start.message.usage.cache_creation.ephemeral_5m_input_tokens == written(final)  # type: ignore[union-attr]
    assert written(final) > 0 and final.usage.output_tokens > 0
    assert final.content[0].text == client.messages.create(**kw).content[0].text  # type: ignore[union-attr]


def test_async_client(emu: Emulator) -> None:
    async def main() -> tuple[int, int]:
        async with emu.async_client() as client:
            kw: dict[str, Any] = {
                "model": MODEL,
                "max_tokens": 20,
                "system": [block(SYSTEM, CC)],
                "messages": [{"role": "user", "content": "Hi"}],
            }
            first = await client.messages.create(**kw)
            second = await client.messages.create(**kw)
            return written(first), read(second)

    w, r = asyncio.run(main())
    assert w > 0 and r == w


def test_concurrent_cold_calls_each_write() -> None:
    """With a real clock and a time to first byte, 8 simultaneous cold calls all pay the write."""
    with Emulator(clock="real", ttft_ms=300) as emu:
        client = emu.client()
        results: list[anthropic.types.Message] = []
        barrier = threading.Barrier(8)

        def worker() -> None:
            barrier.wait()
            results.append(ask(client))

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [written(m) > 0 for m in results] == [True] * 8
        assert read(ask(client)) > 0


@pytest.mark.parametrize("stream", [False, True])
def test_on_the_virtual_clock_a_sequential_call_reads_what_the_first_wrote(stream: bool) -> None:
    """Time stands still, so the first byte never comes by the clock: the entry turns readable
    when the response begins, and the next call, sent after it arrived, reads it."""
    with Emulator(clock="virtual", ttft_ms=400, prefill_ms_per_1k=25) as emu:
        client = emu.client()
        if stream:
            with client.messages.stream(
                model=MODEL,
                max_tokens=20,
                system=[block(SYSTEM, CC)],
                messages=[{"role": "user", "content": "Hi"}],
            ) as s:
                first = s.get_final_message()
        else:
            first = ask(client)
        second = ask(client)
        assert written(first) > 0 and read(second) == written(first) and written(second) == 0
        assert emu.now() == 0


def test_on_the_virtual_clock_concurrent_cold_calls_each_pay_the_write() -> None:
    with Emulator(clock="virtual", ttft_ms=400, prefill_ms_per_1k=25) as emu:

        async def calls() -> list[anthropic.types.Message]:
            async with emu.async_client() as client:
                kw: dict[str, Any] = {
                    "model": MODEL,
                    "max_tokens": 20,
                    "system": [block(SYSTEM, CC)],
                    "messages": [{"role": "user", "content": "Hi"}],
                }
                return list(await asyncio.gather(*(client.messages.create(**kw) for _ in range(6))))

        assert [written(m) > 0 and read(m) == 0 for m in asyncio.run(calls())] == [True] * 6
        assert read(ask(emu.client())) > 0
        [entry] = emu.cache()
        assert entry["writes"] == 6 and emu.now() == 0


def test_a_call_after_the_first_byte_reads() -> None:
    with Emulator(clock="real", ttft_ms=100) as emu:
        client = emu.client()
        with client.messages.stream(
            model=MODEL,
            max_tokens=20,
            system=[block(SYSTEM, CC)],
            messages=[{"role": "user", "content": "Hi"}],
        ) as stream:
            next(iter(stream))  # message_start: the response has begun
            assert read(ask(client)) > 0


def test_no_key_is_a_401(emu: Emulator) -> None:
    r = httpx2.post(
        emu.base_url + "/v1/messages",
        headers={"anthropic-version": "2023-06-01"},
        json={"model": MODEL, "max_tokens": 5, "messages": []},
    )
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("content", "status", "error_type"),
    [
        (b"{not json", 400, "invalid_request_error"),
        (b'{"model": "claude-sonnet-4-6", "messages": []}', 400, "invalid_request_error"),
        (
            b'{"model": "claude-sonnet-4-6", "max_tokens": "ten", "messages": []}',
            400,
            "invalid_request_error",
        ),
        (
            b'{"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": [{"role": "x"}]}',
            400,
            "invalid_request_error",
        ),
        (b'{"model": "claude-unknown", "max_tokens": 5, "messages": []}', 404, "not_found_error"),
        (b"[1, 2]", 400, "invalid_request_error"),
    ],
)
def test_malformed_bodies_get_api_shaped_errors(
    emu: Emulator, content: bytes, status: int, error_type: str
) -> None:
    r = httpx2.post(
        emu.base_url + "/v1/messages",
        content=content,
        headers={
            "anthropic-version": "2023-06-01",
            "x-api-key": "k",
            "content-type": "application/json",
        },
    )
    assert r.status_code == status
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert body["error"]["message"]


def test_oversized_body_is_a_413() -> None:
    with Emulator(max_body_bytes=1000) as emu:
        r = httpx2.post(
            emu.base_url + "/v1/messages",
            content=b"x" * 2000,
            headers={"anthropic-version": "2023-06-01", "x-api-key": "k"},
        )
        assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"


def test_missing_version_header_is_a_400(emu: Emulator) -> None:
    r = httpx2.post(
        emu.base_url + "/v1/messages",
        headers={"x-api-key": "k"},
        json={"model": MODEL, "max_tokens": 5, "messages": []},
    )
    assert r.status_code == 400 and "anthropic-version" in r.json()["error"]["message"]


def test_sampling_parameters_are_rejected_on_the_2026_10_21_version(emu: Emulator) -> None:
    """SDK 2.x no longer sends them; older clients (version 2023-06-01) still may."""
    body = {
        "model": MODEL,
        "max_tokens": 5,
        "temperature": 0.0,
        "messages": [{"role": "user", "content": "x"}],
    }
    for version, status in (("2026-10-21", 400), ("2023-06-01", 200)):
        r = httpx2.post(
            emu.base_url + "/v1/messages",
            json=body,
            headers={"anthropic-version": version, "x-api-key": "k"},
        )
        assert r.status_code == status


def test_retired_models_replay_with_a_warning_header(emu: Emulator) -> None:
    raw = emu.client().messages.with_raw_response.create(
        model="claude-3-5-sonnet-20240620",
        max_tokens=5,
        messages=[{"role": "user", "content": "x"}],
    )
    assert raw.parse().model == "claude-3-5-sonnet-20240620"
    assert "retired" in raw.headers["x-cachewise-warning"]


def test_unknown_model_is_a_404(emu: Emulator) -> None:
    with pytest.raises(anthropic.NotFoundError):
        ask(emu.client(), model="claude-imaginary-9")


def test_models_endpoints(emu: Emulator) -> None:
    client = emu.client()
    ids = [m.id for m in client.models.list(limit=5)]
    assert "claude-opus-5" in ids and "claude-3-5-sonnet-20240620" in ids
    assert client.models.retrieve("claude-opus-4-5").id == "claude-opus-4-5-20251101"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("nope")


def test_control_api(emu: Emulator) -> None:
    ask(emu.client())
    cache = httpx2.get(emu.base_url + "/_emulator/cache").json()
    [entry] = cache["entries"]
    assert entry["ttl"] == "5m" and entry["readable"] and entry["tokens"] > 1024
    assert (
        httpx2.post(emu.base_url + "/_emulator/clock", json={"advance_seconds": 400}).json()["now"]
        == 400
    )
    assert httpx2.get(emu.base_url + "/_emulator/cache").json()["entries"] == []
    stats = httpx2.get(emu.base_url + "/_emulator/stats").json()
    assert stats["requests"] == 1 and stats["usage"]["cache_creation_input_tokens"] > 0
    httpx2.post(emu.base_url + "/_emulator/reset", json={})
    assert httpx2.get(emu.base_url + "/_emulator/stats").json()["requests"] == 0
    bad = httpx2.post(emu.base_url + "/_emulator/clock", json={"advance_seconds": "soon"})
    assert bad.status_code == 400


def test_unknown_paths_answer_in_the_api_shape(emu: Emulator) -> None:
    r = httpx2.get(emu.base_url + "/v1/nothing-here")
    assert r.status_code == 404 and r.json()["type"] == "error"


@pytest.mark.parametrize(
    "value", ["NaN", "Infinity", "-Infinity", "1e308", "1" + "0" * 400, "315360001", "-1"]
)
def test_the_clock_refuses_non_finite_and_absurd_advances(emu: Emulator, value: str) -> None:
    """Such a clock would make every later request write and never read, and every control
    answer a 500, until a reset; so it is refused and the emulator goes on as before."""
    client = emu.client()
    ask(client)
    r = httpx2.post(
        emu.base_url + "/_emulator/clock",
        content=f'{{"advance_seconds": {value}}}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert emu.now() == 0
    assert read(ask(client)) > 0
    assert httpx2.get(emu.base_url + "/_emulator/stats").json()["requests"] == 2
    assert len(httpx2.get(emu.base_url + "/_emulator/cache").json()["entries"]) == 1
    ten_years = httpx2.post(emu.base_url + "/_emulator/clock", json={"advance_seconds": 315360000})
    assert ten_years.json()["now"] == 315360000
