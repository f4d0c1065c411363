"""Keep-alive reads: what the request looks like, and when the policy sends one or stops."""

from __future__ import annotations

import math

from cachewise import Engine, parse_request
from cachewise.keepalive import KeepAlivePolicy, ping
from conftest import CC, block, request, text, tool

SYSTEM = text(3000, "alive")


def used(policy: KeepAlivePolicy, name: str, at: float, tail: str = "", shares: str = "") -> None:
    tail = tail or name
    policy.used(("w", name), at=at, ttl=300.0, tail=tail, digests=frozenset({tail, shares} - {""}))


def sent(policy: KeepAlivePolicy, before: float = math.inf) -> list[tuple[str, float]]:
    return [(key[1], at) for key, at in policy.due(before)]


# -- the request ---------------------------------------------------------------------------------


def test_a_ping_for_a_system_entry_is_the_prefix_and_a_one_character_turn() -> None:
    body = request(
        tools=[tool("a")],
        system=SYSTEM,
        messages=[{"role": "user", "content": text(500, "long question")}],
    )
    p = ping(body, "/system/0", "5m")
    assert p["max_tokens"] == 0 and p["tools"] == body["tools"]
    assert p["system"][0]["cache_control"] == CC
    assert p["messages"] == [{"role": "user", "content": "."}]


def test_a_ping_for_an_early_system_block_drops_the_blocks_after_it() -> None:
    body = request(system=[block(SYSTEM), block(text(800, "later rules"))], messages=[])
    p = ping(body, "/system/0", "5m")
    assert len(p["system"]) == 1 and p["system"][0]["cache_control"] == CC


def test_bad_settings_are_refused_rather_than_looping() -> None:
    import pytest

    with pytest.raises(ValueError):
        KeepAlivePolicy(min_evidence=0)
    policy = KeepAlivePolicy(margin=600)  # longer than the TTL: renew at half of it instead
    used(policy, "a", 0)
    used(policy, "b", 100)
    assert sent(policy) == [("a", 150.0), ("a", 300.0)]


def test_a_ping_for_a_tools_entry_drops_what_follows_the_tool() -> None:
    body = request(tools=[tool("a"), tool("b")], system=SYSTEM, messages=[])
    p = ping(body, "/tools/0", "1h")
    assert [t["name"] for t in p["tools"]] == ["a"] and "system" not in p
    assert p["tools"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


def test_a_ping_for_a_history_entry_ends_on_a_user_turn() -> None:
    messages = [
        {"role": "user", "content": "Start."},
        {"role": "assistant", "content": [block("One."), block("Two.")]},
        {"role": "user", "content": "Next."},
    ]
    p = ping(request(system=SYSTEM, messages=messages), "/messages/1/content/0", "5m")
    assert p["messages"][1]["content"] == [{**block("One."), "cache_control": CC}]
    assert p["messages"][-1] == {"role": "user", "content": "."}


def test_a_ping_reads_the_entry_and_pays_almost_nothing_else() -> None:
    body = request(system=[block(SYSTEM, CC)], messages=[{"role": "user", "content": "Q?"}])
    engine = Engine()
    written = engine.account(parse_request(body), now=0).usage.cache_creation_input_tokens
    acct = engine.account(parse_request(ping(body, "/system/0", "5m")), now=290)
    assert (
        acct.usage.cache_read_input_tokens == written
        and acct.usage.cache_creation_input_tokens == 0
    )
    assert acct.usage.input_tokens < 20 and acct.usage.output_tokens == 0
    later = engine.account(parse_request(body), now=290 + 299)  # the ping renewed the entry
    assert later.usage.cache_read_input_tokens == written


# -- the policy ----------------------------------------------------------------------------------


def test_a_lone_prefix_is_left_to_its_ttl() -> None:
    policy = KeepAlivePolicy()
    used(policy, "a", 0)
    assert sent(policy) == []


def test_a_busy_workspace_keeps_a_prefix_alive_until_it_goes_quiet() -> None:
    policy = KeepAlivePolicy()
    used(policy, "a", 0)
    used(policy, "b", 100)
    # a: renewed just before its entry expires (others were busy since); then nothing more was
    # sent for a TTL, so it stops. b: nothing was sent after it.
    assert sent(policy) == [("a", 290.0)]


def test_nothing_is_due_before_its_time() -> None:
    policy = KeepAlivePolicy()
    used(policy, "a", 0)
    used(policy, "b", 100)
    assert sent(policy, before=200) == []
    assert sent(policy, before=291) == [("a", 290.0)]


def test_a_superseded_prefix_is_dropped() -> None:
    # A new version of the prompt (say, a new timestamp in front) ends with the same block.
    policy = KeepAlivePolicy()
    used(policy, "v1", 0, tail="rules")
    used(policy, "v2", 100, tail="rules")
    assert sent(policy) == []


def test_evidence_that_prefixes_do_not_return_stops_keep_alives() -> None:
    policy = KeepAlivePolicy(min_evidence=3)
    for k in range(5):
        used(policy, f"old{k}", 0)  # never used again
    assert sent(policy, before=1000) == []  # (callers ask what is due before each new use)
    used(policy, "a", 1000)
    used(policy, "b", 1100)
    assert policy.hazard("w", 290, 300, now=1290) == 0.0
    assert sent(policy) == []


def test_evidence_that_prefixes_return_keeps_them_alive() -> None:
    policy = KeepAlivePolicy(min_evidence=3)
    for k in range(3):  # three prefixes, each back 400 s later
        used(policy, f"p{k}", k)
        used(policy, f"p{k}", k + 400)
    assert policy.hazard("w", 290, 300, now=700) == 1.0
    # Still idle 600 s after their last use, they now count as prefixes that did not return.
    assert policy.hazard("w", 290, 300, now=1000) == 0.5
    # p0 and p1 were followed by p2's use, so each got one renewal; p2 by nothing.
    assert sent(policy, before=1000) == [("p0", 690.0), ("p1", 691.0)]
    used(policy, "a", 1000)
    used(policy, "b", 1100)
    assert ("a", 1290.0) in sent(policy)


def test_the_threshold_is_the_price_of_a_read_over_what_a_rewrite_would_add() -> None:
    assert KeepAlivePolicy().threshold == 0.087  # 0.1 / (1.25 - 0.1), rounded
