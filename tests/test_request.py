"""The request model: positions in cache order, canonical identity, frames, and level folding."""

from __future__ import annotations

from typing import Any

import pytest

from cachewise import InvalidRequest, UnknownModel, parse_request
from cachewise.tokens import default_tokenizer
from conftest import CC, block, request, text, tool


def hashes(body: dict[str, Any], **kw: Any) -> list[str]:
    return [p.prefix_hash for p in parse_request(body, **kw).positions]


def test_positions_run_tools_then_system_then_messages() -> None:
    body = request(
        tools=[tool("a"), tool("b")],
        system=[block("s1"), block("s2")],
        messages=[
            {"role": "user", "content": [block("u1"), block("u2")]},
            {"role": "assistant", "content": "a1"},
        ],
    )
    p = parse_request(body)
    assert [x.level for x in p.positions] == ["tools"] * 2 + ["system"] * 2 + ["messages"] * 3
    assert [x.path for x in p.positions][-3:] == [
        "/messages/0/content/0",
        "/messages/0/content/1",
        "/messages/1/content/0",
    ]
    cumulative = [x.cumulative for x in p.positions]
    assert cumulative == sorted(cumulative) and cumulative[-1] < p.total_tokens


def test_a_string_and_a_one_block_list_are_the_same_position() -> None:
    as_string = request(system="You are terse.", messages=[{"role": "user", "content": "Hi"}])
    as_blocks = request(
        system=[block("You are terse.", CC)],
        messages=[{"role": "user", "content": [block("Hi", CC)]}],
    )
    assert hashes(as_string) == hashes(as_blocks)


def test_markers_are_not_part_of_the_hash() -> None:
    plain = request(system=[block("x")])
    marked = request(system=[block("x", {"type": "ephemeral", "ttl": "1h"})])
    assert hashes(plain) == hashes(marked)


def test_key_order_inside_a_tool_schema_changes_the_prefix() -> None:
    t1 = tool("a")
    t2 = {
        **t1,
        "input_schema": {
            "type": "object",
            "properties": {"limit": {"type": "integer"}, "query": {"type": "string"}},
        },
    }
    assert hashes(request(tools=[t1]))[0] != hashes(request(tools=[t2]))[0]


def test_key_order_inside_tool_use_input_changes_the_prefix() -> None:
    def body(inp: dict[str, Any]) -> dict[str, Any]:
        return request(
            messages=[
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": inp}],
                },
            ]
        )

    assert hashes(body({"a": 1, "b": 2}))[-1] != hashes(body({"b": 2, "a": 1}))[-1]


