"""The proxy against calling the emulator directly: throughput, and the latency it adds.

Three processes: the emulator, `cachewise proxy` in front of it with its ledger on (SQLite, a
durable commit per batch of calls) and a second proxy with `--ledger off`. wrk drives each side in
interleaved rounds: many connections for throughput, one connection for latency (p50, p99). Twice:
with an emulator of no simulated latency (every millisecond is a server's own work: the proxy's
ceiling) and with one that answers as late as the API does (`measure.REALISTIC`: what a client
of the API sees). Two realistic requests, both
cached after the first call: a support prompt that carries its own marker (the proxy forwards its
bytes unchanged) and the same prompt without one (the proxy plans it and sends the planned body).
Needs wrk (`apt install wrk`).
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import measure

HEADERS = {"content-type": "application/json", "x-api-key": "k", "anthropic-version": "2023-06-01"}
SYSTEM = " ".join(
    f"Order {4400 + i} for account {88200 + i * 7} was placed on 2026-11-{1 + i % 28:02d} "
    f"(invoice INV-2026-{i:04d}, ${(i * 37.5) % 900 + 20:,.2f}); ship from dock {i % 9}."
    for i in range(120)
)
MARKED: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 64,
    "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": "Where is order 4471?"}],
}
PLAIN: dict[str, Any] = {**MARKED, "system": SYSTEM}


def _wrk(url: str, body: Path, seconds: int, connections: int) -> tuple[float, float, float]:
    """Requests per second, and p50 and p99 latency in ms."""
    script = body.with_suffix(".lua")
    headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in HEADERS.items())
    script.write_text(f'wrk.method = "POST"\n{headers}wrk.body = {json.dumps(body.read_text())}\n')
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    return rps, _percentile(out, "50%"), _percentile(out, "99%")


def _percentile(out: str, which: str) -> float:
    value, unit = re.search(rf"{which}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def _proxy(port: int, upstream: str, *args: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "cachewise", "proxy", "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--upstream", upstream, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    measure.wait_listening(port)
    return proc


def run(rounds: int = 5, seconds: int = 3) -> str:
    if shutil.which("wrk") is None:
        return "## Proxy overhead\n\nSkipped: needs wrk (`apt install wrk`).\n"
    folder = Path(tempfile.mkdtemp(prefix="cachewise-bench-"))
    try:
        for name, body in (("marked", MARKED), ("plain", PLAIN)):
            (folder / f"{name}.json").write_text(json.dumps(body))
        bare = _compare(folder, {}, rounds, seconds, connections=16)
        api = _compare(folder, measure.REALISTIC, max(3, rounds // 2), seconds, connections=64)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    latency = measure.REALISTIC
    return "\n".join(
        [
            "## Proxy overhead",
            "",
            f"`python bench/proxy_overhead.py`: the emulator called directly and through "
            f"`cachewise proxy` (with its SQLite ledger, and with `--ledger off`), each its own "
            f"process on this machine's {_cpus()} CPUs, which the load generator shares; wrk "
            f"for throughput and with 1 connection for latency, interleaved rounds of {seconds} s "
            f"per side; medians of the rounds and of their ratios. A "
            f"~{len(SYSTEM) // 4:,}-token cached support prompt with numbers, dates and ids. "
            "Targets: throughput >= 70% of direct, p50 added <= 1.5 ms.",
            "",
            f"With no simulated latency ({rounds} rounds, 16 connections): the upstream answers "
            "from memory in a fraction of a millisecond, so this is the proxy's own CPU per call "
            "against the emulator's, the most calls one proxy process serves.",
            "",
            *_table(bare),
            "",
            f"With the API's latency ({max(3, rounds // 2)} rounds, 64 connections): the emulator "
            f"takes {latency['ttft_ms']} ms to the first byte plus {latency['prefill_ms_per_1k']} "
            f"ms per 1,000 uncached tokens and streams {latency['output_tokens_per_s']} tokens/s, "
            "as a client of the real API sees: what the proxy costs such a client. The request "
            "with no marker is slower sent directly: nothing caches it, and it pays the prefill "
            "that the proxy's planned request reads from the cache.",
            "",
            *_table(api),
            "",
        ]
    )


Seen = dict[tuple[str, str, str], list[float]]


def _compare(
    folder: Path, latency: dict[str, float], rounds: int, seconds: int, *, connections: int
) -> Seen:
    """Each body sent directly and through both proxies, in interleaved rounds."""
    emu_port, proxy_port, bare_port = measure.free_port(), measure.free_port(), measure.free_port()
    emulator = measure.emulator(emu_port, **latency)
    upstream = f"http://127.0.0.1:{emu_port}"
    procs = [
        emulator,
        _proxy(proxy_port, upstream, "--ledger", str(folder / f"ledger-{emu_port}.db")),
        _proxy(bare_port, upstream, "--ledger", "off"),
    ]
    sides = {"direct": emu_port, "proxy": proxy_port, "proxy, no ledger": bare_port}
    seen: Seen = {}
    try:
        for name in ("marked", "plain"):  # warm every side: the first call writes, later read
            for port in sides.values():
                _wrk(f"http://127.0.0.1:{port}/v1/messages", folder / f"{name}.json", 1, 1)
        for _ in range(rounds):
            for name in ("marked", "plain"):
                for side, port in sides.items():
                    url = f"http://127.0.0.1:{port}/v1/messages"
                    rps, _, _ = _wrk(url, folder / f"{name}.json", seconds, connections)
                    _, p50, p99 = _wrk(url, folder / f"{name}.json", seconds, 1)
                    for metric, value in (("rps", rps), ("p50", p50), ("p99", p99)):
                        seen.setdefault((name, side, metric), []).append(value)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    return seen


def _table(seen: Seen) -> list[str]:
    def med(name: str, side: str, metric: str) -> float:
        return statistics.median(seen[name, side, metric])

    rows = [
        "| request | side | throughput | ratio | p50 latency (added) | p99 latency |",
        "|---|---|---|---|---|---|",
    ]
    for name, label in (("marked", "marked by the client"), ("plain", "no marker: planned")):
        for side in ("proxy", "proxy, no ledger"):
            ratios = [
                p / d
                for p, d in zip(seen[name, side, "rps"], seen[name, "direct", "rps"], strict=True)
            ]
            added = [
                p - d
                for p, d in zip(seen[name, side, "p50"], seen[name, "direct", "p50"], strict=True)
            ]
            rows.append(
                f"| {label} | {side} | {med(name, side, 'rps'):,.0f} req/s vs "
                f"{med(name, 'direct', 'rps'):,.0f} | {statistics.median(ratios):.2f} | "
                f"{med(name, side, 'p50'):.2f} vs {med(name, 'direct', 'p50'):.2f} ms "
                f"({statistics.median(added):+.2f}) | "
                f"{med(name, side, 'p99'):.2f} vs {med(name, 'direct', 'p99'):.2f} ms |"
            )
    return rows


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    print(run())
