"""One named test per documented caching rule (anthropic-caching.md sections 1-7)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from cachewise import Engine, InvalidRequest, parse_request
from cachewise.engine import breakpoints, violations
from cachewise.request import Prompt
from conftest import CC, CC_1H, block, request, text, tool

BIG = text(1500, "big")  # comfortably above every 1,024-token minimum


def convo(n_blocks: int, marks: dict[int, dict[str, Any]], first: str = BIG) -> dict[str, Any]:
    """One user message with `n_blocks` text blocks (1-based marks), the first one large."""
    blocks = [
        block(first if i == 1 else f"step {i}: {text(6, str(i))}", marks.get(i))
        for i in range(1, n_blocks + 1)
    ]
    return request(messages=[{"role": "user", "content": blocks}])


def usage(engine: Engine, body: dict[str, Any], now: float = 0.0, **kw: Any) -> dict[str, Any]:
    return engine.account(parse_request(body), now=now, **kw).usage.to_api()


def written(u: dict[str, Any]) -> int:
    return int(u["cache_creation_input_tokens"])


# -- writes and reads ------------------------------------------------------------------------------


def test_write_then_read() -> None:
    """The first call writes the prefix at its breakpoint; an identical second call reads it all."""
    e = Engine()
    body = request(system=[block(BIG, CC)])
    first, second = usage(e, body, 0), usage(e, body, 1)
    assert written(first) > 0 and first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] == written(first)
    assert written(second) == 0
    assert second["input_tokens"] == first["input_tokens"]


def test_prompt_total_is_input_plus_read_plus_write() -> None:
    """input_tokens is the uncached remainder: the three counts add up to the prompt's total."""
    e = Engine()
    body = request(system=[block(BIG, CC)], messages=[{"role": "user", "content": text(50, "q")}])
    total = parse_request(body).total_tokens
    for now in (0, 1):
        u = usage(e, body, now)
        assert u["input_tokens"] + u["cache_read_input_tokens"] + written(u) == total


def test_writes_only_at_breakpoints_volatile_block_example() -> None:
    """Static blocks 1-5 then a volatile block 6 carrying the breakpoint: every request writes at 6
    and never reads, because the lookback finds prior writes, not stable content."""
    e = Engine()
    for turn in range(3):
        blocks = [block(BIG if i == 0 else text(20, f"static{i}")) for i in range(5)]
        blocks.append(block(f"now={turn}: what changed?", CC))
        u = usage(e, request(messages=[{"role": "user", "content": blocks}]), turn * 10)
        assert u["cache_read_input_tokens"] == 0
        assert written(u) > 0


def test_lookback_worked_example_10_15_35() -> None:
    """Turn 1 writes at block 10; turn 2 (bp 15) hits at 10 and writes at 15; turn 3 (bp 35)
    checks 35..16 and misses, because 15 is one position outside the 20-block window."""
    e = Engine()
    t1 = e.account(parse_request(convo(10, {10: CC})), now=0)
    assert t1.usage.cache_read_input_tokens == 0 and t1.usage.ephemeral_5m_input_tokens > 0
    t2 = e.account(parse_request(convo(15, {15: CC})), now=10)
    assert t2.read_position == 9  # block 10, zero-based
    assert t2.usage.cache_read_input_tokens == t1.usage.ephemeral_5m_input_tokens
    assert t2.usage.ephemeral_5m_input_tokens > 0
    t3 = e.account(parse_request(convo(35, {35: CC})), now=20)
    assert t3.usage.cache_read_input_tokens == 0
    assert t3.read_position is None


def test_lookback_second_breakpoint_within_window_rescues_turn_3() -> None:
    """The docs' fix: a second breakpoint at 15 on turn 3 hits the entry that turn 2 wrote."""
    e = Engine()
    e.account(parse_request(convo(10, {10: CC})), now=0)
    t2 = e.account(parse_request(convo(15, {15: CC})), now=10)
    t3 = e.account(parse_request(convo(35, {15: CC, 35: CC})), now=20)
    assert t3.read_position == 14
    assert (
        t3.usage.cache_read_input_tokens
        == t2.usage.cache_read_input_tokens + t2.usage.ephemeral_5m_input_tokens
    )


def test_lookback_counts_the_breakpoint_as_first_position() -> None:
    """An entry exactly 19 positions behind the breakpoint is inside the window; 20 is outside."""
    e = Engine()
    e.account(parse_request(convo(10, {10: CC})), now=0)
    assert e.account(parse_request(convo(29, {29: CC})), now=1, commit=False).read_position == 9
    assert e.account(parse_request(convo(30, {30: CC})), now=1, commit=False).read_position is None


def test_lookback_size_is_a_parameter() -> None:
    """The window is data: a wider engine finds what the documented one cannot."""
    e = Engine(lookback=40)
    e.account(parse_request(convo(15, {15: CC})), now=0)
    assert e.account(parse_request(convo(35, {35: CC})), now=1).read_position == 14


def test_legacy_lookback_hits_unmarked_earlier_positions_when_switched_on() -> None:
    """The pre-2026-03 reading: modify block 25 and the lookback matches at 24. Off by default."""
    body1 = convo(25, {25: CC})
    changed = convo(25, {25: CC})
    changed["messages"][0]["content"][24]["text"] = "a different last block"
    current, legacy = Engine(), Engine(legacy_lookback=True)
    for e in (current, legacy):
        e.account(parse_request(body1), now=0)
    assert current.account(parse_request(changed), now=1).usage.cache_read_input_tokens == 0
    hit = legacy.account(parse_request(changed), now=1)
    assert hit.read_position == 23


# -- limits and validation -------------------------------------------------------------------------


def test_more_than_four_breakpoints_is_rejected_with_the_api_text() -> None:
    body = convo(6, dict.fromkeys(range(1, 6), CC))
    with pytest.raises(InvalidRequest) as err:
        Engine().account(parse_request(body), now=0)
    assert err.value.message == "A maximum of 4 blocks with cache_control may be provided. Found 5."
    assert err.value.status == 400 and err.value.error_type == "invalid_request_error"


def test_one_hour_after_five_minutes_is_rejected_with_the_api_text() -> None:
    """A bare marker counts as 5m; the error names the offending block's path."""
    body = request(system=[block(BIG, CC), block(text(10, "x"), CC_1H)])
    with pytest.raises(InvalidRequest) as err:
        Engine().account(parse_request(body), now=0)
    assert err.value.message == (
        "system.1.cache_control.ttl: a ttl='1h' cache_control block must not come after a "
        "ttl='5m' cache_control block. Note that blocks are processed in the following order: "
        "`tools`, `system`, `messages`."
    )


def test_ttl_order_runs_across_levels() -> None:
    """tools -> system -> messages: a 1h message marker after a 5m tool marker is rejected."""
    body = request(
        tools=[tool("search", CC)], messages=[{"role": "user", "content": [block("q", CC_1H)]}]
    )
    [problem] = violations(parse_request(body))
    assert problem.message.startswith("messages.0.content.0.cache_control.ttl: a ttl='1h'")


def test_one_hour_before_five_minutes_is_fine() -> None:
    body = request(system=[block(BIG, CC_1H), block(text(10, "x"), CC)])
    assert violations(parse_request(body)) == []


def test_marker_on_thinking_block_is_rejected() -> None:
    body = request(
        model="claude-opus-4-6",
        messages=[
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "thinking",
                        "thinking": "hmm",
                        "signature": "sig",
                        "cache_control": CC,
                    },
                    block("answer"),
                ],
            },
            {"role": "user", "content": "more"},
        ],
    )
    [problem] = violations(parse_request(body))
    assert (
        problem.message
        == "messages.1.content.0.thinking.cache_control: Extra inputs are not permitted"
    )


def test_marker_on_empty_text_is_rejected() -> None:
    body = request(messages=[{"role": "user", "content": [block("q"), block("", CC)]}])
    [problem] = violations(parse_request(body))
    assert problem.message == "cache_control cannot be set for empty text blocks"


def test_whitespace_only_text_is_rejected() -> None:
    body = request(messages=[{"role": "user", "content": [block("q"), block("  \n", CC)]}])
    assert [p.message for p in violations(parse_request(body))] == [
        "text content blocks must contain non-whitespace text"
    ]


def test_marker_on_inner_tool_result_content() -> None:
    """On the last inner block it moves to the parent tool_result; on any other it is rejected."""

    def body(k: int) -> dict[str, Any]:
        inner = [block(BIG), block("tail")]
        inner[k]["cache_control"] = CC
        return request(
            messages=[
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "t1", "name": "search", "input": {"q": "x"}}
                    ],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t1", "content": inner}],
                },
            ]
        )

    last = parse_request(body(1))
    assert violations(last) == []
    [bp] = breakpoints(last)
    assert last.positions[bp.position].kind == "tool_result"
    [problem] = violations(parse_request(body(0)))
    assert problem.path == "/messages/2/content/0/content/0/cache_control"


# -- minimums --------------------------------------------------------------------------------------


def test_below_minimum_is_silently_uncached() -> None:
    """No error, both counters 0, and the next identical call reads nothing either."""
    e = Engine()
    body = request(system=[block(text(50, "small"), CC)])
    for now in (0, 1):
        u = usage(e, body, now)
        assert written(u) == 0 and u["cache_read_input_tokens"] == 0


def test_minimum_applies_to_the_cumulative_prefix() -> None:
    """A small marked block behind large unmarked ones is cached: the prefix counts."""
    e = Engine()
    body = request(system=[block(BIG), block(text(5, "tiny"), CC)])
    assert written(usage(e, body)) > 1024


def test_minimum_is_per_model() -> None:
    """~2,000 tokens cache on Sonnet 4.6 (1,024) but not on Haiku 4.5 (4,096)."""
    body = request(system=[block(BIG, CC)])
    assert written(usage(Engine(), body)) > 0
    assert written(usage(Engine(), {**body, "model": "claude-haiku-4-5"})) == 0


def test_unknown_minimum_is_assumed_and_said() -> None:
    acct = Engine().account(
        parse_request(request(model="claude-opus-5-5", system=[block(BIG, CC)])), now=0
    )
    assert acct.minimum_assumed and acct.notes


# -- TTL -------------------------------------------------------------------------------------------


def test_ttl_runs_from_the_start_of_the_request_and_a_read_refreshes_it() -> None:
    e = Engine()
    body = request(system=[block(BIG, CC)])
    usage(e, body, 0)
    assert usage(e, body, 290)["cache_read_input_tokens"] > 0  # refreshed at 290
    assert usage(e, body, 580)["cache_read_input_tokens"] > 0  # 290 s after the refresh
    assert usage(e, body, 881)["cache_read_input_tokens"] == 0  # 301 s after the last use


def test_five_minute_entry_measured_probe_420_misses_then_480_hits() -> None:
    """SWE-agent#1482: a probe at 420 s missed and rewrote; the probe at 480 s hit the rewrite."""
    e = Engine()
    body = request(system=[block(BIG, CC)])
    usage(e, body, 0)
    assert written(usage(e, body, 420)) > 0
    assert usage(e, body, 480)["cache_read_input_tokens"] > 0


def test_one_hour_entry_survives_a_30_minute_gap() -> None:
    e = Engine()
    body = request(system=[block(BIG, CC_1H)])
    first = usage(e, body, 0)
    assert first["cache_creation"]["ephemeral_1h_input_tokens"] == written(first)
    assert usage(e, body, 1800)["cache_read_input_tokens"] == written(first)
    assert usage(e, body, 1800 + 3601)["cache_read_input_tokens"] == 0


def test_expiry_grace_is_a_knob() -> None:
    e = Engine(expiry_grace=60)
    body = request(system=[block(BIG, CC)])
    usage(e, body, 0)
    assert usage(e, body, 330)["cache_read_input_tokens"] > 0
    # A read in the grace renews the entry like any read; it is not a second write.
    [entry] = e.snapshot(331)
    assert entry.writes == 1 and entry.expires_at == 330 + 300