def test_top_level_block_key_order_does_not_change_the_prefix() -> None:
    a = request(messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    b = request(messages=[{"role": "user", "content": [{"text": "hi", "type": "text"}]}])
    assert hashes(a) == hashes(b)


def test_message_boundaries_are_part_of_the_prefix() -> None:
    one = request(messages=[{"role": "user", "content": [block("a"), block("b")]}])
    two = request(
        messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    )
    assert hashes(one)[-1] != hashes(two)[-1]


@pytest.mark.parametrize(
    ("change", "first_changed_level"),
    [
        ({"model": "claude-sonnet-4-5"}, "tools"),
        ({"speed": "fast"}, "system"),
        ({"tool_choice": {"type": "any"}}, "messages"),
        ({"tool_choice": {"type": "auto", "disable_parallel_tool_use": True}}, "messages"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "messages"),
        ({"output_config": {"effort": "low"}}, "messages"),
    ],
)
def test_parameters_invalidate_from_their_level(
    change: dict[str, Any], first_changed_level: str
) -> None:
    base = request(
        model="claude-opus-5",  # a model with fast mode
        tools=[tool("a")],
        system=[block("sys")],
        messages=[{"role": "user", "content": "q"}],
    )
    before, after = parse_request(base), parse_request({**base, **change})
    levels = [p.level for p in before.positions]
    first = next(
        i
        for i, (x, y) in enumerate(zip(before.positions, after.positions, strict=False))
        if x.prefix_hash != y.prefix_hash
    )
    assert levels[first] == first_changed_level


def test_images_and_beta_headers_invalidate_the_messages_level_only() -> None:
    base = request(system=[block("sys")], messages=[{"role": "user", "content": "q"}])
    with_betas = parse_request(base, betas=["some-beta-2026-01-01"])
    plain = parse_request(base)
    assert plain.positions[0].prefix_hash == with_betas.positions[0].prefix_hash
    assert plain.positions[1].prefix_hash != with_betas.positions[1].prefix_hash
    image = {"type": "image", "source": {"type": "url", "url": "https://example.invalid/x.png"}}
    imaged = request(
        system=[block("sys")],
        messages=[
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"},
            {"role": "user", "content": [image]},
        ],
    )
    assert parse_request(imaged).positions[1].prefix_hash != plain.positions[1].prefix_hash


def test_claude_4_frame_two_before_the_system_prompt_five_after() -> None:
    """Recorded calls (Claude 4.x): written = C(system) + 2, input = C(user) + 5."""
    tok = default_tokenizer()
    sys_text, user_text = text(300, "s"), "What is the capital of France?"
    p = parse_request(
        request(
            model="claude-haiku-4-5",
            system=[block(sys_text, CC)],
            messages=[{"role": "user", "content": user_text}],
        )
    )
    assert p.positions[0].cumulative == tok.count(sys_text, "3.0") + 2
    assert p.total_tokens - p.positions[0].cumulative == tok.count(user_text, "3.0") + 5


def test_claude_3_frame_all_after_the_system_prompt() -> None:
    tok = default_tokenizer()
    sys_text = text(300, "s")
    p = parse_request(
        request(
            model="claude-3-5-sonnet-20241022",
            system=[block(sys_text, CC)],
            messages=[{"role": "user", "content": "Hi"}],
        )
    )
    assert p.positions[0].cumulative == tok.count(sys_text, "3.0")
    assert p.total_tokens - p.positions[-1].cumulative == 4


def test_total_for_a_request_without_tools_follows_the_recorded_formula() -> None:
    """total = 7 + sum of content + 3 per extra message (v3 family)."""
    tok = default_tokenizer()
    msgs = ["Hello there, I need help.", "Of course. What with?", "Caching."]
    body = request(
        model="claude-sonnet-4-5",
        messages=[
            {"role": r, "content": t}
            for r, t in zip(["user", "assistant", "user"], msgs, strict=True)
        ],
    )
    expected = 7 + sum(tok.count(t, "3.0") for t in msgs) + 3 * 2
    assert parse_request(body).total_tokens == expected


def test_deferred_tools_are_not_in_the_prefix() -> None:
    deferred = {**tool("late"), "defer_loading": True}
    assert hashes(request(tools=[tool("a"), deferred])) == hashes(request(tools=[tool("a")]))


def test_older_models_drop_earlier_turns_thinking() -> None:
    """Haiku 4.5 keeps only the last turn's thinking: after a plain user message it is gone."""
    msgs = [
        {"role": "user", "content": "q1"},
        {
            "role": "assistant",
            "content": [{"type": "thinking", "thinking": "deep", "signature": "s"}, block("a1")],
        },
        {"role": "user", "content": "q2"},
    ]
    kinds_old = [
        p.kind for p in parse_request(request(model="claude-haiku-4-5", messages=msgs)).positions
    ]
    kinds_new = [
        p.kind for p in parse_request(request(model="claude-opus-4-6", messages=msgs)).positions
    ]
    assert "thinking" not in kinds_old and "thinking" in kinds_new


def test_uncalibrated_families_use_the_pricing_pages_tool_prompt_size() -> None:
    p = parse_request(request(model="claude-opus-4-8", tools=[tool("a")]))
    assert p.positions[0].tokens > 290


def test_system_text_does_not_pay_the_word_start_marker() -> None:
    """Recorded: a system prompt starting with a newline costs one token less than a user turn."""
    tok = default_tokenizer()
    text_ = "\nYou are a careful assistant."
    assert tok.count(text_, "3.0", "system") == tok.count(text_, "3.0") - 1
    p = parse_request(request(model="claude-sonnet-4-0", system=text_))
    assert p.positions[0].cumulative == 2 + tok.count(text_, "3.0", "system")


def test_same_role_neighbours_cost_less_on_the_4_8_family() -> None:
    tok = default_tokenizer()
    msgs = [
        {"role": "user", "content": "one"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "three"},
    ]
    p = parse_request(request(model="claude-opus-4-8", messages=msgs))
    content = sum(tok.count(m["content"], "4.8") for m in msgs)
    assert p.total_tokens == 6 + content + 1 + 2


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"messages": []}, "/model"),
        ({"model": "claude-sonnet-4-6"}, "/messages"),
        (
            {"model": "claude-sonnet-4-6", "messages": [{"role": "robot", "content": "x"}]},
            "/messages/0/role",
        ),
        (
            {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": [42]}]},
            "/messages/0/content/0",
        ),
        ({"model": "claude-sonnet-4-6", "messages": "hi"}, "/messages"),
    ],
)
def test_malformed_requests_raise_invalid_request_with_a_path(
    body: dict[str, Any], path: str
) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_request(body)
    assert err.value.path == path


