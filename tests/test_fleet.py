"""The fleet gate against a real Redis: one scout per cold prefix across threads, tasks and
processes; dead scouts replaced; an unreachable server lets calls go ungated."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest

from cachewise.errors import CachewiseWarning
from cachewise.gate import open_gate
from conftest import REDIS_URL

redis = pytest.importorskip("redis")

from cachewise.fleet import RedisGate, gate_digest  # noqa: E402

KEY = ("ws-test", "claude-sonnet-4-6", "0" * 64)


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    return redis_prefix


def contend(gate: RedisGate, n: int, hold: float = 0.3, ok: bool = True) -> list[str]:
    """`n` threads acquire one key at once; the scout holds `hold` seconds, then releases."""
    roles: list[str] = []
    barrier = threading.Barrier(n)

    def call() -> None:
        barrier.wait()
        ticket = gate.acquire(KEY, 300)
        roles.append(ticket.role)
        if ticket.role == "scout":
            time.sleep(hold)  # the scout's time to first byte
            gate.release(ticket, ok=ok)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(roles)


def test_one_scout_among_32_threads_and_warm_after(prefix: str) -> None:
    gate = RedisGate(REDIS_URL, timeout=10, prefix=prefix)
    assert contend(gate, 32) == ["follower"] * 31 + ["scout"]
    assert gate.acquire(KEY, 300).role == "warm"
    gate.close()


def test_a_failed_scout_releases_the_followers_without_warming(prefix: str) -> None:
    gate = RedisGate(REDIS_URL, timeout=10, prefix=prefix)
    assert contend(gate, 4, ok=False) == ["follower"] * 3 + ["scout"]
    assert gate.acquire(KEY, 300).role == "scout"  # not warm: the next call scouts again
    gate.close()


_CHILD = """
import sys, time
from cachewise.fleet import RedisGate
url, prefix, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
gate = RedisGate(url, timeout=20, prefix=prefix)
time.sleep(max(0.0, start_at - time.time()))
ticket = gate.acquire(("ws-test", "claude-sonnet-4-6", "0" * 64), 300)
if ticket.role == "scout":
    time.sleep(0.5)
    gate.release(ticket, ok=True)