def test_an_expired_entry_is_named_for_an_hour_then_forgotten() -> None:
    """Past its TTL (and grace) an entry is absent to every rule; for one more hour a lookback
    still passes it as expired (what the explainer's `ttl_expired` reads), then it is gone."""
    e = Engine(expiry_grace=60)
    prompt = parse_request(request(system=[block(BIG, CC)]))
    e.account(prompt, now=0)
    forgotten_at = 300 + 60 + 3600
    late = e.account(prompt, now=forgotten_at - 1, commit=False).breakpoints[0]
    assert (late.outcome, late.unread) == ("wrote", {0: "expired"})
    gone = e.account(prompt, now=forgotten_at, commit=False).breakpoints[0]
    assert (gone.unread, gone.why) == ({}, "no entry in the lookback window")
    other = parse_request(request(system=[block(text(1500, "other"), CC)]))
    e.account(other, now=forgotten_at)  # any request forgets what has come due
    assert [x.prefix_hash for x in e.entries.values()] == [other.positions[0].prefix_hash]


def test_the_cache_table_holds_only_live_and_recently_expired_entries() -> None:
    """5,000 unique prefixes, one every 4 s: the table never holds more than the last TTL plus
    an hour of them (each request forgets what has come due, with no scan of the table)."""
    from cachewise import get_model

    m = get_model("claude-sonnet-4-6")
    e = Engine()
    kept = (300 + 3600) // 4
    for i in range(5_000):
        e.account(Prompt.from_segments(m, [(f"p{i}", 2000, "5m")]), now=4.0 * i)
        assert len(e.entries) <= kept
    assert len(e.entries) == kept
    assert len(e.snapshot(4.0 * 4_999)) == 300 // 4


# -- mixed TTL billing -----------------------------------------------------------------------------


def test_mixed_ttl_billing_a_b_c() -> None:
    """Read A at the highest hit, 1h writes for B-A up to the last 1h breakpoint, 5m for C-B."""
    e = Engine()
    sys1 = block(BIG, CC_1H)
    first = request(system=[sys1], messages=[{"role": "user", "content": "q1"}])
    a = e.account(parse_request(first), now=0)
    a_tokens = a.usage.ephemeral_1h_input_tokens
    body = request(
        system=[sys1, block(text(300, "docs"), CC_1H)],
        messages=[{"role": "user", "content": [block(text(200, "turn"), CC)]}],
    )
    prompt = parse_request(body)
    acct = e.account(prompt, now=5)
    b_tokens = prompt.positions[1].cumulative
    c_tokens = prompt.positions[2].cumulative
    assert acct.usage.cache_read_input_tokens == a_tokens
    assert acct.usage.ephemeral_1h_input_tokens == b_tokens - a_tokens
    assert acct.usage.ephemeral_5m_input_tokens == c_tokens - b_tokens
    assert acct.usage.input_tokens == prompt.total_tokens - c_tokens


# -- automatic caching -----------------------------------------------------------------------------


def test_automatic_caching_marks_the_last_block_and_moves_forward() -> None:
    """Request N writes through User(N); request N+1 reads that and writes the new turns."""
    e = Engine()
    turn1 = [{"role": "user", "content": BIG}]
    b1 = request(messages=turn1, cache_control=CC)
    u1 = usage(e, b1, 0)
    turn2 = [*turn1, {"role": "assistant", "content": "Sure."}, {"role": "user", "content": "And?"}]
    u2 = usage(e, request(messages=turn2, cache_control=CC), 1)
    assert u2["cache_read_input_tokens"] == written(u1)
    assert written(u2) > 0


def test_automatic_caching_equals_an_explicit_marker_on_the_last_block() -> None:
    """Recorded calls: same written count, same remainder."""
    auto = usage(
        Engine(), request(system=BIG, messages=[{"role": "user", "content": "q"}], cache_control=CC)
    )
    explicit = usage(
        Engine(), request(system=BIG, messages=[{"role": "user", "content": [block("q", CC)]}])
    )
    assert auto == explicit


