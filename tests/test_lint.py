"""Every lint rule, from the reference's examples and the peers' bug reports (peers.md §4)."""

from __future__ import annotations

from typing import Any

import pytest

from cachewise.lint import RULES, lint, to_sarif
from cachewise.request import parse_request
from conftest import CC, CC_1H, block, request, text, tool

SYSTEM = text(1500, "system")
TOOLS = [tool(f"tool{i}") for i in range(9)]


def rules(findings: list[Any]) -> list[str]:
    return [f.rule for f in findings]


def clean(question: str = "What changed in the last release?") -> dict[str, Any]:
    return request(
        tools=[*TOOLS, tool("last", CC)],
        system=[block(SYSTEM, CC)],
        messages=[{"role": "user", "content": question}],
    )


def test_a_clean_request_has_no_finding() -> None:
    """Stable tools with a marker, a static system with a marker, a unique question after."""
    assert lint(clean()) == []


def test_a_clean_batch_has_no_finding() -> None:
    assert lint([clean(f"Question {i}?") for i in range(5)]) == []


def test_cw001_a_marker_on_every_block() -> None:
    """llama_index#20854 (Found 29), langchain4j#3051 (one per tool)."""
    tools = [tool(f"t{i}", CC) for i in range(6)]
    [f] = [f for f in lint(request(tools=tools)) if f.rule == "CW001"]
    assert f.severity == "error" and "Found 6." in f.message and f.path == "/tools/4/cache_control"


def test_cw002_one_hour_after_a_bare_marker() -> None:
    """claude-code#37842, headroom#2939: a proxy adds 1h after the client's bare 5m."""
    body = request(
        system=[block(SYSTEM, CC)], messages=[{"role": "user", "content": [block("q", CC_1H)]}]
    )
    [f] = lint(body)
    assert (f.rule, f.severity) == ("CW002", "error")
    assert f.path == "/messages/0/content/0/cache_control/ttl"


@pytest.mark.parametrize(
    ("blocks", "path"),
    [
        (
            [
                {"type": "thinking", "thinking": "t", "signature": "s", "cache_control": CC},
                block("a"),
            ],
            "/messages/1/content/0",
        ),
        ([block("a"), block("", CC)], "/messages/1/content/1"),
    ],
)
def test_cw003_markers_where_the_api_rejects_them(blocks: list[Any], path: str) -> None:
    """vercel/ai#9330 (thinking), claude-code#54013 (empty text)."""
    body = request(
        model="claude-opus-4-6",
        messages=[
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": blocks},
            {"role": "user", "content": "next"},
        ],
    )
    found = [f for f in lint(body) if f.rule == "CW003"]
    assert found and found[0].path.startswith(path)


def test_cw004_automatic_with_four_explicit_markers() -> None:
    body = request(
        system=[block(SYSTEM, CC), block("b", CC), block("c", CC), block("d", CC)],
        messages=[{"role": "user", "content": "q"}],
        cache_control=CC,
    )
    assert "CW004" in rules(lint(body))


def test_cw005_prewarm_with_streaming() -> None:
    body = request(system=[block(SYSTEM, CC)], max_tokens=0, stream=True)
    assert "CW005" in rules(lint(body))


def test_cw101_below_the_minimum() -> None:
    """langgraph-supervisor#59: Haiku's higher minimum, silently not cached."""
    body = request(model="claude-haiku-4-5", system=[block(SYSTEM, CC)])
    [f] = lint(body)
    assert f.rule == "CW101" and "4,096" in f.message


def test_cw101_is_not_raised_for_a_small_breakpoint_behind_a_large_one() -> None:
    body = request(tools=[tool("a", CC)], system=[block(SYSTEM, CC)])
    assert "CW101" not in rules(lint(body))


