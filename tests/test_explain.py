"""Every cause `explain` names, from the reference's miss causes (anthropic-caching.md §12)."""

from __future__ import annotations

from typing import Any

import pytest

from cachewise import InputError
from cachewise.explain import CAUSES, explain, explain_trace
from conftest import CC, block, request, text, tool

SYSTEM = text(1500, "system")


def base(question: str = "Q", **kw: Any) -> dict[str, Any]:
    kw.setdefault("system", [block(SYSTEM, CC)])
    return request(messages=[{"role": "user", "content": question}], **kw)


def test_hit() -> None:
    e = explain(base("one"), base("two"))
    assert e.cause == "hit" and e.missed_tokens == 0 and e.read_tokens == e.expected_read_tokens > 0


def test_cold_start() -> None:
    """The first request with this prefix in its workspace: the write is expected."""
    [e] = explain_trace(
        [
            {"workspace": "a", "request": base(system=[block(text(1500, "x"), CC)])},
            {"workspace": "b", "request": base()},
        ]
    )
    assert e.cause == "cold_start" and e.missed_tokens == 0


def test_model_changed_even_when_the_content_is_identical() -> None:
    [e] = explain_trace([{"request": base(model="claude-opus-4-8")}, {"request": base()}])
    assert e.cause == "model_changed"


def test_prefix_changed_names_the_level_path_and_shows_the_diff() -> None:
    """A dynamic system prompt (DIAG system_changed): a date in the system prompt."""
    before = base(system=[block("Today is 2026-11-21. " + SYSTEM, CC)])
    after = base(system=[block("Today is 2026-11-22. " + SYSTEM, CC)])
    e = explain(before, after)
    assert (e.cause, e.level, e.path) == ("prefix_changed", "system", "/system/0")
    assert e.diff is not None and "11-21" in e.diff["before"] and "11-22" in e.diff["after"]
    assert e.missed_tokens > 1000 and "after the last breakpoint" in e.suggestion


def test_prefix_changed_in_tools_suggests_sorting() -> None:
    a = base(tools=[tool("alpha"), tool("beta")])
    b = base(tools=[tool("beta"), tool("alpha")])
    e = explain(a, b)
    assert (e.cause, e.level) == ("prefix_changed", "tools") and "sort" in e.suggestion


def test_ttl_expired() -> None:
    """SWE-agent#1482: a gap over 5 minutes from the start of the previous request."""
    [e] = explain_trace(
        [{"started_at": 0, "request": base()}, {"started_at": 420, "request": base()}]
    )
    assert e.cause == "ttl_expired" and "1h" in e.suggestion and e.missed_tokens > 0


def test_ttl_expired_after_a_day() -> None:
    """A replay keeps every entry it wrote (the live engine forgets them an hour after expiry),
    so a nightly job's miss is still named."""
    [e] = explain_trace(
        [{"started_at": 0, "request": base()}, {"started_at": 86_400, "request": base()}]
    )
    assert e.cause == "ttl_expired"


def test_below_minimum() -> None:
    small = base(model="claude-haiku-4-5")
    e = explain(small, small)
    assert e.cause == "below_minimum" and "4,096" in e.detail


def test_lookback_exceeded() -> None:
    """The 10 -> 15 -> 35 example's third turn."""

    def convo(n: int) -> dict[str, Any]:
        blocks = [
            block(SYSTEM if i == 1 else f"step {i}", CC if i == n else None)
            for i in range(1, n + 1)
        ]
        return request(messages=[{"role": "user", "content": blocks}])

    [_, e] = explain_trace([convo(10), convo(15), convo(35)])
    assert e.cause == "lookback_exceeded" and e.path == "/messages/0/content/14"


def test_concurrent_write() -> None:
    rows = [
        {"started_at": 0, "ttft_ms": 1000, "request": base()},
        {"started_at": 0.3, "request": base()},
    ]
    [e] = explain_trace(rows)
    assert e.cause == "concurrent_write" and "warm gate" in e.suggestion


def test_model_changed() -> None:
    e = explain(base(), base(model="claude-opus-4-8"))
    assert (e.cause, e.parameter) == ("model_changed", "model")


def test_workspace_changed() -> None:
    """CLIProxyAPI#5730: the same payload cached under one identity and rewritten under another."""
    [e] = explain_trace(
        [{"workspace": "wrkspc_a", "request": base()}, {"workspace": "wrkspc_b", "request": base()}]
    )
    assert e.cause == "workspace_changed"