def test_automatic_same_ttl_on_last_block_is_a_no_op() -> None:
    body = request(messages=[{"role": "user", "content": [block(BIG, CC)]}], cache_control=CC)
    prompt = parse_request(body)
    assert violations(prompt) == [] and len(breakpoints(prompt)) == 1


def test_automatic_different_ttl_on_last_block_is_rejected() -> None:
    body = request(messages=[{"role": "user", "content": [block(BIG, CC)]}], cache_control=CC_1H)
    assert len(violations(parse_request(body))) >= 1


def test_automatic_with_four_explicit_breakpoints_is_rejected() -> None:
    body = convo(6, dict.fromkeys(range(1, 5), CC))
    body["cache_control"] = CC
    [problem] = violations(parse_request(body))
    assert problem.path == "/cache_control"


def test_automatic_walks_back_past_ineligible_blocks() -> None:
    """The automatic breakpoint skips a trailing thinking block to the nearest eligible one."""
    body = request(
        model="claude-opus-4-6",
        cache_control=CC,
        messages=[
            {"role": "user", "content": BIG},
            {
                "role": "assistant",
                "content": [
                    block("partial"),
                    {"type": "thinking", "thinking": "t", "signature": "s"},
                ],
            },
        ],
    )
    prompt = parse_request(body)
    [bp] = breakpoints(prompt)
    assert bp.automatic and prompt.positions[bp.position].path == "/messages/1/content/0"


def test_automatic_caching_uses_a_breakpoint_slot() -> None:
    body = convo(5, {1: CC, 2: CC, 3: CC})
    body["cache_control"] = CC
    assert len(breakpoints(parse_request(body))) == 4


# -- availability and concurrency ------------------------------------------------------------------


def test_entry_becomes_readable_only_when_the_response_begins() -> None:
    e = Engine()
    body = request(system=[block(BIG, CC)])
    usage(e, body, 0, ready_at=2.0)
    early = e.account(parse_request(body), now=1.0)
    assert early.usage.cache_read_input_tokens == 0 and early.usage.ephemeral_5m_input_tokens > 0
    assert early.breakpoints[0].pending_at == 0
    assert usage(e, body, 2.5)["cache_read_input_tokens"] > 0


def test_entry_left_pending_becomes_readable_when_its_response_begins() -> None:
    """A caller that learns only later when a response began (the emulator on a virtual clock)
    leaves its entries pending, then says when: readable from then on, whichever writer began."""
    e = Engine()
    prompt = parse_request(request(system=[block(BIG, CC)]))
    first = e.account(prompt, now=0, ready_at=math.inf)
    joined = e.account(prompt, now=0, ready_at=math.inf)  # in flight with the first: pays too
    assert joined.usage.ephemeral_5m_input_tokens > 0 and joined.pending == first.pending != ()
    assert e.account(prompt, now=200, commit=False).usage.cache_read_input_tokens == 0
    e.begin(joined, 5)
    assert e.account(prompt, now=4, commit=False).usage.cache_read_input_tokens == 0
    e.begin(first, 7)  # a later start takes nothing back
    read = e.account(prompt, now=5)
    assert read.usage.cache_read_input_tokens > 0 and read.pending == ()


def test_concurrent_cold_requests_each_pay_the_write() -> None:
    e = Engine()
    body = request(system=[block(BIG, CC)])
    accounts = [
        e.account(parse_request(body), now=0.1 * i, ready_at=1.0 + 0.1 * i) for i in range(8)
    ]
    assert all(a.usage.ephemeral_5m_input_tokens > 0 for a in accounts)
    assert usage(e, body, 5)["cache_read_input_tokens"] > 0


# -- isolation and invalidation --------------------------------------------------------------------


def test_workspaces_are_isolated() -> None:
    e = Engine()
    body = request(system=[block(BIG, CC)])
    usage(e, body, 0, workspace="wrkspc_a")
    assert usage(e, body, 1, workspace="wrkspc_b")["cache_read_input_tokens"] == 0
    assert usage(e, body, 2, workspace="wrkspc_a")["cache_read_input_tokens"] > 0


