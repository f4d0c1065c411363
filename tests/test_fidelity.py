"""The structures of the recorded real calls (docs/fidelity.md), rebuilt with our own texts and
checked through the emulator against the recorded arithmetic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cachewise import parse_request
from cachewise.catalog import get_model
from cachewise.engine import Engine
from cachewise.errors import InputError
from cachewise.fidelity import extract_facts, replay
from cachewise.request import render_tool_use
from cachewise.testing import Emulator
from cachewise.tokens import default_tokenizer
from conftest import CC, block, request, text, tool

TOK = default_tokenizer()

# The recordings use models the SDK now warns about; replaying them is the point.
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


def C(s: str, version: str = "3.0", slot: str = "user") -> int:
    return TOK.count(s, version, slot)  # type: ignore[arg-type]


def usage(m: Any) -> tuple[int, int, int]:
    u = m.usage
    return u.cache_read_input_tokens or 0, u.cache_creation_input_tokens or 0, u.input_tokens


@pytest.fixture
def client() -> Any:
    with Emulator() as emu:
        yield emu.client()


def test_one_marked_message_then_a_follow_up(client: Any) -> None:
    """pydantic-ai cache_messages: write everything but the 3-token tail, then read it back."""
    q1, a1, q2 = text(900, "question"), "An answer.", text(300, "follow-up")
    first = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=50,
        messages=[{"role": "user", "content": [block(q1, CC)]}],
    )
    assert usage(first) == (0, 4 + C(q1), 3)
    second = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=50,
        messages=[
            {"role": "user", "content": [block(q1)]},
            {"role": "assistant", "content": a1},
            {"role": "user", "content": [block(q2, CC)]},
        ],
    )
    assert usage(second) == (4 + C(q1), 3 + C(a1) + 3 + C(q2), 3)


def test_multi_turn_with_a_moving_breakpoint_and_string_content(client: Any) -> None:
    """Mirascope multi-turn: no marker, then a marker on the last block, then the same turn sent
    as a plain string reads exactly the previous prefix."""
    doc, q2 = text(900, "document"), "And the summary?"
    model = "claude-sonnet-4-0"
    plain = client.messages.create(
        model=model, max_tokens=20, messages=[{"role": "user", "content": doc}]
    )
    assert usage(plain) == (0, 0, 7 + C(doc))
    marked = client.messages.create(
        model=model, max_tokens=20, messages=[{"role": "user", "content": [block(doc, CC)]}]
    )
    assert usage(marked) == (0, 4 + C(doc), 3)
    third = client.messages.create(
        model=model,
        max_tokens=20,
        messages=[
            {"role": "user", "content": doc},
            {"role": "assistant", "content": "Read it."},
            {"role": "user", "content": [block(q2, CC)]},
        ],
    )
    assert usage(third)[0] == 4 + C(doc)
    assert usage(third)[2] == 3


def test_system_breakpoint_two_before_five_after(client: Any) -> None:
    """Mirascope system message: written = 2 + C_sys(system), input = C(user) + 5."""
    system = "\n" + text(900, "instructions")
    for question in ("What now?", "And then?"):
        m = client.messages.create(
            model="claude-sonnet-4-0",
            max_tokens=20,
            system=[block(system, CC)],
            messages=[{"role": "user", "content": question}],
        )
        cached = 2 + C(system, slot="system")
        assert usage(m)[0] + usage(m)[1] == cached and usage(m)[2] == C(question) + 5


def test_opus_4_8_system_and_remainder(client: Any) -> None:
    """pydantic-ai mid-conversation system: 6 + 1 with a system prompt, remainder 2."""
    system, q = text(1200, "rules"), "Begin."
    m = client.messages.create(
        model="claude-opus-4-8",
        max_tokens=20,
        system=system,
        messages=[{"role": "user", "content": [block(q, CC)]}],
    )
    read, write, inp = usage(m)
    assert read + write + inp == 6 + 1 + C(system, "4.8", "system") + C(q, "4.8")
    assert inp == 2


def test_count_tokens_equals_the_messages_total(client: Any) -> None:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Why cache?"}],
    }
    counted = client.messages.count_tokens(**body).input_tokens
    m = client.messages.create(max_tokens=10, **body)
    assert counted == sum(usage(m)) == 7 + C("Be brief.", slot="system") + C("Why cache?")


def test_identical_calls_read_what_the_first_wrote(client: Any) -> None:
    kw: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [block(text(1200, "x"), CC)]}],
    }
    first, second = client.messages.create(**kw), client.messages.create(**kw)
    assert usage(second)[0] == usage(first)[1]


def test_reply_output_is_content_plus_three(client: Any) -> None:
    m = client.messages.create(
        model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "Hello"}]
    )
    assert m.usage.output_tokens == C(m.content[0].text) + 3


# -- tool framing: each rule below was learned from recorded calls (docs/fidelity.md) ----------


def _engine_usage(body: dict[str, Any]) -> tuple[int, int, int]:
    u = Engine().account(parse_request(body), now=0).usage
    return u.cache_read_input_tokens, u.cache_creation_input_tokens, u.input_tokens


def _function(tool_: dict[str, Any]) -> str:
    """The rendering the recordings fit, rebuilt independently of `render_tool`."""
    fields = {"name": tool_["name"], "parameters": tool_["input_schema"]}
    if tool_.get("description"):
        fields["description"] = tool_["description"]
    return f"<function>{json.dumps(fields, sort_keys=True)}</function>\n"


def test_each_tool_is_one_function_element_of_sorted_json() -> None:
    """sonnet-4-0, one to three tools, tool_choice any: the same tool-use prompt size fits every
    count once each tool is its own element, with one token between two elements."""
    model = "claude-sonnet-4-0"
    f = get_model(model).framing
    tools = [tool("alpha"), tool("beta"), tool("gamma")]
    tools[1]["input_schema"] = {"required": ["query"], **tools[1]["input_schema"]}  # unsorted
    q = "Which records?"
    p = parse_request(request(model=model, tools=tools, messages=[{"role": "user", "content": q}]))
    counts = [C(_function(t)) for t in tools]
    assert [x.tokens for x in p.positions[:3]] == [
        f.start + f.tools_before + counts[0],
        f.tools_between + counts[1],
        f.tools_between + counts[2],
    ]
    assert p.total_tokens == (
        f.start + f.tools_before + sum(counts) + 2 * f.tools_between + f.tools_after
        + f.messages_start + C(q) + f.tail
    )  # fmt: skip


def test_a_tool_description_is_counted_with_non_ascii_escaped() -> None:
    """Mirascope's tool breakpoint (sonnet-4-0): a description with two emoji and three dashes
    wrote 17 tokens more than its unescaped JSON; escaped, the write is exact."""
    t = tool("lore") | {
        "description": "Scrolls \U0001f4dc of the archive \u2014 read them \u2014 twice."
    }
    p = parse_request(request(model="claude-sonnet-4-0", tools=[t]))
    f = p.model.framing
    escaped = _function(t)
    assert "\\u2014" in escaped and "\\ud83d" in escaped
    assert p.positions[0].tokens == f.start + f.tools_before + C(escaped)
    assert C(escaped) > C(escaped.encode().decode("unicode_escape"))


def test_an_empty_tool_description_is_left_out() -> None:
    """llm-anthropic's pelican tool (3.5 Haiku): with `"description": ""` rendered, the tool-use
    prompt came out 4 tokens smaller than for every described tool; left out, it fits."""
    bare = {
        "name": "namer",
        "description": "",
        "input_schema": {"type": "object", "properties": {}},
    }
    p = parse_request(request(model="claude-3-5-haiku-20241022", tools=[bare]))
    f = p.model.framing
    assert p.positions[0].tokens == f.start + f.tools_before + C(_function(bare))
    assert "description" not in _function(bare)


def test_a_tool_breakpoint_leaves_the_rest_of_the_tool_prompt_uncached() -> None:
    """ruby_llm's cached tool (3.5 Haiku): write = the prompt's head and the tool, input = its
    tail (134 tokens on 3.5 Haiku) and the turn: recorded 2,445 / 145, now exact."""
    model = "claude-3-5-haiku-20241022"
    f = get_model(model).framing
    t = tool("architect", CC) | {"description": text(2400, "guidance")}
    q = "Tell me about caching."
    read, write, inp = _engine_usage(
        request(model=model, tools=[t], messages=[{"role": "user", "content": q}])
    )
    assert (read, write) == (0, f.start + f.tools_before + C(_function(t)))
    assert inp == f.tools_after + f.messages_start + C(q) + f.tail


@pytest.mark.parametrize("choice", [{"type": "any"}, {"type": "tool", "name": "alpha"}])
def test_a_forced_tool_choice_is_uncached_after_the_last_breakpoint(choice: dict[str, Any]) -> None:
    """A forced tool_choice left its tokens uncached behind a breakpoint on the last block (21
    more input than auto, recorded); it is rendered after the last block, not before the first
    message, so a breakpoint on the last block writes what auto writes."""
    model = "claude-sonnet-4-5"
    msgs = [{"role": "user", "content": [block(text(1200, "task"), CC)]}]
    base = request(model=model, tools=[tool("alpha")], messages=msgs)
    auto = _engine_usage(base)
    forced = _engine_usage({**base, "tool_choice": choice})
    extra = get_model(model).tool_frame(choice["type"])[2]
    assert extra > 0
    assert forced == (auto[0], auto[1], auto[2] + extra)


def test_a_tool_round_is_counted_as_call_elements_and_results() -> None:
    """Tool rounds of four models: a call is its call element (one parameter element per input
    key) after the calls block's tags; a result is its content plus a few tokens."""
    model = "claude-haiku-4-5"
    f = get_model(model).framing
    q = [{"role": "user", "content": "Weather in Lyon and Nantes?"}]
    calls = [
        {"type": "tool_use", "id": f"toolu_{c}", "name": "weather", "input": {"city": c, "days": 2}}
        for c in ("Lyon", "Nantes")
    ]
    results = [
        {"type": "tool_result", "tool_use_id": f"toolu_{c}", "content": f"{c}: 18C, dry."}
        for c in ("Lyon", "Nantes")
    ]
    turn = [{"role": "assistant", "content": calls}, {"role": "user", "content": results}]
    tools = [tool("weather")]
    before = parse_request(request(model=model, tools=tools, messages=q)).total_tokens
    after = parse_request(request(model=model, tools=tools, messages=q + turn)).total_tokens
    rendered = [render_tool_use(c, f) for c in calls]
    assert '"days":' not in rendered[0] and ">2<" in rendered[0]  # elements, not JSON
    assert after - before == (
        2 * f.message_separator
        + f.tool_calls_extra + sum(C(r) for r in rendered)
        + 2 * f.tool_result_extra + f.parallel_result_extra
        + sum(C(r["content"]) for r in results)
    )  # fmt: skip


# -- facts: recordings kept as digests and counts --------------------------------------------


def _recordings() -> list[dict[str, Any]]:
    system = text(300, "house rules")
    tools = [tool("alpha", CC)]
    q1 = [{"role": "user", "content": [block(text(900, "question"), CC)]}]
    turn = [
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "alpha", "input": {"query": "x"}}
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "found",
             "cache_control": CC}
        ]},
    ]  # fmt: skip
    bodies = [
        request(model="claude-sonnet-4-0", system=system, tools=tools, messages=q1),
        request(model="claude-sonnet-4-0", system=system, tools=tools, messages=q1 + turn),
    ]
    source = {"repo": "ours/synthetic", "path": "tests/cassettes/round.yaml", "commit": "0" * 40}
    return [
        {
            "source": {**source, "interaction_index": i},
            "endpoint": "messages",
            "model": "claude-sonnet-4-0",
            "platform": "anthropic",
            "request": body,
            "usage": {"input_tokens": 3, "cache_creation_input_tokens": 1000 * (i + 1)},
        }
        for i, body in enumerate(bodies)
    ]


def test_facts_replay_as_the_bodies_do_and_hold_no_text() -> None:
    recs = _recordings()
    facts = extract_facts(recs)
    dumped = json.dumps(facts)
    assert "house rules" not in dumped and "found" not in dumped and "Look up" not in dumped
    with_bodies, with_facts = replay({"recordings": recs}), replay(facts)
    assert [o.ours for o in with_facts] == [o.ours for o in with_bodies]
    assert with_facts[1].ours[0] > 0  # the second call reads what the first wrote


