"""Positions' identities: the same digests, hashes and counts whatever path computes them."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachewise import parse_request
from cachewise.catalog import catalog
from cachewise.identity import DigestMemo, canon, digest, plain, render
from conftest import CC, block, request, text, tool

ROOT = Path(__file__).parent.parent

# Every position's (digest, prefix hash, tokens) over `_corpus()` and one model per framing,
# hashed: an identity is what ledgers, fleets and caches of other versions compare against, so
# changing how one is computed must not change what it is. Computed by the code before the
# digest memo (identity.py) existed.
GOLDEN = "2efa0ad1f263e183ffad7bf5ca7588b562565a03d038124aa703b07d160d67d9"


def _corpus() -> list[dict[str, Any]]:
    rows = [
        json.loads(line) for line in (ROOT / "docs/examples/trace.jsonl").read_text().splitlines()
    ]
    results = [
        {"type": "tool_result", "tool_use_id": "t1", "content": "Order 7731 shipped 2026-11-02."},
        {
            "type": "tool_result",
            "tool_use_id": "t2",
            "content": [block("Refund RF-88 of $12.40."), block("Second part.", CC)],
            "is_error": True,
        },
        {"type": "tool_result", "tool_use_id": "t3"},
        {
            "type": "tool_result",
            "tool_use_id": "t4",
            "content": [{"type": "text", "text": "cited", "citations": None}],
        },
    ]
    calls = [
        {"type": "tool_use", "id": f"t{i}", "name": "lookup", "input": {"q": f"INV-{i}"}}
        for i in range(1, 5)
    ]
    agent = request(
        tools=[tool("orders"), tool("refunds", CC)],
        system=[block(text(300, "policy"), CC), block("Today is 2026-12-02.")],
        messages=[
            {"role": "user", "content": text(200, "question")},
            {"role": "user", "content": [block("Same role again, 4 of 9.")]},
            {"role": "assistant", "content": calls},
            {"role": "user", "content": results},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "Done.", "citations": []}],
            },
            {"role": "user", "content": [block(" \n "), block(text(50, "tail"), CC)]},
        ],
    )
    return [row["request"] for row in rows] + [agent, request(system="A system string.")]


def _framings_models() -> list[str]:
    seen: dict[str, str] = {}
    for model in catalog().models:
        seen.setdefault(model.framing.name, model.id)
    return sorted(seen.values())


def _fingerprint() -> str:
    h = hashlib.sha256()
    for model in _framings_models():
        for body in _corpus():
            for p in parse_request({**body, "model": model}).positions:
                h.update(f"{p.digest}{p.prefix_hash}{p.tokens}\n".encode())
    return h.hexdigest()


def test_identities_hashes_and_counts_are_those_of_before() -> None:
    assert _fingerprint() == GOLDEN


def test_a_second_parse_from_the_memo_is_the_first_one() -> None:
    body = _corpus()[-2]
    first = parse_request(body).positions
    again = parse_request(json.loads(json.dumps(body))).positions  # new string objects
    assert [(p.digest, p.prefix_hash, p.tokens) for p in again] == [
        (p.digest, p.prefix_hash, p.tokens) for p in first
    ]


texts = st.text(max_size=40)
blocks = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, texts),
    st.builds(
        lambda i, c, e: {"type": "tool_result", "tool_use_id": i, "content": c, "is_error": e},
        texts,
        st.one_of(texts, st.lists(texts.map(lambda t: {"type": "text", "text": t}), max_size=3)),
        st.booleans(),
    ),
)


@given(blocks, st.sampled_from(["user", "assistant", None]), st.sampled_from(["", "\x00blocks"]))
def test_the_memo_gives_the_digest_it_would_compute(
    b: dict[str, Any], role: str | None, suffix: str
) -> None:
    parts = plain(b, role)
    assert parts is not None
    memo = DigestMemo()
    expected = digest("messages", render(parts) + suffix)
    assert memo.digest("messages", parts, suffix) == expected
    assert memo.digest("messages", parts, suffix) == expected  # and again, from the memo
    assert memo.digest("system", parts, suffix) == digest("system", render(parts) + suffix)


@given(st.text(max_size=64), st.text(max_size=64), st.integers(0, 10**6))
def test_the_memo_chains_prefix_hashes_as_sha256_does(prefix: str, d: str, tokens: int) -> None:
    memo = DigestMemo()
    expected = hashlib.sha256(f"{prefix}{d}\x00{tokens}".encode()).hexdigest()
    assert memo.chain(prefix, d, tokens) == expected
    assert memo.chain(prefix, d, tokens) == expected


def test_a_text_and_a_result_of_the_same_string_are_different_blocks() -> None:
    memo = DigestMemo()
    as_text = plain({"type": "text", "text": "x"}, "user")
    as_result = plain({"type": "tool_result", "tool_use_id": "x", "content": "x"}, "user")
    assert as_text is not None and as_result is not None
    assert memo.digest("messages", as_text) != memo.digest("messages", as_result)


def test_the_memo_holds_at_most_its_budget_and_forgets_the_oldest_first() -> None:
    memo = DigestMemo(max_chars=10 * (DigestMemo.ENTRY_OVERHEAD + 100))
    parts = [plain({"type": "text", "text": f"{i:0100d}"}, None) for i in range(50)]
    for p in parts:
        assert p is not None
        memo.digest("messages", p)
    assert len(memo) == 10 and memo.chars <= memo.max_chars
    assert ("messages", "", parts[-1]) in memo._digests
    assert ("messages", "", parts[0]) not in memo._digests


def test_a_block_with_more_than_plain_text_takes_the_general_form() -> None:
    assert plain({"type": "text", "text": "x", "citations": []}, None) is None
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    assert plain({"type": "tool_result", "tool_use_id": "t", "content": [image]}, None) is None


def test_an_entry_costs_no_more_memory_than_it_is_charged() -> None:
    import tracemalloc

    memo = DigestMemo(max_chars=10**12)
    texts = [f"Invoice INV-{i} " * 8 for i in range(2_000)]
    parts = [plain({"type": "text", "text": t}, "user") for t in texts]
    tracemalloc.start()
    try:
        for p in parts:
            assert p is not None
            memo.digest("messages", p)
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert used / len(parts) <= DigestMemo.ENTRY_OVERHEAD  # the texts were there already


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_the_canonical_encoder_is_json_dumps(value: Any) -> None:
    assert canon(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_the_canonical_encoder_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        canon({"when": object()})


def test_a_tools_digest_from_the_memo_is_its_envelopes_whatever_its_markers_and_key_order() -> None:
    from cachewise.identity import envelope, tool_digest

    t = tool("orders")
    reordered = dict(reversed(list(t.items())))
    marked = {**t, "cache_control": CC}
    expected = digest("tools", canon(envelope(t)))
    assert tool_digest(t) == tool_digest(reordered) == tool_digest(marked) == expected
    assert tool_digest(t) == expected  # again, from the memo


def test_a_tool_calls_identity_is_its_id_name_and_input() -> None:
    from cachewise.identity import tool_use

    call = tool_use("assistant", "toolu_01", "lookup", '{"q":"INV-7"}')
    assert render(call) == '\x01assistant\x00tool_use\x00toolu_01\x00lookup\x00{"q":"INV-7"}'
    memo = DigestMemo()
    assert memo.digest("messages", call) == digest("messages", render(call))


def test_a_str_enum_is_identified_by_its_value_whichever_came_first() -> None:
    """JSON sends a str subclass by its value, so its identity is the plain string's; its
    `format` ("Said.HELLO") must not reach the memo's key or the rendering."""
    from enum import Enum

    said = f"Hello from account 88213, invoice INV-7 ({uuid.uuid4()})"  # new to the memo
    # Not StrEnum: a (str, Enum) formats as its name, which is what must not leak.
    role = Enum("Role", {"USER": "user"}, type=str).USER
    text = Enum("Said", {"HELLO": said}, type=str).HELLO
    assert f"{text}" != said

    def positions(role: Any, text: Any) -> list[tuple[str, str]]:
        body = request(messages=[{"role": role, "content": [{"type": "text", "text": text}]}])
        return [(p.digest, p.prefix_hash) for p in parse_request(body).positions]

    enum_first = positions(role, text)
    assert enum_first[0][0] == digest("messages", f"\x01user\x00text\x00{said}")
    assert positions("user", said) == enum_first
