"""The miss classifier's comparisons of prompts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cachewise import parse_request
from cachewise.diagnosis import shared_end, shared_length
from cachewise.request import Prompt
from conftest import examples, request


def _scan(a: Prompt, b: Prompt) -> int:
    n = 0
    for x, y in zip(a.positions, b.positions, strict=False):
        if x.prefix_hash != y.prefix_hash:
            break
        n += 1
    return n


def _blocks(texts: list[str]) -> list[dict[str, str]]:
    return [{"type": "text", "text": t} for t in texts or ["x"]]


words = st.lists(st.sampled_from(["alpha 2026-01-05", "beta INV-0042", "gamma"]), max_size=8)


@settings(max_examples=examples(100), deadline=None)
@given(common=words, left=words, right=words)
def test_the_shared_prefix_found_by_bisection_is_the_one_a_scan_finds(
    common: list[str], left: list[str], right: list[str]
) -> None:
    a, b = (
        parse_request(request(messages=[{"role": "user", "content": _blocks(common + tail)}]))
        for tail in (left, right)
    )
    assert shared_length(a, b) == _scan(a, b)
    end = shared_end(a, [b, a])
    assert end == len(a.positions) - 1