def test_cache_is_per_model() -> None:
    e = Engine()
    usage(e, request(system=[block(BIG, CC)]), 0)
    other = request(model="claude-sonnet-4-5", system=[block(BIG, CC)])
    assert usage(e, other, 1)["cache_read_input_tokens"] == 0


def test_tool_order_invalidates_everything() -> None:
    e = Engine()
    tools = [tool("alpha"), tool("beta", CC)]
    sys = [block(BIG, CC)]
    usage(e, request(tools=tools, system=sys), 0)
    swapped = [tool("beta"), tool("alpha", CC)]
    assert usage(e, request(tools=swapped, system=sys), 1)["cache_read_input_tokens"] == 0


def test_tool_choice_change_keeps_the_system_level_and_drops_the_messages_level() -> None:
    e = Engine()
    tools = [tool("alpha")]
    msgs = [{"role": "user", "content": [block(text(400, "hist"), CC)]}]
    base = request(tools=tools, system=[block(BIG, CC)], messages=msgs)
    first = e.account(parse_request(base), now=0)
    forced = e.account(parse_request({**base, "tool_choice": {"type": "any"}}), now=1)
    system_prefix = first.breakpoints[0].breakpoint.tokens
    assert forced.usage.cache_read_input_tokens == system_prefix
    forced_extra = parse_request(base).model.tool_frame("any")[2]  # after the last block
    assert (
        forced.usage.ephemeral_5m_input_tokens
        == first.usage.ephemeral_5m_input_tokens - system_prefix
    )
    assert forced.usage.input_tokens == first.usage.input_tokens + forced_extra


@pytest.mark.parametrize("inside_a_tool_result", [False, True])
def test_an_image_anywhere_drops_the_messages_level(inside_a_tool_result: bool) -> None:
    png = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo" * 40}
    image = {"type": "image", "source": png}
    task = {"role": "user", "content": [block(text(2000, "task"), CC)]}
    call = {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "t", "name": "a", "input": {}}],
    }
    content: list[Any] = [image, block("shot")] if inside_a_tool_result else "shot"
    result = {"type": "tool_result", "tool_use_id": "t", "content": content}
    after = [result] if inside_a_tool_result else [result, image]
    e = Engine()
    usage(e, request(tools=[tool("a")], messages=[task]), 0)
    turn = request(
        tools=[tool("a")],
        messages=[task, call, {"role": "user", "content": [*after, block("Next.", CC)]}],
    )
    assert usage(e, turn, 30)["cache_read_input_tokens"] == 0


@pytest.mark.parametrize(
    "change",
    [
        {"thinking": {"type": "enabled", "budget_tokens": 2048}},
        {"output_config": {"effort": "low"}},
    ],
)
def test_thinking_and_effort_changes_drop_the_messages_level(change: dict[str, Any]) -> None:
    e = Engine()
    base = request(
        system=[block(BIG, CC)], messages=[{"role": "user", "content": [block(text(400, "h"), CC)]}]
    )
    first = e.account(parse_request(base), now=0)
    after = e.account(parse_request({**base, **change}), now=1)
    assert after.usage.cache_read_input_tokens == first.breakpoints[0].breakpoint.tokens


def test_explicit_default_effort_equals_omitting_it() -> None:
    a = parse_request(request(system=BIG))
    b = parse_request(request(system=BIG, output_config={"effort": "high"}))
    assert a.positions[-1].prefix_hash == b.positions[-1].prefix_hash


def test_speed_change_drops_the_system_level() -> None:
    e = Engine()
    tools = [tool(f"t{i}") for i in range(9)] + [tool("last", CC)]
    body = request(model="claude-opus-5", tools=tools, system=[block(BIG, CC)])
    first = e.account(parse_request(body), now=0)
    assert first.breakpoints[0].outcome == "wrote"
    fast = e.account(parse_request({**body, "speed": "fast"}), now=1)
    assert fast.usage.cache_read_input_tokens == first.breakpoints[0].breakpoint.tokens


