"""The structures of the recorded real calls (docs/fidelity.md), rebuilt with our own texts and
checked through the emulator against the recorded arithmetic."""

from __future__ import annotations

from typing import Any

import pytest

from cachewise.testing import Emulator
from cachewise.tokens import default_tokenizer
from conftest import CC, block, text

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
