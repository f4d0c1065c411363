"""The public testing helpers: the Emulator context manager and the pytest fixture."""

from __future__ import annotations

import math

import httpx2
import pytest

from cachewise import InputError
from cachewise.testing import Emulator
from conftest import CC, block, text


def test_the_pytest_fixture_gives_a_started_emulator(cachewise_emulator: Emulator) -> None:
    """The documented example: the second call of an agent reads the system prompt from cache."""
    client = cachewise_emulator.client()
    system = [block(text(1500, "agent"), CC)]
    first = client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=50,
        system=system,
        messages=[{"role": "user", "content": "Step 1"}],
    )
    second = client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=50,
        system=system,
        messages=[{"role": "user", "content": "Step 2"}],
    )
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert cachewise_emulator.cache()[0]["reads"] == 1


def test_advance_reset_and_stats() -> None:
    with Emulator() as emu:
        client = emu.client()
        kw = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 10,
            "system": [block(text(1500, "s"), CC)],
            "messages": [{"role": "user", "content": "q"}],
        }
        client.messages.create(**kw)
        assert emu.advance(301) == 301
        assert emu.cache() == []
        assert emu.stats()["requests"] == 1
        emu.reset()
        assert emu.now() == 0 and emu.stats()["requests"] == 0


def test_each_emulator_has_its_own_port_and_cache() -> None:
    with Emulator() as a, Emulator() as b:
        assert a.port != b.port
        kw = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 10,
            "system": [block(text(1500, "s"), CC)],
            "messages": [{"role": "user", "content": "q"}],
        }
        a.client().messages.create(**kw)
        assert b.client().messages.create(**kw).usage.cache_read_input_tokens == 0


def test_cache_lists_the_entries_as_the_control_api_does(cachewise_emulator: Emulator) -> None:
    cachewise_emulator.client().messages.create(
        model="claude-sonnet-4-6",
        max_tokens=10,
        system=[block(text(1500, "listed"), CC)],
        messages=[{"role": "user", "content": "q"}],
    )
    served = httpx2.get(cachewise_emulator.base_url + "/_emulator/cache").json()["entries"]
    [entry] = cachewise_emulator.cache()
    assert [entry] == served
    assert entry["readable_at"] == 0 and len(entry["prefix_hash"]) > 8


def test_advance_refuses_non_finite_and_absurd_seconds() -> None:
    with Emulator() as emu:
        for seconds in (math.nan, math.inf, 1e308, 10 * 365 * 86400 + 1, -1):
            with pytest.raises(InputError):
                emu.advance(seconds)
        assert emu.now() == 0 and emu.advance(301) == 301
