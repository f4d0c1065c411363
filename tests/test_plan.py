"""The planner: where breakpoints go, which TTL, and that it beats automatic caching (measured
with the engine), with a plan that always lints clean."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cachewise import Engine, cost, parse_request
from cachewise.lint import lint
from cachewise.plan import plan
from conftest import CC, CC_1H, block, examples, request, text, tool

SYSTEM = text(1500, "system")
TOOLS = [tool(f"tool{i}") for i in range(5)]


def paths(p: Any) -> list[tuple[str, str]]:
    return [(b.path, b.ttl) for b in p.breakpoints]


def run_cost(bodies: list[dict[str, Any]], gap: float = 1.0) -> Decimal:
    """Replay through the engine, one request every `gap` seconds, and price the usage."""
    engine, total = Engine(), Decimal(0)
    for i, body in enumerate(bodies):
        acct = engine.account(parse_request(body), now=i * gap)
        total += cost(acct.usage, model=body["model"]).total_usd
    return total


def test_single_turn_gets_one_breakpoint_at_the_end_of_the_static_prefix() -> None:
    p = plan(request(tools=TOOLS, system=SYSTEM, messages=[{"role": "user", "content": "Q?"}]))
    assert paths(p) == [("/system/0", "5m")]
    assert p.request["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert p.request["messages"] == [{"role": "user", "content": "Q?"}]  # nothing else changed


def test_a_conversation_gets_the_tail_too() -> None:
    body = request(
        system=SYSTEM,
        messages=[
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
        ],
    )
    assert paths(plan(body)) == [("/system/0", "5m"), ("/messages/2/content/0", "5m")]


def test_a_turn_adding_more_than_20_blocks_gets_a_bridge_to_the_previous_write() -> None:
    body = agent_turn(2)
    p = plan(body)
    tail = p.breakpoints[-1].path
    assert any("previous turn's write" in b.why for b in p.breakpoints), p.breakpoints
    assert tail == f"/messages/{len(body['messages']) - 1}/content/11"
    assert len(p.breakpoints) <= 4


def test_client_markers_are_kept_when_valid() -> None:
    body = request(
        system=[block(SYSTEM, CC_1H)],
        messages=[
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
        ],
    )
    p = plan(body)
    assert p.breakpoints[0].why == "yours" and p.breakpoints[0].ttl == "1h"
    assert ("/messages/2/content/0", "5m") in paths(p)


def test_invalid_client_markers_are_replaced() -> None:
    body = request(
        system=[block(SYSTEM, CC), block("x", CC_1H)], messages=[{"role": "user", "content": "Q"}]
    )
    p = plan(body)
    assert any("rejected" in n for n in p.notes)
    assert [f for f in lint(p.request) if f.severity == "error"] == []


def test_below_the_minimum_nothing_is_placed() -> None:
    p = plan(
        request(
            model="claude-haiku-4-5", system="Short.", messages=[{"role": "user", "content": "Q"}]
        )
    )
    assert p.breakpoints == [] and any("minimum" in n for n in p.notes)


def test_a_volatile_system_block_ends_the_stable_prefix() -> None:
    body = request(
        system=[block(SYSTEM), block("Today is 2026-11-22.")],
        messages=[{"role": "user", "content": "Q"}],
    )
    assert paths(plan(body)) == [("/system/0", "5m")]


def test_move_volatile_reorders_system_blocks_when_asked() -> None:
    body = request(
        system=[block("Today is 2026-11-22."), block(SYSTEM)],
        messages=[{"role": "user", "content": "Q"}],
    )
    # Nothing stable comes first: cached whole, which pays off if the date repeats once.
    assert paths(plan(body)) == [("/system/1", "5m")]
    moved = plan(body, move_volatile=True)
    assert moved.request["system"][0]["text"] == SYSTEM and paths(moved) == [("/system/0", "5m")]


def test_sort_tools_and_canonical_json_only_when_asked() -> None:
    t1 = {**tool("zeta"), "input_schema": {"type": "object", "properties": {"b": {}, "a": {}}}}
    body = request(
        tools=[t1, tool("alpha")], system=SYSTEM, messages=[{"role": "user", "content": "Q"}]
    )
    assert [t["name"] for t in plan(body).request["tools"]] == ["zeta", "alpha"]
    p = plan(body, sort_tools=True, canonical_json=True)
    assert [t["name"] for t in p.request["tools"]] == ["alpha", "zeta"]
    assert list(p.request["tools"][1]["input_schema"]["properties"]) == ["a", "b"]


def test_ttl_auto_chooses_1h_when_the_history_comes_every_10_minutes() -> None:
    body = request(system=SYSTEM, messages=[{"role": "user", "content": "Q"}])
    history = [
        {
            "started_at": 600.0 * i,
            "request": {**body, "messages": [{"role": "user", "content": f"Q{i}"}]},
        }
        for i in range(6)
    ]
    assert paths(plan(body, history)) == [("/system/0", "1h")]
    close = [{**h, "started_at": 60.0 * i} for i, h in enumerate(history)]
    assert paths(plan(body, close)) == [("/system/0", "5m")]
    assert paths(plan(body, ttl="1h")) == [("/system/0", "1h")]


def test_history_finds_a_shared_document_in_the_first_user_turn() -> None:
    doc = text(1500, "document")

    def q(i: int) -> dict[str, Any]:
        return request(
            system="Be brief.",
            messages=[{"role": "user", "content": [block(doc), block(f"Question {i}")]}],
        )

    p = plan(q(9), [q(i) for i in range(3)])
    assert ("/messages/0/content/0", "5m") in paths(p)


# -- measured against automatic caching -------------------------------------------------------


def agent_turn(k: int) -> dict[str, Any]:
    """An agent loop after k steps, each adding 12 tool calls and 12 big results (24 blocks)."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Refactor the module."}]
    for step in range(k):
        calls = [
            {
                "type": "tool_use",
                "id": f"s{step}c{i}",
                "name": "read_file",
                "input": {"path": f"src/f{step}_{i}.py"},
            }
            for i in range(12)
        ]
        results = [
            {
                "type": "tool_result",
                "tool_use_id": f"s{step}c{i}",
                "content": text(120, f"file{step}-{i}"),
            }
            for i in range(12)
        ]
        messages += [{"role": "assistant", "content": calls}, {"role": "user", "content": results}]
    return request(tools=TOOLS, system=SYSTEM, messages=messages)