def test_a_text_counted_differently_asks_for_new_facts() -> None:
    facts = extract_facts(_recordings())
    facts["counts"] = dict(list(facts["counts"].items())[1:])
    with pytest.raises(InputError, match="regenerate the facts"):
        replay(facts)


def test_the_kept_facts_replay_with_every_pattern_agreeing() -> None:
    """The recordings docs/fidelity.md reports on: every write/read pattern agrees."""
    facts = json.loads((Path(__file__).parents[1] / "bench" / "fidelity-facts.json").read_text())
    outcomes = replay(facts)
    assert len(outcomes) == len(facts["recordings"]) > 0
    assert all(o.pattern_ok for o in outcomes)


def test_with_a_system_prompt_the_tool_prompt_ends_after_it() -> None:
    """ruby_llm's three breakpoints (3.5 Haiku): tools, system and user marked; the next call
    read 2,445 + 2,104: the tools prefix and only 5 of the tool prompt's 134 closing tokens
    before the system text, the other 129 after it."""
    model = "claude-3-5-haiku-20241022"
    f = get_model(model).framing
    t = tool("architect", CC) | {"description": text(2400, "guidance")}
    system = [block(text(2400, "rules"), CC)]
    msgs = [{"role": "user", "content": [block(text(50, "ask"), CC)]}]
    p = parse_request(request(model=model, tools=[t], system=system, messages=msgs))
    tool_pos, system_pos = p.positions[0], p.positions[1]
    assert system_pos.tokens == (
        f.tools_after - f.tools_after_system + C(system[0]["text"], slot="system")
    )
    assert p.positions[2].tokens == f.tools_after_system + f.messages_start + C(
        msgs[0]["content"][0]["text"]
    )
    assert tool_pos.tokens == f.start + f.tools_before + C(_function(t))