@pytest.mark.parametrize(
    ("change", "parameter"),
    [
        ({"tool_choice": {"type": "any"}}, "tool_choice"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
        ({"speed": "fast", "model": "claude-opus-5"}, "speed"),  # a model with fast mode
    ],
)
def test_param_changed(change: dict[str, Any], parameter: str) -> None:
    msgs = [{"role": "user", "content": [block(text(400, "history"), CC)]}]
    a = request(
        model=change.get("model", "claude-sonnet-4-6"),
        tools=[tool("a")],
        system=[block(SYSTEM)],
        messages=msgs,
    )
    e = explain(a, {**a, **change})
    assert (e.cause, e.parameter) == ("param_changed", parameter)


def test_no_breakpoint() -> None:
    plain = request(system=SYSTEM)
    e = explain(plain, plain)
    assert e.cause == "no_breakpoint" and e.missed_tokens > 1000


def test_likely_server_side_when_observed_usage_contradicts() -> None:
    """claude-code#87966: cache_read collapses mid-conversation although nothing changed."""
    observed = {
        "input_tokens": 6,
        "cache_creation_input_tokens": 1963,
        "cache_read_input_tokens": 0,
        "output_tokens": 10,
    }
    [e] = explain_trace([{"request": base()}, {"request": base(), "usage": observed}])
    assert e.cause == "likely_server_side" and e.observed_usage == observed


def test_invalid_request() -> None:
    bad = base(system=[block(SYSTEM, CC)] + [block(f"b{i}", CC) for i in range(4)])
    [e] = explain_trace([base(), bad])
    assert e.cause == "invalid_request" and "Found 5" in e.detail


def test_every_cause_is_listed() -> None:
    assert set(CAUSES) >= {
        "hit",
        "cold_start",
        "prefix_changed",
        "ttl_expired",
        "below_minimum",
        "lookback_exceeded",
        "concurrent_write",
        "model_changed",
        "workspace_changed",
        "param_changed",
        "no_breakpoint",
        "likely_server_side",
    }


def test_a_trace_explains_every_request_after_the_first() -> None:
    rows = [base(f"Q{i}") for i in range(4)]
    assert [e.request_index for e in explain_trace(rows)] == [1, 2, 3]
    assert {e.cause for e in explain_trace(rows)} == {"hit"}


def test_a_malformed_row_is_an_input_error() -> None:
    with pytest.raises(InputError):
        explain({"model": "claude-sonnet-4-6", "messages": "nope"}, base())


def two_level(**extra: Any) -> dict[str, Any]:
    """A system breakpoint and a messages-level one, on a history long enough to cache."""
    return request(
        tools=[tool("lookup")],
        system=[block(SYSTEM, CC)],
        messages=[
            {"role": "user", "content": [block(text(1200, "history"))]},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": [block("And the question?", CC)]},
        ],
        **extra,
    )


def test_a_partial_miss_is_not_a_hit() -> None:
    """Only tool_choice changed: the system level is read, the messages level is written again.
    The request's cause is the miss, not "hit", and every breakpoint says what it did."""
    e = explain(two_level(), two_level(tool_choice={"type": "any"}))
    assert (e.cause, e.parameter, e.level) == ("param_changed", "tool_choice", "messages")
    assert e.read_tokens > 0 and e.missed_tokens > 0
    assert e.expected_read_tokens == e.read_tokens + e.missed_tokens
    assert "it read" in e.detail
    system, messages = e.breakpoints
    assert (system["path"], system["outcome"], system["cause"]) == ("/system/0", "hit", "hit")
    assert (messages["outcome"], messages["cause"]) == ("wrote", "param_changed")
    assert messages["missed_tokens"] == e.missed_tokens and messages["missed_usd"] > 0
    assert e.to_json()["breakpoints"] == e.breakpoints


def test_an_edited_history_block_is_the_cause_though_the_system_was_read() -> None:
    """A block of an earlier turn was rewritten: the system level is read, the rest written."""
    first = two_level()
    edited = two_level()
    edited["messages"][0]["content"][0]["text"] = text(1200, "history") + " (edited)"
    rows = [
        {"started_at": 0, "request": first},
        {"started_at": 1, "request": edited},
    ]
    [e] = explain_trace(rows)
    assert e.cause == "prefix_changed" and e.path == "/messages/0/content/0"
    assert e.diff is not None and "(edited)" in e.diff["after"]
    assert [b["cause"] for b in e.breakpoints] == ["hit", "prefix_changed"]


def test_one_request_with_two_misses_lists_both() -> None:
    """A 1h system entry still alive and a 5m history entry expired: the history breakpoint is
    ttl_expired; the system breakpoint read."""
    first = two_level()
    first["system"][0]["cache_control"] = {"type": "ephemeral", "ttl": "1h"}
    rows = [{"started_at": 0, "request": first}, {"started_at": 400, "request": first}]
    [e] = explain_trace(rows)
    assert e.cause == "ttl_expired" and e.read_tokens > 0
    assert [b["cause"] for b in e.breakpoints] == ["hit", "ttl_expired"]
