"""The warm gate on its own: one scout per cold prefix, followers released at its first byte."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from cachewise.errors import InputError
from cachewise.gate import LocalGate, NoGate, Ticket, open_gate


def test_one_scout_and_the_rest_follow_across_threads() -> None:
    gate = LocalGate(timeout=5)
    roles: list[str] = []
    scout_ready = threading.Event()

    def call() -> None:
        ticket = gate.acquire("k", 300)
        roles.append(ticket.role)
        if ticket.role == "scout":
            scout_ready.set()
            time.sleep(0.2)  # the scout's time to first byte
            gate.release(ticket, ok=True)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(roles) == ["follower"] * 7 + ["scout"]
    assert gate.acquire("k", 300).role == "warm"


def test_async_tasks_follow_their_scout() -> None:
    async def main() -> list[str]:
        gate = LocalGate(timeout=5)

        async def call() -> str:
            ticket = await gate.acquire_async("k", 300)
            if ticket.role == "scout":
                await asyncio.sleep(0.1)
                gate.release(ticket, ok=True)
            return ticket.role

        return list(await asyncio.gather(*(call() for _ in range(8))))

    assert sorted(asyncio.run(main())) == ["follower"] * 7 + ["scout"]


def test_a_failed_scout_releases_the_followers_without_warming() -> None:
    gate = LocalGate(timeout=5)
    scout = gate.acquire("k", 300)
    waiter: list[Ticket] = []
    t = threading.Thread(target=lambda: waiter.append(gate.acquire("k", 300)))
    t.start()
    time.sleep(0.05)
    gate.release(scout, ok=False)
    t.join()
    assert waiter[0].role == "follower"
    assert gate.acquire("k", 300).role == "scout"  # not warm: the next call scouts again


def test_followers_give_up_after_the_timeout() -> None:
    gate = LocalGate(timeout=0.1)
    gate.acquire("k", 300)
    ticket = gate.acquire("k", 300)
    assert ticket.role == "timeout" and ticket.waited >= 0.1


def test_warm_lasts_the_ttl_on_the_gate_clock() -> None:
    now = [0.0]
    gate = LocalGate(clock=lambda: now[0])
    gate.release(gate.acquire("k", 300), ok=True)
    now[0] = 299.0
    assert gate.acquire("k", 300).role == "warm"
    now[0] = 301.0
    assert gate.acquire("k", 300).role == "scout"


def test_keys_are_independent_and_no_gate_never_waits() -> None:
    gate = LocalGate(timeout=5)
    assert gate.acquire("a", 300).role == "scout"
    assert gate.acquire("b", 300).role == "scout"
    assert NoGate().acquire("a", 300).role == "ungated"


def test_the_gate_forgets_prefixes_whose_warm_time_has_passed() -> None:
    """10,000 prefixes warmed one a second for 300 s each: the gate keeps what is warm (and at
    most as much again), not every prefix it ever saw."""
    now = [0.0]
    gate = LocalGate(clock=lambda: now[0])
    for key in range(10_000):
        gate.release(gate.acquire(key, 300), ok=True)
        assert len(gate._warm_until) <= 2 * 300
        now[0] += 1.0
    assert gate.acquire(9_999, 300).role == "warm"
    assert gate.acquire(9_000, 300).role == "scout"


def test_open_gate_names_the_gates_of_one_process() -> None:
    assert isinstance(open_gate("local"), LocalGate)
    assert isinstance(open_gate(None, timeout=3), LocalGate)
    assert isinstance(open_gate("off"), NoGate)
    mine = LocalGate(timeout=1)
    assert open_gate(mine) is mine
    with pytest.raises(InputError, match="gate"):
        open_gate("everywhere")


def test_release_async_lets_the_followers_go() -> None:
    async def main() -> list[str]:
        gate = LocalGate(timeout=5)
        scout = await gate.acquire_async("k", 300)
        follower = asyncio.create_task(gate.acquire_async("k", 300))
        await asyncio.sleep(0.05)
        await gate.release_async(scout, ok=True)
        await NoGate().release_async(scout, ok=True)
        return [scout.role, (await follower).role, (await gate.acquire_async("k", 300)).role]

    assert asyncio.run(main()) == ["scout", "follower", "warm"]
