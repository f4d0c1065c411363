"""The pipeline's pieces that every wrapped or proxied call runs: what markers a body carries as
sent, and whether they are the breakpoints meant."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cachewise.body import marker_holders
from cachewise.pipeline import markers_of, wire_state

CC: dict[str, Any] = {"type": "ephemeral"}
CC_1H: dict[str, Any] = {"type": "ephemeral", "ttl": "1h"}


def test_markers_of_names_every_holder_the_api_reads_in_document_order() -> None:
    shared = {"type": "text", "text": "same object twice", "cache_control": CC}
    body = {
        "cache_control": CC,
        "tools": [{"name": "t0"}, {"name": "t1", "cache_control": CC_1H}],
        "system": [{"type": "text", "text": "s", "cache_control": CC}],
        "messages": [
            {"role": "user", "content": "a string holds no marker"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "x", "name": "t1", "input": {"cache_control": CC}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "x",
                        "content": [{"type": "text", "text": "r", "cache_control": CC}],
                    },
                    {
                        "type": "document",
                        "source": {"type": "content", "content": [shared]},
                        "cache_control": "not an object: no marker",
                    },
                    shared,
                ],
            },
        ],
    }
    assert markers_of(body) == [
        ("/cache_control", "5m"),
        ("/tools/1", "1h"),
        ("/system/0", "5m"),
        ("/messages/2/content/0/content/0", "5m"),
        ("/messages/2/content/1/source/content/0", "5m"),
        ("/messages/2/content/2", "5m"),  # its own place, though the same object came before
    ]


_blocks = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "tool_result", "image"]), "text": st.just("x")},
        optional={"cache_control": st.sampled_from([CC, CC_1H, None, "5m"])},
    ),
    max_size=4,
)


@given(
    system=_blocks,
    messages=st.lists(_blocks.map(lambda c: {"role": "user", "content": c}), max_size=4),
)
def test_markers_of_finds_what_marker_holders_holds(
    system: list[dict[str, Any]], messages: list[dict[str, Any]]
) -> None:
    body = {"model": "m", "system": system, "messages": messages}
    holders = [h for h in marker_holders(body) if isinstance(h.get("cache_control"), dict)]
    assert [ttl for _, ttl in markers_of(body)] == [
        h["cache_control"].get("ttl", "5m") for h in holders
    ]


def test_wire_state_ok_lost_changed() -> None:
    meant = [{"path": "/system/0", "ttl": "5m", "tokens": 2000}]
    assert wire_state(meant, [("/system/0", "5m")]) == "ok"
    assert wire_state(meant, []) == "lost"
    assert wire_state(meant, [("/system/0", "1h")]) == "changed"
    assert wire_state(None, []) is None


def test_a_marker_on_an_inner_block_is_its_blocks_breakpoint_on_the_wire() -> None:
    """The parser places a marker on a tool result's (or document's) last inner block at the
    block itself; what was sent holds it on the inner block, and that is not a lost marker."""
    from cachewise.pipeline import Pipeline

    result = [{"type": "text", "text": "Order 7731 shipped. " * 300, "cache_control": CC_1H}]
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 16,
        "messages": [
            {"role": "user", "content": "Where is order 7731?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "orders", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": result},
                    {"type": "document", "source": {"type": "content", "content": result}},
                ],
            },
        ],
    }
    pipeline = Pipeline(plan="off")
    call = pipeline.prepare(body)
    assert [b["path"] for b in call.intended or []] == [
        "/messages/2/content/0",
        "/messages/2/content/1",
    ]
    row = pipeline.row(call, usage={"input_tokens": 10, "output_tokens": 2}, sent=body)
    assert row is not None and row.wire == "ok"
    meant = [{"path": "/messages/2/content/0", "ttl": "1h", "tokens": 900}]
    assert wire_state(meant, [("/messages/2/content/0", "5m"), *markers_of(body)[:1]]) == "ok"
    assert wire_state(meant, [("/messages/2/content/0", "1h")]) == "ok"
    assert wire_state(meant, [("/messages/2/content/0/content/0", "5m")]) == "changed"


def test_a_sent_body_whose_block_type_is_not_hashable_is_still_recorded() -> None:
    """What was sent (a body with `extra_body` merged over it) is not validated: reading its
    markers must not fail on a "type" that is an object, or the call's row would be lost."""
    from cachewise.pipeline import Pipeline

    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}],
    }
    pipeline = Pipeline(plan="off")
    call = pipeline.prepare(body)
    odd = {
        **body,
        "messages": [{"role": "user", "content": [{"type": {"custom": 1}, "text": "hi"}]}],
    }
    row = pipeline.row(call, error="invalid_request_error", http_status=400, sent=odd)
    assert row is not None and row.wire == "ok"
