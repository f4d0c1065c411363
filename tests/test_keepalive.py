"""Keep-alive reads: what the request looks like, and when the policy sends one or stops."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from cachewise import Engine, parse_request
from cachewise.keepalive import KeepAlivePolicy, Key, ping
from conftest import CC, block, examples, request, text, tool

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


@dataclass
class _RefPrefix:
    workspace: str
    last_use: float
    refreshed: float
    ttl: float
    tail: str


class _ReferencePolicy:
    """The policy as it was before its queue and index: a scan of every live prefix per use and
    per keep-alive. Kept as the reference the fast one must agree with."""

    def __init__(
        self, *, threshold: float = 0.087, min_evidence: int = 3, margin: float = 10.0
    ) -> None:
        if min_evidence < 1 or margin < 0:
            raise ValueError("min_evidence must be at least 1 and margin not negative")
        self.threshold, self.min_evidence, self.margin = threshold, min_evidence, margin
        self.prefixes: dict[Key, _RefPrefix] = {}  # entries being kept alive
        self.last_use: dict[Key, tuple[str, float]] = {}  # every prefix ever used
        self.gaps: dict[str, list[float]] = {}  # per workspace, sorted: idle periods that ended
        self.idle_since: dict[str, list[float]] = {}  # per workspace, sorted: last use of each
        self.activity: dict[str, float] = {}  # per workspace: when something was last sent

    def used(
        self,
        key: Key,
        *,
        at: float,
        ttl: float,
        tail: str,
        digests: frozenset[str],
    ) -> None:
        """A request read or wrote the entry `key` (whose prompt holds blocks `digests`)."""
        workspace = key[0]
        self.activity[workspace] = max(self.activity.get(workspace, at), at)
        since = self.idle_since.setdefault(workspace, [])
        if key in self.last_use:
            _, last = self.last_use[key]
            insort(self.gaps.setdefault(workspace, []), at - last)
            del since[bisect_left(since, last)]
        self.last_use[key] = (workspace, at)
        insort(since, at)
        for other, p in list(self.prefixes.items()):
            if other != key and p.workspace == workspace and p.tail in digests:
                del self.prefixes[other]  # superseded by a new version of its prompt
        self.prefixes[key] = _RefPrefix(workspace, at, at, ttl, tail)

    def sent(self, workspace: str, at: float) -> None:
        """Something that used no cache was sent: the workspace is busy all the same."""
        self.activity[workspace] = max(self.activity.get(workspace, at), at)

    def due(self, before: float) -> Iterator[tuple[Key, float]]:
        """Keep-alives to send before `before`, in time order: (key, when)."""
        while True:
            pending = [(self._next(p), key) for key, p in self.prefixes.items()]
            if not pending:
                return
            at, key = min(pending, key=lambda pair: pair[0])
            if at >= before:
                return
            p = self.prefixes[key]
            if self._worth_it(p, at):
                p.refreshed = at
                yield key, at
            else:
                del self.prefixes[key]

    def _next(self, p: _RefPrefix) -> float:
        """Just before the entry expires (and always later than its last renewal)."""
        return p.refreshed + max(p.ttl - self.margin, p.ttl / 2)

    def _worth_it(self, p: _RefPrefix, at: float) -> bool:
        busy = self.activity.get(p.workspace, p.last_use)
        if busy <= p.last_use or at - busy > p.ttl:
            return False  # nothing else was sent since this prefix was used, or not lately
        hazard = self.hazard(p.workspace, at - p.last_use, p.ttl, now=at)
        return hazard is None or hazard >= self.threshold

    def hazard(self, workspace: str, idle: float, window: float, *, now: float) -> float | None:
        """Of the idle periods that lasted `idle`, the share that ended within `window` more;
        None with too little evidence."""
        gaps = self.gaps.get(workspace, [])
        longer = len(gaps) - bisect_right(gaps, idle)
        returned = bisect_right(gaps, idle + window) - bisect_right(gaps, idle)
        # Prefixes idle for longer than idle + window still: they outlived the window.
        survivors = bisect_left(self.idle_since.get(workspace, []), now - idle - window)
        if longer + survivors < self.min_evidence:
            return None
        return returned / (longer + survivors)


Event = tuple[str, int, int, int]  # (what, workspace, prefix, tail)


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["use", "use", "use", "sent"]),
            st.integers(0, 2),
            st.integers(0, 6),
            st.integers(0, 4),
            st.floats(0, 700),
        ),
        max_size=60,
    )
)
def test_the_queued_policy_sends_what_the_scanning_one_sent(
    events: list[tuple[str, int, int, int, float]],
) -> None:
    """The same uses, in the same time order, give the same keep-alives at the same times."""
    fast, slow = KeepAlivePolicy(), _ReferencePolicy()
    now = 0.0
    for what, ws, prefix, tail, gap in events:
        now += gap
        assert list(fast.due(now)) == list(slow.due(now))
        workspace = f"w{ws}"
        if what == "sent":
            fast.sent(workspace, now)
            slow.sent(workspace, now)
            continue
        key = (workspace, f"p{prefix}")
        digests = frozenset({f"t{tail}", f"t{(tail + 1) % 5}"})
        for policy in (fast, slow):
            policy.used(key, at=now, ttl=300.0, tail=f"t{tail}", digests=digests)
    assert list(fast.due(math.inf)) == list(slow.due(math.inf))


def test_keep_alives_stop_at_their_budget_for_the_idle_period() -> None:
    # Ski rental: an idle period's keep-alives stop once they have cost what a re-write would.
    policy = KeepAlivePolicy()
    policy.used(("w", "a"), at=0, ttl=300.0, tail="a", digests=frozenset({"a"}), budget=2)
    for k in range(1, 8):  # the workspace stays busy with something else
        policy.sent("w", k * 100.0)
    assert sent(policy, before=800) == [("a", 290.0), ("a", 580.0)]
    # A use opens a new idle period with a fresh budget.
    policy.used(("w", "a"), at=800, ttl=300.0, tail="a", digests=frozenset({"a"}), budget=1)
    policy.sent("w", 900)
    assert sent(policy) == [("a", 1090.0)]


def test_rent_keeps_a_lone_prefix_alive_to_its_budget_whatever_the_evidence() -> None:
    # Nothing else is sent in the workspace: on the evidence alone it would get none.
    policy = KeepAlivePolicy()
    policy.used(("w", "a"), at=0, ttl=3600.0, tail="a", digests=frozenset({"a"}), budget=3)
    assert sent(policy, before=20_000) == []
    policy.used(
        ("w", "a"), at=20_000, ttl=3600.0, tail="a", digests=frozenset({"a"}), budget=3, rent=True
    )
    assert sent(policy) == [("a", 23_590.0), ("a", 27_180.0), ("a", 30_770.0)]