def test_a_model_without_fast_mode_runs_a_fast_request_standard_and_reads() -> None:
    e = Engine()
    body = request(model="claude-opus-4-6", system=[block(text(5000, "opus"), CC)])
    e.account(parse_request(body), now=0)
    fast = parse_request({**body, "speed": "fast"})
    assert fast.speed == "standard"
    assert e.account(fast, now=1).usage.cache_read_input_tokens > 0


def test_string_content_and_a_marked_text_block_share_a_prefix() -> None:
    """Recorded calls: a plain string matched the same text sent before as a marked block."""
    e = Engine()
    marked = request(messages=[{"role": "user", "content": [block(BIG, CC)]}])
    first = usage(e, marked)
    plain = request(
        messages=[
            {"role": "user", "content": BIG},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [block("next", CC)]},
        ]
    )
    assert usage(e, plain, 1)["cache_read_input_tokens"] == written(first)


# -- pre-warming and knobs -------------------------------------------------------------------------


def test_prewarm_with_max_tokens_zero_writes_and_bills_no_output() -> None:
    e = Engine()
    body = request(system=[block(BIG, CC)], max_tokens=0)
    warm = e.account(parse_request(body), now=0, output_tokens=50)
    assert warm.usage.ephemeral_5m_input_tokens > 0 and warm.usage.output_tokens == 0
    assert (
        usage(e, {**body, "max_tokens": 100}, 1)["cache_read_input_tokens"]
        == warm.usage.ephemeral_5m_input_tokens
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"stream": True},
        {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"output_config": {"format": {"type": "json_schema", "schema": {}}}},
        {"tool_choice": {"type": "any"}},
    ],
)
def test_prewarm_rejects_what_the_docs_list(extra: dict[str, Any]) -> None:
    body = request(system=[block(BIG, CC)], max_tokens=0, **extra)
    with pytest.raises(InvalidRequest):
        Engine().account(parse_request(body), now=0)


def test_eviction_knob_is_deterministic_per_seed() -> None:
    body = request(system=[block(BIG, CC)])

    def reads(seed: int) -> list[int]:
        e = Engine(eviction_rate=0.5, seed=seed)
        return [usage(e, body, float(i))["cache_read_input_tokens"] for i in range(20)]

    assert reads(7) == reads(7)
    assert 0 in reads(7)[1:] and any(reads(7))


def test_ttl_in_key_switch_models_the_observed_5m_to_1h_upgrade_miss() -> None:
    """claude-code#47261 (observed, not documented): a 1h request after a 5m write read 0."""
    five, hour = request(system=[block(BIG, CC)]), request(system=[block(BIG, CC_1H)])
    documented = Engine()
    usage(documented, five)
    assert usage(documented, hour, 1)["cache_read_input_tokens"] > 0
    observed = Engine(ttl_in_key=True)
    usage(observed, five)
    assert usage(observed, hour, 1)["cache_read_input_tokens"] == 0


def test_a_read_renews_the_entrys_own_ttl_a_1h_marker_does_not_upgrade_it() -> None:
    """Refreshed for no additional cost each time used: refreshed, not upgraded. A 1h marker that
    reads a live 5m entry pays a read and leaves a 5m entry (an upgrade would be a write)."""
    five, hour = request(system=[block(BIG, CC)]), request(system=[block(BIG, CC_1H)])
    e = Engine()
    usage(e, five, 0)
    assert usage(e, hour, 200)["cache_read_input_tokens"] > 0
    assert usage(e, hour, 200 + 299)["cache_read_input_tokens"] > 0  # renewed at 200 for 5m
    assert usage(e, hour, 499 + 301)["cache_read_input_tokens"] == 0  # not for 1h


