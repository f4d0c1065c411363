"""Proxies as separate processes, as they run in production: a fleet sharing one Redis and one
PostgreSQL ledger, and a proxy killed while it answers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anthropic
import pytest

from cachewise.ledger import Ledger
from cachewise.spool import Spool
from cachewise.testing import Emulator
from conftest import REDIS_URL, text

MODEL = "claude-sonnet-4-6"


@contextmanager
def proxies(n: int, *args: str, env: dict[str, str] | None = None) -> Iterator[list[Any]]:
    """`n` `cachewise proxy` processes on free ports; their base URLs once each listens. Those
    still running at the end are stopped with Ctrl-C, and must stop cleanly: no traceback, no
    connection left unclosed."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cachewise", "proxy", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        for _ in range(n)
    ]
    try:
        urls = []
        for proc in procs:
            line = proc.stdout.readline() if proc.stdout else ""
            found = re.search(r"on (http://\S+)", line)
            if not found:
                proc.kill()
                raise AssertionError(f"the proxy did not start: {line}{proc.communicate()[1]}")
            urls.append(found.group(1))
        yield [(url, proc) for url, proc in zip(urls, procs, strict=True)]
    finally:
        stopped = [proc for proc in procs if proc.poll() is None]
        for proc in stopped:
            proc.send_signal(signal.SIGINT)
        said = []
        for proc in procs:
            try:
                err = proc.communicate(timeout=20)[1]  # a killed one's too: its pipes close
                said.append(err if proc in stopped else "")
            except subprocess.TimeoutExpired:
                proc.kill()
                said.append(proc.communicate()[1] + "\n(did not stop on Ctrl-C)")
    for err in said:
        assert "Traceback" not in err and "Unclosed" not in err and "did not stop" not in err, err


def test_a_fleet_of_four_proxies_writes_a_cold_prefix_once(
    postgres_url: str, redis_prefix: str
) -> None:
    """32 SDK clients at once, spread over 4 proxy processes that share a Redis gate and a
    PostgreSQL ledger, on a prefix no one has sent (the emulator takes 400 ms to first byte):
    one call writes, 31 read, and the ledger holds 32 rows, each with the breakpoints meant
    and whether they reached the wire. (The gate's keys are the proxies' own: a prompt no run
    sent before keeps them apart.)"""
    system = f"Run {uuid.uuid4()}: support notes for 2026-12-02. " + text(2500, "fleet")
    with (
        Emulator(ttft_ms=400.0, clock="real") as emu,
        proxies(
            4,
            "--upstream",
            emu.base_url,
            "--redis",
            REDIS_URL,
            "--ledger",
            postgres_url,
        ) as fleet,
    ):
        clients = [anthropic.Anthropic(api_key="sk-fleet", base_url=url) for url, _ in fleet]
        usages: list[Any] = []
        barrier = threading.Barrier(32)

        def one(i: int) -> None:
            barrier.wait()
            usages.append(
                clients[i % 4]
                .messages.create(
                    model=MODEL,
                    max_tokens=8,
                    system=system,
                    messages=[{"role": "user", "content": f"question {i}"}],
                )
                .usage
            )

        threads = [threading.Thread(target=one, args=(i,)) for i in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for c in clients:
            c.close()
    assert len(usages) == 32
    assert sum(u.cache_creation_input_tokens > 0 for u in usages) == 1
    assert sum(u.cache_read_input_tokens > 0 for u in usages) == 31
    with Ledger(postgres_url) as led:
        rows = led.calls()
    assert len(rows) == 32
    assert {r.wire for r in rows} == {"ok"}
    assert all(r.intended_breakpoints and r.source == "proxy" for r in rows)
    assert sorted(r.gate_role or "" for r in rows).count("scout") == 1


def test_a_proxy_killed_mid_load_keeps_every_answered_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL while 8 clients call: every call a client got an answer for has its row (the
    row is committed before the answer leaves)."""
    ledger = tmp_path / "ledger.db"
    home = tmp_path / "home"
    answered: list[str] = []
    stop = threading.Event()
    with (
        Emulator(ttft_ms=20.0, clock="real") as emu,
        proxies(
            1,
            "--upstream",
            emu.base_url,
            "--ledger",
            str(ledger),
            env={"CACHEWISE_HOME": str(home)},
        ) as fleet,
    ):
        url, proc = fleet[0]

        def caller(i: int) -> None:
            client = anthropic.Anthropic(api_key="sk-kill", base_url=url, max_retries=0)
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    raw = client.messages.with_raw_response.create(
                        model=MODEL,
                        max_tokens=8,
                        system="Orders of 2026-12-02. " + text(300, "kill"),
                        messages=[{"role": "user", "content": f"client {i} call {n}"}],
                    )
                    raw.parse()
                    answered.append(raw.headers["request-id"])
                except anthropic.APIError:
                    pass
            client.close()

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(answered) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        for t in threads:
            t.join(30)
    assert len(answered) >= 40
    with Ledger(ledger) as led:
        recorded = {r.request_id for r in led.calls()}
    monkeypatch.setenv("CACHEWISE_HOME", str(home))  # the killed process's spool, if any
    spooled = {c.request_id for c, _ in Spool(str(ledger)).pending()}
    missing = set(answered) - recorded - spooled
    assert not missing, f"{len(missing)} answered calls have no row"


def test_a_shared_rate_limit_does_not_count_what_warm_calls_read(redis_prefix: str) -> None:
    """A 6,000 tokens-per-minute bucket (100 a second) and a ~2,500-token prompt: the cold call
    takes its whole prompt; the four that follow read it and take only their few new tokens, so
    none waits. Counted whole, the third call would wait about 16 seconds."""
    import redis

    from cachewise.ratelimit import RedisRateLimit

    limit = RedisRateLimit(REDIS_URL, tokens_per_minute=6000, prefix=redis_prefix, max_wait=30)
    system = f"Run {uuid.uuid4()}: policies as of 2026-12-02. " + text(2000, "limit")
    from cachewise.testing import Proxy

    start = time.monotonic()
    with Emulator() as emu, Proxy(emu.base_url, rate_limit=limit) as proxy:
        client = proxy.client()
        for i in range(5):
            client.messages.create(
                model=MODEL,
                max_tokens=8,
                system=system,
                messages=[{"role": "user", "content": f"question {i}"}],
            )
    elapsed = time.monotonic() - start
    store = redis.Redis.from_url(REDIS_URL)
    level = float(store.hget(limit.key, "level") or 0)
    store.close()
    limit.close()
    assert elapsed < 8
    assert 3000 < level < 6000  # one prompt's worth taken, a few tokens more, some refilled


def test_the_proxy_refuses_a_wide_bind_without_a_token() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cachewise", "proxy", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--auth-token" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--gate", "redis"], "--gate redis needs --redis"),
        (["--upstream", "ftp://example"], "not an http(s) URL"),
        (["--emulate", "--upstream", "http://127.0.0.1:1"], "--emulate"),
        (["--redis", "http://nope"], "not a redis:// URL"),
        (["--itpm", "400000"], "--itpm is shared through Redis"),
    ],
)
def test_the_proxy_says_what_is_wrong_with_its_options(args: list[str], says: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cachewise", "proxy", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr
