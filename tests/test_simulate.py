"""Strategies put markers where their peers do; the oracle is a lower bound; the seed batch."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachewise import InputError, InvalidRequest, UnknownModel, parse_request
from cachewise.body import strip_markers
from cachewise.plan import plan
from cachewise.request import Prompt
from cachewise.simulate import oracle_bound, replay_strategy, simulate
from cachewise.strategies import STRATEGIES
from cachewise.trace import Row, rows_from
from conftest import CC, block, examples, request, text, tool

SYSTEM = text(1500, "sim")


def markers(body: dict[str, Any]) -> list[str]:
    found = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            if "cache_control" in value:
                found.append(path or "/")
            for k, v in value.items():
                walk(v, f"{path}/{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}/{i}")

    walk(body, "")
    return found


CONVO = request(
    tools=[tool("a"), tool("b")],
    system=[block(SYSTEM)],
    messages=[
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "Q2"},
    ],
)

EXPECTED = {
    "none": [],
    "as-is": [],
    "seed": ["/system/0"],
    "auto": ["/"],
    "litellm": ["/system/0", "/messages/2/content/0"],
    "langchain": ["/", "/tools/1", "/system/0"],
    "pydantic-ai": ["/", "/tools/1", "/system/0"],
    "pydantic-ai-messages": ["/tools/1", "/system/0", "/messages/2/content/0"],
    "spring-system-and-tools": ["/tools/1", "/system/0"],
    "spring-conversation-history": ["/tools/1", "/system/0", "/messages/2/content/0"],
}

# The same conversation as the client marked it: a marker on its first question.
MARKED = CONVO | {
    "messages": [{"role": "user", "content": [block("Q1", CC)]}, *CONVO["messages"][1:]]
}

EXPECTED_WHEN_MARKED = {
    "none": [],
    "as-is": ["/messages/0/content/0"],
    "seed": ["/system/0"],
    "auto": ["/"],
    "litellm": ["/messages/0/content/0"],  # the default points stand down
    "langchain": ["/", "/tools/1", "/system/0", "/messages/0/content/0"],  # added on top
    "pydantic-ai": ["/", "/tools/1", "/system/0", "/messages/0/content/0"],  # a CachePoint
    "pydantic-ai-messages": [
        "/tools/1",
        "/system/0",
        "/messages/0/content/0",
        "/messages/2/content/0",
    ],
    "spring-system-and-tools": ["/tools/1", "/system/0"],  # Spring never sees raw markers
    "spring-conversation-history": ["/tools/1", "/system/0", "/messages/2/content/0"],
}


def test_each_strategy_marks_what_its_peer_marks() -> None:
    for name, expected in EXPECTED.items():
        assert sorted(markers(STRATEGIES[name](CONVO, []))) == sorted(expected), name
    for name, expected in EXPECTED_WHEN_MARKED.items():
        assert sorted(markers(STRATEGIES[name](MARKED, []))) == sorted(expected), name


def test_spring_conversation_history_marks_the_question_not_the_tool_round() -> None:
    body = request(
        tools=[tool("a")],
        messages=[
            {"role": "user", "content": [block("Look it up."), {"type": "image", "source": {}}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "a", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}],
            },
        ],
    )
    sent = STRATEGIES["spring-conversation-history"](body, [])
    assert sorted(markers(sent)) == ["/messages/0/content/0", "/tools/0"]


def test_pydantic_ai_marks_the_last_tool_that_is_not_deferred() -> None:
    body = CONVO | {"tools": [tool("a"), tool("b") | {"defer_loading": True}]}
    assert "/tools/0" in markers(STRATEGIES["pydantic-ai"](body, []))


def test_litellm_leaves_an_empty_final_assistant_turn_empty() -> None:
    body = CONVO | {"messages": [*CONVO["messages"], {"role": "assistant", "content": ""}]}
    sent = STRATEGIES["litellm"](body, [])
    assert [p.prefix_hash for p in parse_request(sent).positions] == [
        p.prefix_hash for p in parse_request(body).positions
    ]


def test_every_strategy_changes_markers_and_nothing_else() -> None:
    # The replay compares costs of the same traffic: a strategy that touched content (say a
    # schema property named cache_control) would be pricing other requests. A string turned
    # into one text block to carry a marker renders the same, so prompts are compared.
    schema = {"type": "object", "properties": {"cache_control": {"type": "string"}}}
    body = CONVO | {"tools": [tool("a") | {"input_schema": schema}, tool("b")]}
    history = [Row(CONVO, started_at=0.0)]
    for name, strategy in STRATEGIES.items():
        sent, given = parse_request(strategy(body, history, 60.0)), parse_request(body)
        assert sent.total_tokens == given.total_tokens, name
        assert [p.prefix_hash for p in sent.positions] == [p.prefix_hash for p in given.positions]
        assert body["tools"][0]["input_schema"] == schema, name  # the caller's body untouched


def cache_points(n: int, ttl: str = "5m") -> dict[str, Any]:
    """A conversation whose every user turn ends in a CachePoint (pydantic-ai keeps them in
    its history), the last one on the request's last block."""
    marker = CC if ttl == "5m" else {"type": "ephemeral", "ttl": "1h"}
    messages: list[dict[str, Any]] = []
    for i in range(n):
        messages.append({"role": "user", "content": [block(f"m{i}", marker)]})
        if i < n - 1:
            messages.append({"role": "assistant", "content": f"a{i}"})
    return request(tools=[tool("a")], system=SYSTEM, messages=messages)


