"""A fleet of proxies behaves like one: writes per cold prefix with 4 proxies and 64 clients.

Four `cachewise proxy` processes share one Redis (the warm gate) in front of one emulator that
takes 400 ms to a first byte, as the API does on a long prompt. For each of several fresh
prefixes (a support prompt with its own order numbers and dates), 64 clients at once send a
question on it, spread round-robin over the four proxies. Without a shared gate each proxy's
first call would write (4 writes a prefix; without any gate, up to 64); with it, one does.
Needs Redis at CACHEWISE_TEST_REDIS (default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid

import httpx2
import measure

REDIS = os.environ.get("CACHEWISE_TEST_REDIS", "redis://127.0.0.1:6379/0")
HEADERS = {"content-type": "application/json", "x-api-key": "k", "anthropic-version": "2023-06-01"}


def _system(run: str, n: int) -> str:
    return f"Run {run}, prefix {n}. " + " ".join(
        f"Order {5100 + i} for account {77000 + i * 13} shipped 2026-10-{1 + i % 28:02d} "
        f"(ticket T-{n:02d}-{i:04d}, ${(i * 41.25) % 700 + 15:,.2f})."
        for i in range(150)
    )


def _wave(urls: list[str], system: str, clients: int) -> tuple[int, int]:
    """`clients` calls at once on one cold prefix: how many wrote, and how many read."""
    writes = reads = 0
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def one(i: int) -> None:
        nonlocal writes, reads
        body = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 8,
            "system": system,
            "messages": [{"role": "user", "content": f"Where is order {5100 + i}?"}],
        }
        with httpx2.Client(timeout=60) as client:
            barrier.wait()
            usage = client.post(
                f"{urls[i % len(urls)]}/v1/messages", content=json.dumps(body), headers=HEADERS
            ).json()["usage"]
        with lock:
            writes += usage["cache_creation_input_tokens"] > 0
            reads += usage["cache_read_input_tokens"] > 0

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return writes, reads


def run(proxies: int = 4, clients: int = 64, prefixes: int = 5) -> str:
    try:
        import redis

        redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping()
    except Exception as exc:
        return f"## Proxy fleet\n\nSkipped: no Redis at {REDIS} ({type(exc).__name__}).\n"
    emu_port = measure.free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "cachewise", "emulate", "--port", str(emu_port), "--ttft-ms", "400"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    measure.wait_listening(emu_port)
    ports = [measure.free_port() for _ in range(proxies)]
    procs = [emulator]
    options = ["--upstream", f"http://127.0.0.1:{emu_port}", "--redis", REDIS, "--ledger", "off"]
    for port in ports:
        command = [sys.executable, "-m", "cachewise", "proxy", "--port", str(port), *options]
        procs.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        measure.wait_listening(port)
    run_id = uuid.uuid4().hex[:8]
    try:
        waves = [
            _wave([f"http://127.0.0.1:{p}" for p in ports], _system(run_id, n), clients)
            for n in range(prefixes)
        ]
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    writes = [w for w, _ in waves]
    reads = [r for _, r in waves]
    return "\n".join(
        [
            "## Proxy fleet",
            "",
            f"`python bench/proxy_fleet.py`: {proxies} proxy processes sharing one Redis gate, in "
            f"front of one emulator with a 400 ms first byte; for each of {prefixes} fresh "
            f"~4,000-token prefixes, {clients} clients at once, round-robin over the proxies. "
            "Target: 1.00 writes per cold prefix.",
            "",
            "| prefixes | calls | writes per cold prefix | reads |",
            "|---|---|---|---|",
            f"| {prefixes} | {prefixes * clients} | {sum(writes) / prefixes:.2f} "
            f"(each: {', '.join(map(str, writes))}) | {sum(reads)} |",
            "",
        ]
    )


if __name__ == "__main__":
    print(run())
