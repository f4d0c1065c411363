"""Whatever JSON arrives, parsing answers with a Prompt or the API's 400, never a crash: blocks
of any keys and values at once. The emulator's side, and the grammar-based fuzzing of every face,
are in test_fuzz.py."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cachewise import Engine, InvalidRequest, parse_request
from conftest import examples

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
block_types = st.sampled_from(
    [
        "text",
        "image",
        "document",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
        "search_result",
        "server_tool_use",
        "weird",
    ]
)
keys = st.sampled_from(
    [
        "type",
        "text",
        "content",
        "source",
        "input",
        "name",
        "cache_control",
        "thinking",
        "data",
        "citations",
        "title",
    ]
)
blocks = st.dictionaries(keys, json_values, max_size=5).flatmap(
    lambda d: block_types.map(lambda t: {**d, "type": t})
)
markers = st.sampled_from(
    [
        None,
        {"type": "ephemeral"},
        {"type": "ephemeral", "ttl": "1h"},
        {"type": "ephemeral", "ttl": "2h"},
        {"type": "other"},
        "yes",
        3,
    ]
)


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": draw(st.sampled_from(["claude-sonnet-4-6", "claude-opus-4-8"])),
        "max_tokens": draw(st.sampled_from([0, 1, 100])),
    }
    content = st.one_of(
        st.text(max_size=10), st.lists(blocks | json_values, max_size=4), json_values
    )
    body["messages"] = draw(
        st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {"role": st.sampled_from(["user", "assistant", "x"]), "content": content}
                ),
                max_size=4,
            ),
            json_values,
        )
    )
    if draw(st.booleans()):
        body["system"] = draw(
            st.one_of(st.text(max_size=10), st.lists(blocks, max_size=3), json_values)
        )
    if draw(st.booleans()):
        body["tools"] = draw(
            st.one_of(
                st.lists(
                    st.dictionaries(
                        st.sampled_from(
                            [
                                "name",
                                "description",
                                "input_schema",
                                "cache_control",
                                "type",
                                "strict",
                                "defer_loading",
                            ]
                        ),
                        json_values,
                        max_size=5,
                    ),
                    max_size=3,
                ),
                json_values,
            )
        )
    for key in ("tool_choice", "thinking", "output_config", "cache_control"):
        if draw(st.booleans()):
            body[key] = draw(json_values | markers)
    if draw(st.booleans()):
        body["tools"] = [{"name": "a", "input_schema": draw(json_values)}]
        body["tool_choice"] = draw(
            st.sampled_from(
                [{"type": "any"}, {"type": "tool", "name": "a"}, {"type": "tool", "name": "b"}]
            )
        )
    return body


@settings(max_examples=examples(400), deadline=None)
@given(bodies())
def test_any_body_parses_or_is_a_clean_invalid_request(body: dict[str, Any]) -> None:
    try:
        prompt = parse_request(body)
        Engine().account(prompt, now=0)
    except InvalidRequest as exc:
        assert exc.message and exc.status == 400