def test_plan_beats_automatic_caching_on_an_agent_loop_with_big_tool_results() -> None:
    turns = [agent_turn(k) for k in range(1, 7)]
    automatic = run_cost([{**t, "cache_control": CC} for t in turns])
    planned = run_cost([plan(t).request for t in turns])
    assert planned < automatic * Decimal("0.8"), (planned, automatic)


def test_plan_beats_automatic_caching_on_a_batch_with_a_shared_system_prompt() -> None:
    batch = [
        request(
            tools=TOOLS,
            system=SYSTEM,
            messages=[{"role": "user", "content": f"Question {i}: " + text(30, str(i))}],
        )
        for i in range(20)
    ]
    automatic = run_cost([{**b, "cache_control": CC} for b in batch])
    planned = run_cost([plan(b).request for b in batch])
    assert planned < automatic * Decimal("0.5"), (planned, automatic)


# -- a plan always lints clean ------------------------------------------------------------------

marker = st.sampled_from([None, CC, CC_1H])


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    n_tools = draw(st.integers(0, 3))
    tools = [tool(f"t{i}", draw(marker)) for i in range(n_tools)]
    system = [
        block(draw(st.sampled_from([SYSTEM, "Short.", "Today is 2026-11-22."])), draw(marker))
        for _ in range(draw(st.integers(0, 3)))
    ]
    messages: list[dict[str, Any]] = []
    for m in range(draw(st.integers(1, 5))):
        role = "user" if m % 2 == 0 else "assistant"
        kinds = st.sampled_from(
            ["text", "big", "thinking"] if role == "assistant" else ["text", "big"]
        )
        content = []
        for _ in range(draw(st.integers(1, 30))):
            kind = draw(kinds)
            if kind == "thinking":
                content.append({"type": "thinking", "thinking": "hmm", "signature": "s"})
            else:
                content.append(block(SYSTEM if kind == "big" else "x", draw(marker)))
        messages.append({"role": role, "content": content})
    if messages[-1]["role"] == "assistant":
        messages.append({"role": "user", "content": "next"})
    body = request(
        model=draw(st.sampled_from(["claude-sonnet-4-6", "claude-opus-4-6", "claude-opus-5"])),
        tools=tools or None,
        system=system or None,
        messages=messages,
    )
    if draw(st.booleans()):
        body["cache_control"] = draw(st.sampled_from([CC, CC_1H]))
    return body