print(ticket.role)
"""


def test_one_scout_among_four_processes(prefix: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    start_at = f"{time.time() + 4.0:.3f}"  # past every child's imports: they contend together
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, REDIS_URL, prefix, start_at],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    roles = sorted(child.communicate(timeout=60)[0].strip() for child in children)
    assert roles == ["follower"] * 3 + ["scout"]


def test_a_dead_scout_is_replaced_when_its_lease_expires(prefix: str) -> None:
    gate = RedisGate(REDIS_URL, timeout=5, prefix=prefix, lease=0.5, poll=0.05)
    dead = gate.acquire(KEY, 300)  # never released: its process died
    assert dead.role == "scout"
    heir = gate.acquire(KEY, 300)
    assert heir.role == "scout" and 0.4 <= heir.waited < 2.0
    gate.release(heir, ok=True)
    assert gate.acquire(KEY, 300).role == "warm"


def test_a_release_cannot_delete_another_scouts_lease(prefix: str) -> None:
    gate = RedisGate(REDIS_URL, timeout=5, prefix=prefix, lease=0.3)
    late = gate.acquire(KEY, 300)
    time.sleep(0.4)  # its lease expired: the next call is elected
    current = gate.acquire(KEY, 300)
    assert late.role == current.role == "scout" and late.lease != current.lease
    gate.release(late, ok=False)
    client = redis.Redis.from_url(REDIS_URL)
    lease_key = f"{prefix}{{{gate_digest(KEY)}}}:lease"
    assert client.get(lease_key).decode() == current.lease
    waiting = RedisGate(REDIS_URL, timeout=0.2, prefix=prefix, lease=0.3)
    assert waiting.acquire(KEY, 300).role == "timeout"  # the current scout still holds it
    client.close()


def test_keys_are_hashed_never_stored_raw(prefix: str) -> None:
    gate = RedisGate(REDIS_URL, timeout=5, prefix=prefix)
    gate.release(gate.acquire(KEY, 300), ok=True)
    client = redis.Redis.from_url(REDIS_URL)
    names = [k.decode() for k in client.scan_iter(match=f"{prefix}*")]
    assert names == [f"{prefix}{{{gate_digest(KEY)}}}:warm"]
    assert 0 < client.pttl(names[0]) <= 300_000
    assert not any("ws-test" in n for n in names)
    client.close()


def test_an_unreachable_redis_lets_calls_go_ungated_with_one_warning() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gate = open_gate(f"redis://:secret@127.0.0.1:{port}/0", timeout=5)
    with pytest.warns(CachewiseWarning, match="ungated") as caught:
        ticket = gate.acquire(KEY, 300)
    assert ticket.role == "ungated"
    assert "secret" not in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same outage warns once
        assert gate.acquire(KEY, 300).role == "ungated"
        assert asyncio.run(gate.acquire_async(KEY, 300)).role == "ungated"
        gate.release(ticket, ok=True)


def test_32_tasks_on_one_loop_elect_one_scout(prefix: str) -> None:
    gate = RedisGate(REDIS_URL, timeout=10, prefix=prefix)

    async def main() -> list[str]:
        async def call() -> str:
            ticket = await gate.acquire_async(KEY, 300)
            if ticket.role == "scout":
                await asyncio.sleep(0.3)
                await gate.release_async(ticket, ok=True)
            return ticket.role

        roles = list(await asyncio.gather(*(call() for _ in range(32))))
        roles.append((await gate.acquire_async(KEY, 300)).role)
        await gate.aclose()
        return roles

    roles = asyncio.run(main())
    assert sorted(roles[:-1]) == ["follower"] * 31 + ["scout"] and roles[-1] == "warm"

    async def again() -> str:  # a second loop gets connections of its own
        role = (await gate.acquire_async(("other",), 300)).role
        await gate.aclose()
        return role

    assert asyncio.run(again()) == "scout"


def test_a_gate_on_a_given_client_serves_threads_and_tasks(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    gate = RedisGate(client, timeout=5, prefix=prefix)

    async def main() -> str:
        ticket = await gate.acquire_async(KEY, 300)
        await gate.release_async(ticket, ok=True)
        return ticket.role

    assert asyncio.run(main()) == "scout"
    assert gate.acquire(KEY, 300).role == "warm"
    client.close()


def test_open_gate_takes_a_redis_url_and_refuses_other_strings() -> None:
    from cachewise.errors import InputError

    assert isinstance(open_gate("redis://127.0.0.1:6379/0"), RedisGate)
    with pytest.raises(InputError, match="gate"):
        open_gate("memcached://127.0.0.1")


# -- end to end: wrapped SDK clients against the emulator -----------------------------------------


def test_wrapped_clients_sharing_redis_write_a_cold_prefix_once(prefix: str) -> None:
    from cachewise import wrap
    from cachewise.testing import Emulator
    from conftest import text

    system = text(1500, f"fleet {uuid.uuid4().hex}")  # a prefix no earlier run has warmed
    with Emulator(clock="real", ttft_ms=300) as emu:
        # four "machines", each its own wrapped client and its own RedisGate, two threads each
        clients = [wrap(emu.client(), ledger=False, lint="off", gate=REDIS_URL) for _ in range(4)]
        usages: list[Any] = []
        barrier = threading.Barrier(8)

        def call(i: int) -> None:
            barrier.wait()
            message = clients[i % 4].messages.create(
                model="claude-sonnet-4-6",
                max_tokens=20,
                system=system,
                messages=[{"role": "user", "content": f"Question {i}"}],
            )
            usages.append(message.usage)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    writes = sum(bool(u.cache_creation_input_tokens) for u in usages)
    reads = sum(bool(u.cache_read_input_tokens) for u in usages)
    assert (writes, reads) == (1, 7)


def test_two_runs_sharing_redis_write_a_cold_prefix_once(prefix: str, tmp_path: Path) -> None:
    from cachewise.runner import RunOptions, run_requests
    from cachewise.testing import Emulator
    from conftest import text

    system = text(1500, f"runs {uuid.uuid4().hex}")
    requests = [
        {
            "custom_id": f"r{i}",
            "params": {
                "model": "claude-sonnet-4-6",
                "max_tokens": 20,
                "system": system,
                "messages": [{"role": "user", "content": f"Question {i}"}],
            },
        }
        for i in range(6)
    ]
    summaries: list[Any] = []
    with Emulator(clock="real", ttft_ms=300) as emu:

        def run(n: int) -> None:
            options = RunOptions(workers=3, redis=REDIS_URL)
            out = tmp_path / f"out{n}.jsonl"
            summaries.append(run_requests(requests, out, emu.client(), options=options))

        runs = [threading.Thread(target=run, args=(n,)) for n in range(2)]
        for t in runs:
            t.start()
        for t in runs:
            t.join()
    assert sum(s.writes for s in summaries) == 1
    assert sum(s.reads for s in summaries) == 11


def test_cachewise_run_takes_a_redis_url_and_refuses_what_is_not_one(
    prefix: str, tmp_path: Path
) -> None:
    import json

    from click.testing import CliRunner

    from cachewise.cli import main
    from conftest import text

    system = text(1500, f"cli {uuid.uuid4().hex}")
    rows = [
        {
            "custom_id": f"r{i}",
            "params": {
                "model": "claude-sonnet-4-6",
                "max_tokens": 20,
                "system": system,
                "messages": [{"role": "user", "content": f"Question {i}"}],
            },
        }
        for i in range(4)
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["run", str(path), "--out", str(tmp_path / "o.jsonl"), "--emulate"]
    refused = CliRunner().invoke(main, [*args, "--redis", "memcached://127.0.0.1"])
    assert refused.exit_code == 2 and "redis://" in refused.output
    assert not (tmp_path / "o.jsonl").exists()
    ran = CliRunner().invoke(main, [*args, "--redis", REDIS_URL, "--format", "json"])
    assert ran.exit_code == 0, ran.output
    summary = json.loads(ran.output[ran.output.index("{") :])
    assert summary["succeeded"] == 4 and summary["writes"] == 1