def test_pydantic_ai_drops_automatic_caching_for_a_cache_point_on_the_last_block() -> None:
    sent = STRATEGIES["pydantic-ai"](cache_points(2), [])
    assert sorted(markers(sent)) == [
        "/messages/0/content/0",
        "/messages/2/content/0",
        "/system/0",
        "/tools/0",
    ]


def test_pydantic_ai_trims_the_oldest_cache_points_to_fit_four() -> None:
    # System and tool markers are kept; two slots are left for the newest CachePoints.
    sent = STRATEGIES["pydantic-ai"](cache_points(4), [])
    assert sorted(markers(sent)) == [
        "/messages/4/content/0",
        "/messages/6/content/0",
        "/system/0",
        "/tools/0",
    ]
    # An earlier CachePoint leaves the automatic marker: one slot for the newest CachePoint.
    body = cache_points(3)
    body["messages"].append({"role": "assistant", "content": "a2"})
    body["messages"].append({"role": "user", "content": "q"})
    assert sorted(markers(STRATEGIES["pydantic-ai"](body, []))) == [
        "/",
        "/messages/4/content/0",
        "/system/0",
        "/tools/0",
    ]


def test_pydantic_ai_raises_earlier_breakpoints_to_a_later_1h() -> None:
    sent = STRATEGIES["pydantic-ai"](cache_points(2, ttl="1h"), [])
    assert sent["tools"][0]["cache_control"]["ttl"] == "1h"
    assert sent["system"][0]["cache_control"]["ttl"] == "1h"
    assert "cache_control" not in sent  # the CachePoint on the last block replaced it
    parse_request(sent)  # the API takes it: no 1h after a 5m
    rows = [{"started_at": 0, "request": cache_points(2, ttl="1h")}]
    [outcome] = [o for o in simulate(rows, ["pydantic-ai"]) if o.name == "pydantic-ai"]
    assert outcome.errors == 0 and outcome.writes == 1


def test_pydantic_ai_cache_messages_marks_the_last_block_not_the_top_level() -> None:
    sent = STRATEGIES["pydantic-ai-messages"](CONVO, [])
    assert "cache_control" not in sent
    assert sent["messages"][2]["content"][0]["cache_control"] == CC
    # A CachePoint already there keeps its TTL.
    marked = STRATEGIES["pydantic-ai-messages"](cache_points(2, ttl="1h"), [])
    assert marked["messages"][2]["content"][0]["cache_control"]["ttl"] == "1h"


