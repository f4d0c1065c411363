"""Invariants of the engine over random traces (hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from cachewise import Engine, get_model
from cachewise.body import TTL
from cachewise.engine import breakpoints
from cachewise.request import Prompt
from conftest import examples

MODEL = get_model("claude-opus-4-1")  # minimum 1,024
SIZES = [40, 300, 900, 1500, 3000]


@dataclass(frozen=True)
class Call:
    path: tuple[int, ...]  # segment choices: shared prefixes come from shared choices
    marks: tuple[tuple[int, TTL], ...]
    gap: float
    workspace: str
    ttft: float

    def prompt(self) -> Prompt:
        ttl_at = dict(self.marks)
        segments = [
            ("/".join(map(str, self.path[: i + 1])), SIZES[c], ttl_at.get(i))
            for i, c in enumerate(self.path)
        ]
        return Prompt.from_segments(MODEL, segments)


@st.composite
def calls(draw: st.DrawFn) -> Call:
    path = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=30)))
    spots = sorted(draw(st.sets(st.integers(0, len(path) - 1), max_size=4)))
    n_1h = draw(st.integers(0, len(spots)))
    marks = tuple((s, "1h" if k < n_1h else "5m") for k, s in enumerate(spots))  # 1h first
    gap = draw(st.sampled_from([0.0, 0.5, 30.0, 200.0, 299.0, 301.0, 1000.0, 3599.0, 4000.0]))
    return Call(
        path, marks, gap, draw(st.sampled_from(["a", "b"])), draw(st.sampled_from([0.0, 2.0]))
    )


traces = st.lists(calls(), min_size=1, max_size=25)


def replay(engine: Engine, trace: list[Call]) -> list[dict[str, object]]:
    now, out = 0.0, []
    for call in trace:
        now += call.gap
        acct = engine.account(
            call.prompt(), now=now, workspace=call.workspace, ready_at=now + call.ttft
        )
        out.append(acct.usage.to_api())
    return out


@settings(max_examples=examples(150), deadline=None)
@given(traces)
def test_prompt_total_is_input_plus_cache_read_plus_cache_write(trace: list[Call]) -> None:
    engine, now = Engine(), 0.0
    for call in trace:
        now += call.gap
        prompt = call.prompt()
        a = engine.account(prompt, now=now, workspace=call.workspace, ready_at=now + call.ttft)
        assert (
            min(
                a.usage.input_tokens,
                a.usage.cache_read_input_tokens,
                a.usage.ephemeral_5m_input_tokens,
                a.usage.ephemeral_1h_input_tokens,
            )
            >= 0
        )
        assert (
            a.usage.input_tokens
            + a.usage.cache_read_input_tokens
            + a.usage.cache_creation_input_tokens
            == prompt.total_tokens
        )


@settings(max_examples=examples(150), deadline=None)
@given(traces)
def test_a_read_is_always_a_prefix_an_earlier_request_wrote(trace: list[Call]) -> None:
    engine, now = Engine(), 0.0
    written: set[tuple[str, str]] = set()
    most: dict[str, int] = {}
    for call in trace:
        now += call.gap
        prompt = call.prompt()
        a = engine.account(prompt, now=now, workspace=call.workspace, ready_at=now + call.ttft)
        if a.read_position is not None:
            hit = prompt.positions[a.read_position]
            assert (call.workspace, hit.prefix_hash) in written
            assert a.usage.cache_read_input_tokens == hit.cumulative <= most[call.workspace]
        else:
            assert a.usage.cache_read_input_tokens == 0
        for bp in breakpoints(prompt):
            if bp.tokens >= a.minimum:
                written.add((call.workspace, prompt.positions[bp.position].prefix_hash))
                most[call.workspace] = max(most.get(call.workspace, 0), bp.tokens)


@settings(max_examples=examples(100), deadline=None)
@given(traces)
def test_nothing_is_written_when_no_breakpoint_reaches_the_minimum(trace: list[Call]) -> None:
    engine, now = Engine(), 0.0
    for call in trace:
        now += call.gap
        prompt = call.prompt()
        a = engine.account(prompt, now=now, workspace=call.workspace)
        if all(bp.tokens < a.minimum for bp in breakpoints(prompt)):
            assert a.usage.cache_creation_input_tokens == 0 and a.usage.cache_read_input_tokens == 0


@settings(max_examples=examples(100), deadline=None)
@given(traces)
def test_replay_is_deterministic(trace: list[Call]) -> None:
    assert replay(Engine(), trace) == replay(Engine(), trace)


@settings(max_examples=examples(100), deadline=None)
@given(traces, traces)
def test_workspaces_do_not_affect_each_other(trace: list[Call], noise: list[Call]) -> None:
    """Workspace a's usage is the same whether or not workspace b's calls are interleaved."""
    mine = [Call(c.path, c.marks, c.gap, "a", c.ttft) for c in trace]
    theirs = [Call(c.path, c.marks, 0.0, "b", c.ttft) for c in noise]
    mixed: list[Call] = []
    for i, call in enumerate(mine):
        mixed.append(call)
        if i < len(theirs):
            mixed.append(theirs[i])
    alone = replay(Engine(), mine)
    together = [
        u for u, c in zip(replay(Engine(), mixed), mixed, strict=True) if c.workspace == "a"
    ]
    assert alone == together


@settings(max_examples=examples(150), deadline=None)
@given(traces, calls())
def test_an_identical_repeat_reads_everything_the_first_cached(
    trace: list[Call], call: Call
) -> None:
    """Recorded behaviour: the second of two identical calls reads what the first wrote + read."""
    engine = Engine()
    replay(engine, trace)
    now = 10_000.0
    prompt = call.prompt()
    first = engine.account(prompt, now=now, ready_at=now + 1)
    second = engine.account(prompt, now=now + 2)
    cached = first.usage.cache_read_input_tokens + first.usage.cache_creation_input_tokens
    assert second.usage.cache_read_input_tokens == cached
    assert second.usage.cache_creation_input_tokens == 0


@settings(max_examples=examples(100), deadline=None)
@given(traces)
def test_more_lookback_never_reads_less(trace: list[Call]) -> None:
    """With identical state, a wider window finds at least what the documented one finds."""
    narrow, wide = Engine(), Engine(lookback=40)
    now = 0.0
    for call in trace:
        now += call.gap
        prompt = call.prompt()
        probe_n = narrow.account(prompt, now=now, workspace=call.workspace, commit=False)
        probe_w = wide.account(prompt, now=now, workspace=call.workspace, commit=False)
        if narrow.entries.keys() == wide.entries.keys():
            assert probe_w.usage.cache_read_input_tokens >= probe_n.usage.cache_read_input_tokens
        narrow.account(prompt, now=now, workspace=call.workspace)
        wide.account(prompt, now=now, workspace=call.workspace)