def test_a_breakpoint_inside_the_read_refreshes_but_creates_no_entry() -> None:
    """Its tokens were billed as a read; a 1h entry there would be an upgrade for a read's price."""
    q0 = {"role": "user", "content": [block("Question zero?", CC)]}
    e = Engine()
    usage(e, request(system=[block(BIG)], messages=[q0]), 0)  # writes [system, q0] only
    both = request(system=[block(BIG, CC_1H)], messages=[q0])
    assert usage(e, both, 10)["cache_read_input_tokens"] > 0  # reads at q0
    other = request(system=[block(BIG, CC_1H)], messages=[{"role": "user", "content": "Q1?"}])
    assert usage(e, other, 10 + 400)["cache_read_input_tokens"] == 0  # no 1h entry at system


def test_a_breakpoint_inside_the_read_leaves_a_pending_entry_alone() -> None:
    """A review's case: a 1h marker inside a read gave a pending 5m entry an hour, and made it
    readable at the reader's first byte rather than its writer's."""
    x = {"role": "user", "content": [block("Extra " + text(50, "x"), CC)]}
    e = Engine()
    usage(e, request(system=[block(BIG)], messages=[x]), 0)  # an entry ending in x
    pending = request(system=[block(BIG, CC)], messages=[{"role": "user", "content": "U?"}])
    usage(e, pending, 10, ready_at=70)  # a 5m entry at the system, readable at 70
    usage(e, request(system=[block(BIG, CC_1H)], messages=[x]), 11)  # reads x; 1h inside
    at_system = request(system=[block(BIG, CC)], messages=[{"role": "user", "content": "Z?"}])
    assert usage(e, at_system, 12)["cache_read_input_tokens"] == 0  # still pending
    assert usage(e, at_system, 3000)["cache_read_input_tokens"] == 0  # and it was 5m


def test_a_key_named_cache_control_inside_a_tool_schema_is_content() -> None:
    """Only the API's marker places hold markers; a schema property of that name is part of the
    tool, so two tools that differ in it share no prefix."""

    def http(header_doc: str) -> dict[str, Any]:
        t = tool("http_get")
        props = {"cache_control": {"type": "string", "description": header_doc}}
        return t | {"input_schema": {"type": "object", "properties": props}}

    first = request(tools=[http(BIG) | {"cache_control": CC}], system=[block(BIG)])
    second = request(tools=[http("The header.") | {"cache_control": CC}], system=[block(BIG)])
    e = Engine()
    usage(e, first, 0)
    assert usage(e, second, 10)["cache_read_input_tokens"] == 0
    a, b = parse_request(first), parse_request(second)
    assert a.positions[0].prefix_hash != b.positions[0].prefix_hash


def test_a_marker_on_a_deferred_tool_or_a_dropped_thinking_block_is_rejected() -> None:
    deferred = tool("later", CC) | {"defer_loading": True}
    found = violations(parse_request(request(tools=[tool("a"), deferred], system=[block(BIG)])))
    assert [v.path for v in found] == ["/tools/1/cache_control"]
    thinking = {"type": "thinking", "thinking": "h", "signature": "s", "cache_control": CC}
    turns = [
        {"role": "user", "content": "Q?"},
        {"role": "assistant", "content": [thinking, block("A.")]},
        {"role": "user", "content": "Next?"},
    ]
    prompt = parse_request(request(model="claude-sonnet-4-5", messages=turns))
    assert "Extra inputs are not permitted" in violations(prompt)[0].message


def test_a_dry_run_changes_nothing() -> None:
    e = Engine()
    body = request(system=[block(BIG, CC)])
    e.account(parse_request(body), now=0, commit=False)
    assert e.snapshot(1) == []


def test_segments_behave_like_blocks() -> None:
    from cachewise import get_model

    m = get_model("claude-opus-4-1")
    e = Engine()
    first = e.account(Prompt.from_segments(m, [("ctx", 8000, "5m"), ("q1", 420, None)]), now=0)
    again = e.account(Prompt.from_segments(m, [("ctx", 8000, "5m"), ("q2", 420, None)]), now=1)
    assert (first.usage.ephemeral_5m_input_tokens, first.usage.input_tokens) == (8000, 420)
    assert (again.usage.cache_read_input_tokens, again.usage.ephemeral_5m_input_tokens) == (8000, 0)
