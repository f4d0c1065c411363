"""The oracle's bound: exact per segment on small traces, and it prices expiry."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cachewise import parse_request
from cachewise.oracle import oracle
from cachewise.trace import rows_from
from conftest import CC, request, text

SYSTEM = text(3000, "oracle")
MTOK = Decimal(1_000_000)


def trace(*starts: float, system: str = SYSTEM) -> list[dict[str, Any]]:
    return [
        {
            "started_at": t,
            "request": request(
                system=system, messages=[{"role": "user", "content": f"Question {i}"}]
            ),
        }
        for i, t in enumerate(starts)
    ]


def parts(rows: list[dict[str, Any]]) -> tuple[int, Decimal, Any]:
    """Tokens of the shared system prompt, cost of everything else, and the prices."""
    prompts = [parse_request(r["request"]) for r in rows]
    shared = prompts[0].positions[0].tokens
    prices = prompts[0].model.prices_for(prompts[0].total_tokens)
    rest = sum(p.total_tokens - shared for p in prompts)
    return shared, Decimal(rest) * prices.input / MTOK, prices


def bound(rows: list[dict[str, Any]]) -> Decimal:
    return oracle(rows_from(rows)).cost_usd


def test_two_uses_within_the_ttl_pay_one_5m_write_and_one_read() -> None:
    rows = trace(0, 120)
    shared, rest, p = parts(rows)
    assert bound(rows) == rest + shared * (p.cache_write_5m + p.cache_read) / MTOK


def test_a_gap_past_five_minutes_pays_a_keep_alive_or_a_1h_write() -> None:
    # 400 s: one keep-alive read (0.1x) beats a 1h write (2x); the bound takes the cheaper.
    rows = trace(0, 400)
    shared, rest, p = parts(rows)
    assert bound(rows) == rest + shared * (p.cache_write_5m + 2 * p.cache_read) / MTOK


def test_many_uses_across_long_gaps_pay_for_a_1h_entry() -> None:
    # Ten uses 20 minutes apart: 4 keep-alives per gap (36 reads) cost more than a 1h write.
    rows = trace(*(i * 1200.0 for i in range(10)))
    shared, rest, p = parts(rows)
    assert bound(rows) == rest + shared * (p.cache_write_1h + 9 * p.cache_read) / MTOK


def test_a_prefix_used_once_is_input() -> None:
    rows = trace(0)
    shared, rest, p = parts(rows)
    assert bound(rows) == rest + shared * p.input / MTOK


def test_a_long_gap_is_bridged_by_a_ping_that_writes_1h_into_the_next_request() -> None:
    # With hindsight, a keep-alive before the 5m entry expires can read it and write a 1h entry
    # one block longer, ending in the next request's question, which that request then reads:
    # one read per hour of gap, instead of one per 5 minutes.
    rows = trace(0, 1200)
    shared, rest, p = parts(rows)
    assert bound(rows) == rest + shared * (p.cache_write_5m + 2 * p.cache_read) / MTOK
    rows = trace(0, 4 * 3600)  # pings at ~5 min, then hourly: 4, and the read
    shared, rest, p = parts(rows)
    assert bound(rows) == rest + shared * (p.cache_write_5m + 5 * p.cache_read) / MTOK


def test_uses_a_day_apart_are_cheapest_uncached() -> None:
    rows = trace(0, 24 * 3600)
    shared, rest, p = parts(rows)
    assert bound(rows) == rest + 2 * shared * p.input / MTOK


def test_a_prefix_below_the_minimum_is_never_read() -> None:
    rows = trace(0, 1, system="Be brief.")
    assert oracle(rows_from(rows)).usage.cache_read_input_tokens == 0


def test_workspaces_do_not_share() -> None:
    rows = trace(0, 60)
    rows[1]["workspace"] = "other"
    shared, rest, p = parts(rows)
    assert bound(rows) == rest + 2 * shared * p.input / MTOK


def test_the_result_counts_writes_reads_and_keep_alives() -> None:
    result = oracle(rows_from(trace(0, 400, 450)))
    assert (result.writes, result.reads, result.keep_alives) == (1, 2, 1)
    assert result.usage.ephemeral_5m_input_tokens > 0 and result.usage.cache_read_input_tokens > 0


# -- strategies with pings the trace does not show: the bound must hold against them too ---------


def bill(events: list[tuple[float, dict[str, Any]]]) -> Decimal:
    """What requests sent at these times cost through a fresh engine."""
    from cachewise import Engine
    from cachewise.cost import cost

    engine, total = Engine(), Decimal(0)
    for now, body in sorted(events, key=lambda e: e[0]):
        prompt = parse_request(body)
        acct = engine.account(prompt, now=now, ready_at=now + 0.5)
        usage = acct.usage
        total += cost(usage, model=prompt.model, speed=prompt.speed).total_usd
    return total


def marked(value: str, ttl: str | None = None) -> dict[str, Any]:
    cc = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return {"type": "text", "text": value, "cache_control": cc}


def test_a_ping_that_turns_a_5m_entry_into_a_longer_1h_one_is_within_the_bound() -> None:
    system = [{"type": "text", "text": SYSTEM}]
    first = [{"role": "user", "content": "q1"}]
    later = [*first, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"}]
    rows = [
        {"started_at": 0.0, "ttft_ms": 500, "request": request(system=system, messages=first)},
        {"started_at": 3000.0, "ttft_ms": 500, "request": request(system=system, messages=later)},
    ]
    q1_1h = [{"role": "user", "content": [marked("q1", "1h")]}]
    strategy = bill(
        [
            (0.0, request(system=[marked(SYSTEM)], messages=first)),
            (1.0, request(system=system, messages=q1_1h) | {"max_tokens": 0}),
            (3000.0, request(system=system, messages=[*q1_1h, *later[1:]])),
        ]
    )
    assert bound(rows) <= strategy


def test_a_pre_warm_billed_at_a_cheaper_price_band_is_within_the_bound() -> None:
    model = "claude-haiku-5-5"  # a prompt over 100k tokens is billed at a higher band
    big, question = text(37000, "s"), text(8000, "u")
    messages = [{"role": "user", "content": question}]
    rows = [{"started_at": 10.0, "request": request(model=model, system=big, messages=messages)}]
    ping = request(model=model, system=[marked(big)], messages=[{"role": "user", "content": "."}])
    strategy = bill(
        [
            (0.0, ping | {"max_tokens": 0}),
            (10.0, request(model=model, system=[marked(big)], messages=messages)),
        ]
    )
    assert parse_request(rows[0]["request"]).total_tokens > 100_000
    assert bound(rows) <= strategy


def test_one_live_5m_entry_can_feed_pings_into_several_later_requests() -> None:
    # A review's counterexample to "after a ping-written 1h entry nothing holds the segment":
    # two pings sent while the first request's 5m entry lives each write a 1h entry ending in
    # one later question, and both later requests read.
    system = [{"type": "text", "text": SYSTEM}]
    rows = [
        {
            "started_at": at,
            "ttft_ms": 500,
            "request": request(system=system, messages=[{"role": "user", "content": f"q{i}"}]),
        }
        for i, at in enumerate((0.0, 3000.0, 3001.0))
    ]
    events: list[tuple[float, dict[str, Any]]] = [
        (0.0, request(system=[marked(SYSTEM)], messages=rows[0]["request"]["messages"]))
    ]
    for i in (1, 2):
        marked_q = [{"role": "user", "content": [marked(f"q{i}", "1h")]}]
        events.append((10.0 + i, request(system=system, messages=marked_q) | {"max_tokens": 0}))
        events.append((rows[i]["started_at"], request(system=system, messages=marked_q)))
    assert bound(rows) <= bill(events)


def test_a_schema_property_named_cache_control_counts_in_the_bound() -> None:
    # A review's case: the bound dropped the property, and the shorter tool fell under the
    # minimum the real one clears, so the bound forbade reads the API allows.
    props = {"cache_control": {"type": "string", "description": text(300, "header")}}
    http = {"name": "http_get", "input_schema": {"type": "object", "properties": props}}
    rows = [
        {"started_at": 60.0 * i, "request": request(tools=[http], system=text(900, "s"))}
        for i in range(3)
    ]
    total = sum(parse_request(r["request"]).total_tokens for r in rows)
    assert oracle(rows_from(rows)).usage.prompt_tokens == total


def test_expiry_is_tested_as_the_engine_tests_it_in_floating_point() -> None:
    # A review's case: at - previous == 300.0 in floating point, yet previous + 300 > at, so
    # the engine still reads the entry; the bound must not charge a keep-alive there.
    rows = trace(84.47179488895173, 384.4717948889517)
    shared, rest, p = parts(rows)
    assert bound(rows) == rest + shared * (p.cache_write_5m + p.cache_read) / MTOK


def test_fast_mode_is_priced_in_the_bound_and_a_standard_pre_warm_of_the_tools_holds() -> None:
    # Fast requests pay twice the standard prices; a standard-speed request shares only the
    # tools level with them (speed changes the system level), so it may write that for less.
    model = "claude-opus-5"

    def rows(**extra: Any) -> list[dict[str, Any]]:
        return [
            {"started_at": 10.0 + 60 * i, "request": r["request"] | {"model": model, **extra}}
            for i, r in enumerate(trace(0, 0, 0))
        ]

    assert bound(rows(speed="fast")) == 2 * bound(rows())
    tools = [{"name": "t", "description": text(2000, "tool"), "input_schema": {"type": "object"}}]
    marked_tools = [tools[0] | {"cache_control": {"type": "ephemeral"}}]
    fast = rows(speed="fast", tools=tools)
    events = [(0.0, request(model=model, tools=marked_tools) | {"max_tokens": 0})]
    events += [(r["started_at"], r["request"] | {"tools": marked_tools}) for r in fast]
    assert bound(fast) <= bill(events)


def test_rows_parsed_already_give_the_same_bound_as_rows_parsed_by_the_oracle() -> None:
    from dataclasses import replace

    from cachewise.engine import violations

    system = [{"type": "text", "text": SYSTEM, "cache_control": CC}]
    marked = [{**r, "request": request(system=system)} for r in trace(0, 90)]
    blocks = [{"type": "text", "text": f"Part {i}.", "cache_control": CC} for i in range(4)]
    five = {  # five breakpoints: the API rejects it, but not without its markers
        "started_at": 200.0,
        "request": request(system=system, messages=[{"role": "user", "content": blocks}]),
    }
    rows = rows_from([*trace(0, 400, 2000), *marked, five])
    parsed = [replace(row, prompt=parse_request(row.request)) for row in rows]
    assert violations(parsed[-1].prompt)  # parsed with its markers, which the API refuses
    plain, given = oracle(rows), oracle(parsed)
    assert (plain.cost_usd, plain.usage, plain.writes, plain.reads) == (
        given.cost_usd,
        given.usage,
        given.writes,
        given.reads,
    )