@pytest.mark.parametrize(
    "volatile",
    [
        "Current time: 2026-11-22T05:00:00Z.",
        "Session id: 7c9e6679-7425-40de-944b-e07fc1f66afd",
        "request_id=req_01HX3Y6K9Z2ABCDEF",
        "cch=9f86d081884c7d659a2feaa0c55ad015",  # sglang#36877: a random per-request token
    ],
)
def test_cw102_volatile_content_before_the_breakpoint(volatile: str) -> None:
    body = request(system=[block(SYSTEM), block(volatile), block("Rules.", CC)])
    [f] = lint(body)
    assert f.rule == "CW102" and f.path == "/system/1/text"


def test_cw102_is_silenced_when_a_sequence_shows_the_block_is_stable() -> None:
    body = request(
        system=[block("Released on 2024-03-01. " + SYSTEM, CC)],
        messages=[{"role": "user", "content": "q"}],
    )
    assert "CW102" in rules(lint(body))
    assert "CW102" not in rules(lint([body, body]))


def test_cw103_the_last_breakpoint_on_the_unique_question() -> None:
    """The automatic-caching trap, explicit: every request writes and none reads."""
    seq = [
        request(
            system=[block(SYSTEM)],
            messages=[{"role": "user", "content": [block(f"Question {i}", CC)]}],
        )
        for i in range(3)
    ]
    found = [f for f in lint(seq) if f.rule == "CW103"]
    assert [f.request_index for f in found] == [0, 1]


def test_cw104_a_turn_adds_more_than_20_blocks() -> None:
    """vscode#315505: many parallel tool results push the last write out of the window."""
    history = [{"role": "user", "content": [block(SYSTEM, CC)]}]
    turn1 = request(messages=history)
    calls = [
        {"type": "tool_use", "id": f"t{i}", "name": "read", "input": {"n": i}} for i in range(12)
    ]
    results = [
        {"type": "tool_result", "tool_use_id": f"t{i}", "content": f"r{i}"} for i in range(12)
    ]
    results[-1] = {**results[-1], "cache_control": CC}
    turn2 = request(
        messages=[
            {"role": "user", "content": [block(SYSTEM)]},
            {"role": "assistant", "content": calls},
            {"role": "user", "content": results},
        ]
    )
    [f] = [f for f in lint([turn1, turn2]) if f.rule == "CW104"]
    assert f.request_index == 1 and f.path == "/messages/2/content/11"
    assert "/messages/0/content/0" in f.suggestion


def test_cw105_no_breakpoint_at_all() -> None:
    [f] = lint(request(system=SYSTEM))
    assert (f.rule, f.severity) == ("CW105", "info")


def test_cw106_tools_reordered() -> None:
    """An MCP reconnect returns the tools in another order: a full miss."""
    a = request(tools=[tool("alpha"), tool("beta")], system=[block(SYSTEM, CC)])
    b = request(tools=[tool("beta"), tool("alpha")], system=[block(SYSTEM, CC)])
    [f] = [f for f in lint([a, b]) if f.rule == "CW106"]
    assert "reordered" in f.message and f.request_index == 1


def test_cw106_tools_added() -> None:
    a = request(tools=[tool("alpha")], system=[block(SYSTEM, CC)])
    b = request(tools=[tool("alpha"), tool("gamma")], system=[block(SYSTEM, CC)])
    [f] = [f for f in lint([a, b]) if f.rule == "CW106"]
    assert "added ['gamma']" in f.message


def test_cw107_the_same_tool_use_input_with_another_key_order() -> None:
    """dspy#10216, swift-ai-sdk#39: map order changes after a round trip."""

    def body(inp: dict[str, Any]) -> dict[str, Any]:
        return request(
            system=[block(SYSTEM)],
            messages=[
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": inp}],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": "ok",
                            "cache_control": CC,
                        }
                    ],
                },
            ],
        )

    [f] = [f for f in lint([body({"a": 1, "b": 2}), body({"b": 2, "a": 1})]) if f.rule == "CW107"]
    assert f.path == "/messages/1/content/0/input"