@settings(max_examples=examples(60), deadline=None)
@given(requests())
def test_a_plan_always_lints_without_errors(body: dict[str, Any]) -> None:
    p = plan(body)
    assert [f.message for f in lint(p.request) if f.severity == "error"] == []
    assert len(p.breakpoints) <= 4
    # The plan's own parse of its request (what the proxy and wrap send) is a parse of it.
    fresh = parse_request(p.request)
    assert p.prompt is not None and p.prompt.body is p.request
    for field in ("positions", "total_tokens", "automatic", "problems", "whitespace_text"):
        assert getattr(p.prompt, field) == getattr(fresh, field), field


def test_a_large_block_before_a_short_question_is_taken_as_the_shared_document() -> None:
    body = request(
        system="Be brief.",
        messages=[
            {
                "role": "user",
                "content": [block(text(1500, "doc")), block("What does section 2 say?")],
            }
        ],
    )
    assert paths(plan(body)) == [("/messages/0/content/0", "5m")]


def test_the_gap_to_now_and_other_prefixes_gaps_inform_the_ttl() -> None:
    def tenant(k: int, q: str) -> dict[str, Any]:
        return request(system=text(1500, f"tenant{k}"), messages=[{"role": "user", "content": q}])

    # This tenant was seen once, 500 s ago: a 5m entry would have expired by now.
    history = [{"started_at": 0.0, "request": tenant(1, "a")}]
    assert paths(plan(tenant(1, "b"), history, now=500.0)) == [("/system/0", "1h")]
    assert paths(plan(tenant(1, "b"), history, now=100.0)) == [("/system/0", "5m")]
    # A new tenant: the other tenants' rhythm (gaps of 600 s) decides.
    others = [{"started_at": 600.0 * i, "request": tenant(2, f"q{i}")} for i in range(4)]
    assert paths(plan(tenant(3, "first"), others, now=2000.0)) == [("/system/0", "1h")]


def test_a_prefix_the_client_marks_5m_keeps_5m_through_its_first_short_pause() -> None:
    def turn(i: int, cc: dict[str, Any] | None) -> dict[str, Any]:
        system = [block(SYSTEM, cc)]
        return request(system=system, messages=[{"role": "user", "content": f"Q{i}"}])

    # The history has the client's markers; the request is planned without them (as the
    # simulator's cachewise strategy and the proxy plan it).
    times = [0.0, 20.0, 45.0]
    for cc, first in ((CC, "5m"), (None, "1h"), (CC_1H, "1h")):
        history = [{"started_at": t, "request": turn(i, cc)} for i, t in enumerate(times)]
        # One pause of 455 s: the client's 5m marker, if it has one, is followed.
        assert paths(plan(turn(3, None), history, now=500.0)) == [("/system/0", first)]
        # A pause past what one keep-alive bridges, or a second pause: 1h either way.
        assert paths(plan(turn(3, None), history, now=45.0 + 700)) == [("/system/0", "1h")]
        again = [*history, {"started_at": 500.0, "request": turn(3, cc)}]
        assert paths(plan(turn(4, None), again, now=1000.0)) == [("/system/0", "1h")]


def test_pauses_longer_than_hourly_keep_alives_bridge_are_rewritten_5m() -> None:
    # Daily uses: nine hourly keep-alives (read at 0.1x) bridge ten hours, not a day.
    def ask(i: int) -> dict[str, Any]:
        return request(system=SYSTEM, messages=[{"role": "user", "content": f"Q{i}"}])

    daily = [{"started_at": 86_400.0 * i, "request": ask(i)} for i in range(3)]
    assert paths(plan(ask(3), daily, now=86_400.0 * 3)) == [("/system/0", "5m")]
    hourly = [{"started_at": 3_700.0 * i, "request": ask(i)} for i in range(3)]
    assert paths(plan(ask(3), hourly, now=3_700.0 * 3)) == [("/system/0", "1h")]