@pytest.mark.parametrize("model", ["claude-3-5-haiku-20241022", "claude-haiku-4-5"])
def test_a_tool_result_given_as_blocks_costs_more_than_as_a_string(model: str) -> None:
    """ruby_llm sends results as a list of text blocks; on both Haikus those rounds cost more
    than pydantic-ai's string results of the same shape."""
    f = get_model(model).framing
    use = {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}

    def total(content: Any) -> int:
        result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": content}
        msgs = [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [use]},
            {"role": "user", "content": [result]},
        ]
        return parse_request(
            request(model=model, tools=[tool("weather")], messages=msgs)
        ).total_tokens

    as_blocks = total([{"type": "text", "text": "Oslo: 4C, snow."}])
    assert f.tool_result_block_extra > 0
    assert as_blocks - total("Oslo: 4C, snow.") == f.tool_result_block_extra


def test_thinking_adds_its_configuration_and_wraps_kept_blocks() -> None:
    """pydantic-ai's tool run with thinking on (sonnet-4-0): 30 more tokens with thinking
    enabled, and a kept thinking block costs 8 over its text."""
    model = "claude-sonnet-4-0"
    f = get_model(model).framing
    thought = "I should look the country up first."
    msgs = [
        {"role": "user", "content": "Largest city?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": thought, "signature": "sig"},
            {"type": "tool_use", "id": "toolu_1", "name": "country", "input": {}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Mexico"}
        ]},
    ]  # fmt: skip
    body = request(model=model, tools=[tool("country")], messages=msgs)
    off = parse_request(body)
    on = parse_request({**body, "thinking": {"type": "enabled", "budget_tokens": 2000}})
    assert on.total_tokens - off.total_tokens == f.thinking_extra > 0
    kept = next(p for p in on.positions if p.kind == "thinking")
    assert kept.tokens == f.message_separator + f.thinking_block_extra + C(thought)


def test_a_request_with_tools_and_a_system_prompt_costs_a_token_more() -> None:
    """pydantic-ai's prompted_output (sonnet-4-5) and ruby_llm's dice (4.5 Haiku): the same tools
    cost one token more with a system prompt than their calls without one predict."""
    model = "claude-sonnet-4-5"
    f = get_model(model).framing
    system = "Answer in one word."
    bare = parse_request(request(model=model, tools=[tool("alpha")]))
    with_system = parse_request(request(model=model, tools=[tool("alpha")], system=system))
    alone = parse_request(request(model=model, system=system))
    plain = parse_request(request(model=model))
    assert f.tools_system_extra == 1
    assert (with_system.total_tokens - bare.total_tokens) == (
        alone.total_tokens - plain.total_tokens + f.tools_system_extra
    )