def seed_batch(n: int = 20) -> list[dict[str, Any]]:
    return [
        {
            "started_at": (i // 4) * 1.0,
            "ttft_ms": 800,
            "request": request(system=SYSTEM, messages=[{"role": "user", "content": f"Q{i}"}]),
        }
        for i in range(n)
    ]


def test_on_the_seed_batch_cachewise_writes_the_shared_context_exactly_once() -> None:
    rows = rows_from(seed_batch())
    ours = replay_strategy(rows, "cachewise", STRATEGIES["cachewise"], gate=True)
    assert (ours.writes, ours.reads) == (1, 19) and ours.wait_seconds > 0
    without_gate = replay_strategy(rows, "cachewise", STRATEGIES["cachewise"])
    assert without_gate.writes == 4  # the first burst of four races
    assert ours.cost_usd == oracle_bound(rows).cost_usd


def test_simulate_sorts_by_cost_and_reports_ratios() -> None:
    outcomes = simulate(seed_batch())
    assert [o.cost_usd for o in outcomes] == sorted(o.cost_usd for o in outcomes)
    assert {o.name for o in outcomes} == {*STRATEGIES, "oracle"}
    assert next(o for o in outcomes if o.name == "oracle").ratio_to_oracle == 1.0


def test_a_request_the_warm_gate_holds_renews_its_entry_later_and_the_bound_allows_it() -> None:
    # A review's case: the second request waits 0.4 s for the first one's write, so its read
    # renews the entry 0.4 s later, and the third request, 300.2 s after the second one's start,
    # still finds it. The bound measures gaps from the latest a gate may hold a request.
    rows = [
        {
            "started_at": t,
            "ttft_ms": 500,
            "request": request(system=SYSTEM, messages=[{"role": "user", "content": f"Q{i}"}]),
        }
        for i, t in enumerate((0.0, 0.1, 300.3))
    ]
    outcomes = {o.name: o for o in simulate(rows)}
    assert outcomes["cachewise"].wait_seconds > 0
    assert outcomes["cachewise"].keep_alives == 0 and outcomes["cachewise"].writes == 1
    assert outcomes["cachewise"].cost_usd >= outcomes["oracle"].cost_usd


def test_a_request_the_api_rejects_whatever_its_markers_costs_nothing() -> None:
    # Whitespace-only text is refused by the API with or without caching: it bills nothing.
    good = request(system=SYSTEM, messages=[{"role": "user", "content": "Q"}])
    bad = request(system=SYSTEM, messages=[{"role": "user", "content": [block("   ")]}])
    clean = simulate([{"started_at": 0, "request": good}])
    outcomes = simulate([{"started_at": 0, "request": good}, {"started_at": 1, "request": bad}])
    for o in outcomes:
        same = next(c for c in clean if c.name == o.name)
        assert o.cost_usd == same.cost_usd, o.name
        assert o.errors == (0 if o.name == "oracle" else 1), o.name


def test_a_rejected_request_changes_nothing_for_any_strategy() -> None:
    # A review's case: it used to reach the planner's history and stop the whole replay.
    good = request(system=SYSTEM, messages=[{"role": "user", "content": "Q"}])
    bads = [
        good | {"messages": [{"role": "user", "content": "Q", "cache_control": CC}]},
        good | {"messages": [{"role": "user", "content": ""}]},
    ]
    clean = {o.name: o.cost_usd for o in simulate([{"started_at": 10, "request": good}])}
    for bad in bads:
        rows = [{"started_at": 0, "request": bad}, {"started_at": 10, "request": good}]
        for o in simulate(rows):
            assert o.cost_usd == clean[o.name], o.name
            assert o.errors == (0 if o.name == "oracle" else 1), o.name


def test_an_unknown_model_stops_the_replay_before_it_begins() -> None:
    # A typo would otherwise be a trace of rejected requests: $0 under every strategy.
    good = request(system=SYSTEM)
    rows = [
        {"started_at": 0, "request": good},
        {"started_at": 1, "request": good | {"model": "claude-sonet-4-6"}},
    ]
    with pytest.raises(InputError, match=r"<memory>:2: .*did you mean claude-sonnet-4-6"):
        simulate(rows)
    with pytest.raises(UnknownModel, match="did you mean claude-sonnet-4-6"):
        simulate([{"started_at": 0, "request": good}], model="claude-sonet-4-6")


def test_a_request_only_its_markers_break_costs_its_uncached_retry() -> None:
    # Five markers: the API refuses it as sent; the caller resends it without them.
    system = [block(text(400, f"part{i}"), CC) for i in range(5)]
    rows = [{"started_at": 0, "request": request(system=system)}]
    as_is = replay_strategy(rows_from(rows), "as-is", STRATEGIES["as-is"])
    none = replay_strategy(rows_from(rows), "none", STRATEGIES["none"])
    assert as_is.errors == 1 and none.errors == 0
    assert as_is.cost_usd == none.cost_usd > 0


def test_a_pre_warm_that_only_its_markers_break_retries_without_output() -> None:
    system = [block(text(400, f"part{i}"), CC) for i in range(5)]
    body = request(system=system) | {"max_tokens": 0}
    rows = rows_from([{"started_at": 0, "request": body, "usage": {"output_tokens": 50}}])
    as_is = replay_strategy(rows, "as-is", STRATEGIES["as-is"])
    assert as_is.errors == 1 and as_is.usage.output_tokens == 0 and as_is.usage.input_tokens > 0


def test_each_request_is_priced_at_its_speed() -> None:
    def rows(**extra: Any) -> list[dict[str, Any]]:
        body = request(model="claude-opus-5", system=SYSTEM) | extra
        return [{"started_at": 60.0 * i, "request": body} for i in range(3)]

    fast = {o.name: o.cost_usd for o in simulate(rows(speed="fast"))}
    standard = {o.name: o.cost_usd for o in simulate(rows())}
    assert fast["none"] == 2 * standard["none"] and fast["oracle"] == 2 * standard["oracle"]


def test_the_bound_bills_no_output_for_a_pre_warm() -> None:
    body = request(system=SYSTEM) | {"max_tokens": 0}
    row = {"started_at": 0, "request": body, "usage": {"output_tokens": 50}}
    assert oracle_bound(rows_from([row])).usage.output_tokens == 0


@st.composite
def traces(draw: st.DrawFn) -> list[dict[str, Any]]:
    systems = [text(1500, "x"), text(1500, "y"), "Short."]
    rows, t = [], 0.0
    for i in range(draw(st.integers(1, 12))):
        t += draw(st.sampled_from([0.0, 0.2, 5.0, 200.0, 295.0, 300.5, 400.0, 1800.0, 4000.0]))
        history: list[dict[str, Any]] = [{"role": "user", "content": f"Q{i}"}]
        if draw(st.booleans()):
            history = [
                {"role": "user", "content": "Start."},
                {"role": "assistant", "content": "Ok."},
                *history,
            ]
        body = request(
            system=draw(st.sampled_from(systems)),
            messages=history,
            tools=[tool("a")] if draw(st.booleans()) else None,
        )
        rows.append(
            {
                "started_at": t,
                "ttft_ms": draw(st.sampled_from([0, 800])),
                "workspace": draw(st.sampled_from(["a", "b"])),
                "request": body,
            }
        )
    return rows


def _planned(ttl: Any) -> Any:
    def strategy(body: Any, seen: Any, now: float | None = None) -> dict[str, Any]:
        return dict(plan(strip_markers(dict(body)), ttl=ttl).request)

    return strategy


@settings(max_examples=examples(60), deadline=None)
@given(traces())
def test_no_strategy_costs_less_than_the_oracle(trace: list[dict[str, Any]]) -> None:
    outcomes = simulate(trace)
    bound = next(o for o in outcomes if o.name == "oracle").cost_usd
    assert all(o.cost_usd >= bound for o in outcomes)
    # Strategies that lean on what the bound models: 1h entries, and keep-alive reads.
    rows = rows_from(trace)
    for ttl in ("5m", "1h"):
        for keep_alive in (False, True):
            ours = replay_strategy(rows, ttl, _planned(ttl), gate=True, keep_alive=keep_alive)
            assert ours.cost_usd >= bound


def test_the_cli_compares_every_strategy(tmp_path: Any) -> None:
    import json

    from click.testing import CliRunner

    from cachewise.cli import main

    path = tmp_path / "trace.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in seed_batch(8)))
    result = CliRunner().invoke(main, ["simulate", str(path), "--compare", "--format", "json"])
    data = json.loads(result.output)
    assert result.exit_code == 0 and data["oracle"]["kind"] == "lower_bound"
    assert {
        "name",
        "usage",
        "cost_usd",
        "ratio_to_oracle",
        "writes",
        "reads",
        "wait_seconds",
    } <= set(data["strategies"][0])
    text_out = (
        CliRunner()
        .invoke(main, ["simulate", str(path), "--strategy", "auto", "--strategy", "cachewise"])
        .output
    )
    assert "cachewise" in text_out and "auto" in text_out and "oracle" in text_out


def test_a_trace_made_from_run_results_simulates(tmp_path: Any) -> None:
    import json

    from cachewise.runner import RunOptions, run_requests
    from cachewise.testing import Emulator

    reqs = [
        {
            "custom_id": f"r{i}",
            "params": request(system=SYSTEM, messages=[{"role": "user", "content": f"Q{i}"}]),
        }
        for i in range(6)
    ]
    out = tmp_path / "results.jsonl"
    with Emulator() as emu:
        run_requests(reqs, out, emu.client(), options=RunOptions(workers=2))
    results = {r["custom_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    trace = [
        {
            "started_at": float(i),
            "request": r["params"],
            "usage": results[r["custom_id"]]["result"]["message"]["usage"],
        }
        for i, r in enumerate(reqs)
    ]
    outcomes = simulate(trace, ["none", "cachewise"])
    by_name = {o.name: o for o in outcomes}
    assert by_name["cachewise"].cost_usd < by_name["none"].cost_usd
    assert by_name["none"].usage.output_tokens == sum(t["usage"]["output_tokens"] for t in trace)


def test_cachewise_keeps_interleaved_tenants_alive_through_gaps_past_the_ttl() -> None:
    tenants = [text(1500, "tenant a"), text(1500, "tenant b")]
    rows = rows_from(
        [
            {
                "started_at": i * 200.0,
                "request": request(
                    system=tenants[i % 2], messages=[{"role": "user", "content": f"T{i}"}]
                ),
            }
            for i in range(10)
        ]
    )
    kept = replay_strategy(rows, "cachewise", STRATEGIES["cachewise"], keep_alive=True)
    lapsed = replay_strategy(rows, "cachewise", STRATEGIES["cachewise"])
    assert kept.keep_alives > 0 and kept.writes < lapsed.writes
    assert kept.cost_usd < lapsed.cost_usd
    assert kept.cost_usd >= oracle_bound(rows).cost_usd


def test_a_finished_batch_pays_no_keep_alives() -> None:
    ours = replay_strategy(rows_from(seed_batch()), "c", STRATEGIES["cachewise"], keep_alive=True)
    assert ours.keep_alives == 0


def test_a_trace_made_from_the_ledger_simulates(tmp_path: Any) -> None:
    import json

    from click.testing import CliRunner

    from cachewise import wrap
    from cachewise.cli import main
    from cachewise.ledger import Ledger
    from cachewise.testing import Emulator

    path = tmp_path / "ledger.db"
    with Emulator() as emu, Ledger(path) as ledger:
        kept = wrap(emu.client(), ledger=ledger, store_prompts=True)
        for i in range(4):
            kept.messages.create(
                model="claude-sonnet-4-6",
                max_tokens=16,
                system=SYSTEM,
                messages=[{"role": "user", "content": f"Q{i}"}],
            )
        wrap(emu.client(), ledger=ledger).messages.create(  # no prompt kept: left out
            model="claude-sonnet-4-6", max_tokens=16, messages=[{"role": "user", "content": "Hi"}]
        )
    out = tmp_path / "trace.jsonl"
    runner = CliRunner()
    made = runner.invoke(
        main,
        ["trace", "--from-ledger", "--include-emulated", "--ledger", str(path), "--out", str(out)],
    )
    assert made.exit_code == 0 and "1 calls without a stored prompt" in made.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and all(r["usage"]["output_tokens"] > 0 for r in rows)
    assert all(r["request"]["system"] for r in rows)
    assert rows[0]["ttft_ms"] > 0  # the scout streamed, so its first byte is known
    result = runner.invoke(main, ["simulate", str(out), "--format", "json"])
    by_name = {s["name"]: s for s in json.loads(result.output)["strategies"]}
    assert by_name["cachewise"]["cost_usd"] < by_name["none"]["cost_usd"]


def test_a_ledger_without_prompts_says_how_to_keep_them(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from cachewise.cli import main
    from cachewise.ledger import Ledger

    path = tmp_path / "empty.db"
    Ledger(path).close()
    result = CliRunner().invoke(main, ["trace", "--from-ledger", "--ledger", str(path)])
    assert result.exit_code == 2 and "store_prompts=True" in result.output
    assert "Traceback" not in result.output


def _view(prompt: Prompt) -> tuple[Any, ...]:
    """Everything the engine and the analyzer read of a prompt."""
    return (
        prompt.positions,
        prompt.total_tokens,
        prompt.automatic,
        prompt.problems,
        prompt.whitespace_text,
        prompt.prewarm,
        prompt.prewarm_conflicts,
        dict(prompt.level_params),
    )


@settings(max_examples=examples(60), deadline=None)
@given(traces())
def test_a_strategy_request_remarked_is_the_request_parsed(trace: list[dict[str, Any]]) -> None:
    """The replay reads each strategy's request off the row's parse (`Prompt.remarked`): it
    must be what parsing that request gives, for every strategy and every row."""
    seen: list[Row] = []
    for row in rows_from(trace):
        base = parse_request(row.request)
        for name, strategy in STRATEGIES.items():
            sent = strategy(row.request, seen, row.started_at)
            try:
                expected = _view(parse_request(sent))
            except InvalidRequest:
                with pytest.raises(InvalidRequest):
                    base.remarked(sent)
                continue
            assert _view(base.remarked(sent)) == expected, name
        seen.append(Row(row.request, started_at=row.started_at, prompt=base))


def test_a_request_that_is_not_the_same_but_for_its_markers_is_parsed_anew() -> None:
    base = parse_request(CONVO)
    longer = CONVO | {"messages": [*CONVO["messages"], {"role": "user", "content": "More?"}]}
    other_choice = CONVO | {"tool_choice": {"type": "any"}}
    for body in (longer, other_choice, CONVO | {"model": "claude-opus-4-6"}):
        assert _view(base.remarked(body)) == _view(parse_request(body))


def support_assistant() -> list[dict[str, Any]]:
    """Five questions over a ~28 kB system prompt the client marks, 20 s, 25 s, 455 s, 20 s
    apart: quiet traffic, where a long pause looks like a rhythm after a single instance."""
    system = [block(text(4000, "support rules"), CC)]
    return [
        {
            "started_at": t,
            "usage": {"input_tokens": 0, "output_tokens": 300},
            "request": request(
                system=system, messages=[{"role": "user", "content": f"Customer {i}: help"}]
            ),
        }
        for i, t in enumerate([0.0, 20.0, 45.0, 500.0, 520.0])
    ]


def test_the_support_assistant_costs_no_more_than_its_own_markers() -> None:
    # Its one pause past 5m is rewritten 5m, as the client's marker does: a 1h write there
    # would be read once.
    outcomes = {o.name: o for o in simulate(support_assistant(), ["cachewise", "as-is"])}
    assert outcomes["cachewise"].cost_usd <= outcomes["as-is"].cost_usd
    assert outcomes["cachewise"].usage.ephemeral_1h_input_tokens == 0


def test_a_lone_prefix_idle_past_an_hour_is_kept_alive_hourly_from_then_on() -> None:
    # Uses 61 minutes apart: without keep-alives each would re-write its 1h entry. The first
    # such pause is a miss (a rhythm of an hour is not known yet); then one hourly keep-alive
    # per gap, and after the last use as many as cost less than an input (9 at 0.1x reads).
    system = [block(text(1500, "cron"))]
    rows = [
        {
            "started_at": 3660.0 * i,
            "usage": {"input_tokens": 0, "output_tokens": 10},
            "request": request(system=system, messages=[{"role": "user", "content": f"run {i}"}]),
        }
        for i in range(6)
    ]
    ours = replay_strategy(rows_from(rows), "cachewise", STRATEGIES["cachewise"], keep_alive=True)
    assert ours.writes == 2  # the first use (5m) and the rewrite after the first pause (1h)
    assert ours.reads == 4
    assert ours.keep_alives == 4 + 9