def test_cw108_an_earlier_block_changed() -> None:
    """claude-code#43657: history re-serialized on resume."""

    def body(first: str) -> dict[str, Any]:
        return request(
            system=[block(SYSTEM)],
            messages=[
                {"role": "user", "content": first},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [block("next", CC)]},
            ],
        )

    [f] = [f for f in lint([body("hello"), body("hello ")]) if f.rule == "CW108"]
    assert f.path == "/messages/0/content/0"


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"tool_choice": {"type": "any"}}, "tool_choice"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, "thinking"),
        ({"speed": "fast", "model": "claude-opus-5"}, "speed"),  # a model with fast mode
    ],
)
def test_cw109_a_parameter_changed(change: dict[str, Any], name: str) -> None:
    base = request(
        model=change.get("model", "claude-sonnet-4-6"),
        tools=[tool("a")],
        system=[block(SYSTEM, CC)],
        messages=[{"role": "user", "content": "q"}],
    )
    [f] = [f for f in lint([base, {**base, **change}]) if f.rule == "CW109"]
    assert name in f.message


def test_cw109_model_changed() -> None:
    base = clean()
    [f] = [f for f in lint([base, {**base, "model": "claude-opus-4-8"}]) if f.rule == "CW109"]
    assert f.path == "/model"


def test_cw110_expired_with_the_break_even_advice() -> None:
    rows = [{"started_at": t, "request": clean()} for t in (0, 420)]
    [f] = [f for f in lint(rows) if f.rule == "CW110"]
    assert "1h" in f.suggestion and f.request_index == 1


def test_cw111_a_fan_out_before_the_first_byte() -> None:
    """OpenHands#2972: parallel siblings each write the same prefix."""
    rows = [{"started_at": 0.05 * i, "ttft_ms": 800, "request": clean(f"Q{i}")} for i in range(4)]
    found = [f for f in lint(rows) if f.rule == "CW111"]
    assert [f.request_index for f in found] == [1, 2, 3]


def test_select_and_ignore_by_prefix() -> None:
    body = request(
        model="claude-haiku-4-5", system=[block("Now: 2026-11-22T05:00:00Z " + SYSTEM, CC)]
    )
    assert set(rules(lint(body))) == {"CW101", "CW102"}
    assert rules(lint(body, select=["CW101"])) == ["CW101"]
    assert rules(lint(body, ignore=["CW10"])) == []


def test_a_parsed_prompt_is_linted_once_and_as_its_body_is() -> None:
    """A server lints the same Prompt call after call: its findings are kept with it, and
    `select`, `ignore` and `model` still apply."""
    body = request(
        model="claude-haiku-4-5", system=[block("Now: 2026-11-22T05:00:00Z " + SYSTEM, CC)]
    )
    prompt = parse_request(body)
    first = lint(prompt)
    assert first == lint(body) and rules(first) == ["CW101", "CW102"]
    assert lint(prompt) == first and lint(prompt) is not first  # a list the caller may change
    assert rules(lint(prompt, select=["CW101"])) == ["CW101"]
    assert rules(lint(prompt, ignore=["CW10"])) == []
    assert rules(lint(prompt, model="claude-sonnet-4-6")) == rules(
        lint(body, model="claude-sonnet-4-6")
    )


def test_model_override() -> None:
    body = request(system=[block(SYSTEM, CC)])
    assert lint(body) == []
    assert rules(lint(body, model="claude-haiku-4-5")) == ["CW101"]


def test_sarif_is_2_1_0_with_every_rule() -> None:
    findings = lint(request(system=SYSTEM))
    sarif = to_sarif(findings)
    assert sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    assert {r["id"] for r in run["tool"]["driver"]["rules"]} == set(RULES)
    assert run["results"][0]["ruleId"] == "CW105" and run["results"][0]["level"] == "note"
