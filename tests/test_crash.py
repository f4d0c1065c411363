"""A process killed while calls are in flight leaves a ledger with every call that returned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from cachewise.ledger import Ledger

WORKER = textwrap.dedent("""
    import sys, threading
    from cachewise import wrap
    from cachewise.testing import Emulator

    system = "You are a ledger clerk. " * 400
    with Emulator(clock="real", ttft_ms=150, output_tokens_per_s=400) as emu:
        client = wrap(emu.client(), ledger=sys.argv[1])

        def work(n):
            i = 0
            while True:
                i += 1
                m = client.messages.create(
                    model="claude-sonnet-4-6", max_tokens=20, system=system,
                    messages=[{"role": "user", "content": f"worker {n} call {i}"}])
                print(m._request_id, flush=True)   # only after the call has returned

        for n in range(4):
            threading.Thread(target=work, args=(n,), daemon=True).start()
        threading.Event().wait()
""")


def test_sigkill_mid_flight_loses_no_returned_call(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    returned = killed_after(WORKER, path, 12)  # calls of the other threads are in flight then
    assert len(returned) >= 12, "the worker did not get going"
    assert set(returned) <= recorded(path)


def killed_after(script: str, path: Path, n: int) -> list[str]:
    """Run `script` (it prints each call's request id once answered) until it has printed `n`
    ids, then SIGKILL it: the ids it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    returned: list[str] = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while len(returned) < n and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        returned.append(line.strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    return returned


def recorded(path: Path) -> set[str | None]:
    with Ledger(path) as ledger:
        return {c.request_id for c in ledger.calls()}


PROXY_WORKER = textwrap.dedent("""
    import sys, threading
    from cachewise.testing import Emulator, Proxy

    system = "You are a ledger clerk. " * 400
    lock = threading.Lock()
    with Emulator() as emu, Proxy(emu.base_url, ledger=sys.argv[1]) as proxy:
        def work(n):
            client = proxy.client()
            i = 0
            while True:
                i += 1
                m = client.messages.create(
                    model="claude-sonnet-4-6", max_tokens=20, system=system,
                    messages=[{"role": "user", "content": f"client {n} call {i}"}])
                with lock:   # only after the proxy has answered
                    print(m._request_id, flush=True)

        for n in range(3):
            threading.Thread(target=work, args=(n,), daemon=True).start()
        threading.Event().wait()
""")


def test_sigkill_of_the_proxy_loses_no_answered_call(tmp_path: Path) -> None:
    """A kill at any moment of the proxy's ledger writer, a commit or one of SQLite's checkpoints
    (about one commit in 90 carries one) included, leaves every answered call in the ledger,
    from the database file or from the log SQLite recovers."""
    path = tmp_path / "ledger.db"
    # Past the log's first ~1,000 pages (~10 a call): checkpoints have run, and the log has
    # started over at least once.
    returned = killed_after(PROXY_WORKER, path, 400)
    assert len(returned) >= 400, "the proxy did not get going"
    assert set(returned) <= recorded(path)