def test_unknown_model() -> None:
    with pytest.raises(UnknownModel):
        parse_request({"model": "gpt-4", "messages": []})


def test_markers_are_stripped_where_the_api_reads_them_and_nowhere_else() -> None:
    from cachewise.body import has_markers, strip_markers

    schema = {"type": "object", "properties": {"cache_control": {"type": "string"}}}
    result = {
        "type": "tool_result",
        "tool_use_id": "t1",
        "content": [block("out", CC)],
        "cache_control": CC,
    }
    use = {"type": "tool_use", "id": "t1", "name": "get", "input": {"cache_control": "no-cache"}}
    doc = {
        "type": "document",
        "source": {"type": "content", "content": [block("page", CC)]},
    }
    body = request(
        tools=[tool("get") | {"input_schema": schema, "cache_control": CC}],
        system=[block("Rules.", CC)],
        messages=[
            {"role": "user", "content": [block("Go.", CC)]},
            {"role": "assistant", "content": [use]},
            {"role": "user", "content": [result, doc]},
        ],
    ) | {"cache_control": CC}
    bare = strip_markers(body)
    assert has_markers(body) and not has_markers(bare)
    turn = bare["messages"][2]["content"]
    for holder in (bare, bare["tools"][0], bare["system"][0], turn[0], turn[0]["content"][0]):
        assert "cache_control" not in holder
    assert "cache_control" not in turn[1]["source"]["content"][0]
    assert bare["tools"][0]["input_schema"] == schema  # content, kept
    assert bare["messages"][1]["content"][0]["input"] == {"cache_control": "no-cache"}
    assert "cache_control" in body["tools"][0]  # a copy: the caller's body is untouched
    assert not has_markers(request(tools=[tool("get") | {"input_schema": schema}]))


# -- identity: equal prefix hashes must mean equal prompts (a review found four collisions) ----


def test_a_text_documents_data_is_part_of_its_identity() -> None:
    def doc(data: str) -> dict[str, Any]:
        source = {"type": "text", "media_type": "text/plain", "data": data}
        return request(
            messages=[{"role": "user", "content": [{"type": "document", "source": source}]}]
        )

    assert hashes(doc("One contract.")) != hashes(doc("Another contract."))


def test_an_object_typed_text_inside_a_schema_keeps_all_its_keys() -> None:
    def lookup(note: str) -> dict[str, Any]:
        default = {"type": "text", "text": "hi", "note": note}
        schema = {"type": "object", "properties": {"q": {"type": "object", "default": default}}}
        return request(tools=[tool("lookup") | {"input_schema": schema}])

    assert hashes(lookup("a"))[0] != hashes(lookup("b"))[0]


def test_a_turn_whose_thinking_is_dropped_still_starts_a_turn() -> None:
    # On a model that keeps only the last turn's thinking, an earlier assistant turn's text is
    # not the user's: the same blocks in one user turn render with other separators.
    x = "An answer."
    thinking = {"type": "thinking", "thinking": "hmm", "signature": "s"}
    turns = [
        {"role": "user", "content": "Q?"},
        {"role": "assistant", "content": [thinking, block(x)]},
        {"role": "user", "content": "Next?"},
    ]
    merged = [
        {"role": "user", "content": [block("Q?"), block(x)]},
        {"role": "user", "content": "Next?"},
    ]
    a = request(model="claude-sonnet-4-5", messages=turns)
    b = request(model="claude-sonnet-4-5", messages=merged)
    assert hashes(a)[1:] != hashes(b)[1:]


@pytest.mark.parametrize("nothing", [[], ""])
def test_a_message_with_no_content_is_rejected_with_the_api_text(nothing: Any) -> None:
    empty = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": nothing}]
    parse_request(request(messages=empty))  # the final assistant message may be empty
    with pytest.raises(InvalidRequest, match="all messages must have non-empty content") as e:
        parse_request(request(messages=[*empty, {"role": "user", "content": "More?"}]))
    assert e.value.path == "/messages/1/content"
    with pytest.raises(InvalidRequest, match="content: Field required"):
        parse_request(request(messages=[{"role": "user"}]))


def test_a_marker_on_a_message_object_is_the_apis_extra_inputs_error() -> None:
    turn = {"role": "user", "content": "Q?", "cache_control": CC}
    with pytest.raises(InvalidRequest, match=r"messages\.0\.cache_control: Extra inputs"):
        parse_request(request(messages=[turn]))


def test_equal_prefix_hashes_mean_equal_token_counts_whatever_was_dropped() -> None:
    # A review's case: turns whose blocks are all dropped thinking still leave separators.
    thinking = {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": "h", "signature": "s"}],
    }
    first, last = {"role": "user", "content": "Q?"}, {"role": "user", "content": "Second question."}
    one = parse_request(request(model="claude-haiku-4-5", messages=[first, thinking, last]))
    two = parse_request(
        request(model="claude-haiku-4-5", messages=[first, thinking, thinking, last])
    )
    for a, b in zip(one.positions, two.positions, strict=False):
        assert a.prefix_hash != b.prefix_hash or a.cumulative == b.cumulative


def test_a_blocks_key_order_changes_neither_its_identity_nor_its_count() -> None:
    query = {"query": "weather in Paris."}
    use = {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": query}
    reordered = {
        "type": "server_tool_use",
        "id": "srvtoolu_01",
        "input": query,
        "name": "web_search",
    }

    def turns(block: dict[str, Any]) -> dict[str, Any]:
        return request(
            messages=[
                {"role": "user", "content": "Search."},
                {"role": "assistant", "content": [block]},
            ]
        )

    a, b = parse_request(turns(use)), parse_request(turns(reordered))
    assert [(p.prefix_hash, p.cumulative) for p in a.positions] == [
        (p.prefix_hash, p.cumulative) for p in b.positions
    ]


def test_citations_on_a_search_result_change_the_system_level() -> None:
    def turn(enabled: bool) -> dict[str, Any]:
        result = {
            "type": "search_result",
            "title": "Doc",
            "source": "https://example.com/doc",
            "content": [block("Paris is in France.")],
            "citations": {"enabled": enabled},
        }
        return request(system=[block("sys")], messages=[{"role": "user", "content": [result]}])

    assert hashes(turn(False))[0] != hashes(turn(True))[0]


def test_mid_conversation_system_messages_only_where_the_model_has_them() -> None:
    turns = [
        {"role": "user", "content": "Q?"},
        {"role": "assistant", "content": "A."},
        {"role": "system", "content": "From now on, be brief."},
        {"role": "user", "content": "Q2?"},
    ]
    parse_request(request(model="claude-opus-5", messages=turns))
    with pytest.raises(InvalidRequest, match='Unexpected role "system"'):
        parse_request(request(model="claude-sonnet-5", messages=turns))


def test_a_null_marker_is_no_marker() -> None:
    from cachewise.body import has_markers

    body = request(system=[block("Rules.", None) | {"cache_control": None}])
    assert not has_markers(body) and not parse_request(body).markers


def test_fast_mode_is_an_error_on_opus_4_7_and_standard_on_models_without_it() -> None:
    with pytest.raises(InvalidRequest, match="fast mode is not available") as e:
        parse_request(request(model="claude-opus-4-7", speed="fast"))
    assert e.value.path == "/speed"
    assert parse_request(request(model="claude-opus-4-6", speed="fast")).speed == "standard"
    assert parse_request(request(model="claude-opus-5", speed="fast")).speed == "fast"
