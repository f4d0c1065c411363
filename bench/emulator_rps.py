"""The emulator against a bare Starlette app that answers the same bytes, under the same uvicorn
settings, each in its own process, loaded by wrk (16 connections) in interleaved rounds.

The bare app reads the request's body and returns the emulator's own answer to it, captured
first: what any server must do at the least. The emulator runs with no simulated latency, so the
difference is its own work: reading, hashing and parsing the body (a request seen before is a
lookup), the engine, the reply. Two requests: a small cached one (about 1,400 tokens) and an
agent's 100-block cached one (about 57,000 tokens). Needs wrk (`apt install wrk`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import measure
from analyzer_speed import big_request

HEADERS = {"content-type": "application/json", "x-api-key": "k", "anthropic-version": "2023-06-01"}
SMALL: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 64,
    "system": [
        {
            "type": "text",
            "text": "You are the support assistant for Harbor Ledger. " * 120,
            "cache_control": {"type": "ephemeral"},
        }
    ],
    "messages": [{"role": "user", "content": "How do I export invoices for 2026-11?"}],
}
BARE = """
import sys
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from cachewise.server.net import listen, server

ANSWERS = {path: open(path, "rb").read() for path in sys.argv[2:]}

async def messages(request):
    body = await request.body()  # read, as every server must
    return Response(ANSWERS[request.query_params["a"]], media_type="application/json")

app = Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])
server(app, log_level="warning").run(sockets=[listen("127.0.0.1", int(sys.argv[1]))])
"""


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(url: str, body: Path, seconds: int) -> float:
    script = body.with_suffix(".lua")
    headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in HEADERS.items())
    text = json.dumps(body.read_text())
    script.write_text(f'wrk.method = "POST"\n{headers}wrk.body = {text}\n')
    out = subprocess.run(
        ["wrk", "-t1", "-c16", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]


def run(rounds: int = 5, seconds: int = 3) -> str:
    if shutil.which("wrk") is None:
        return "## Emulator throughput\n\nSkipped: needs wrk (`apt install wrk`).\n"
    import httpx2

    folder = Path(tempfile.mkdtemp(prefix="cachewise-bench-"))
    bodies = {"small": SMALL, "big": big_request()}
    for name, body in bodies.items():
        (folder / f"{name}.json").write_text(json.dumps(body))
    emu_port, bare_port = measure.free_port(), measure.free_port()
    emulator = measure.emulator(emu_port)
    answers = []
    for name in bodies:  # twice: the first writes, the second reads; the bare app answers that
        for _ in range(2):
            answer = httpx2.post(
                f"http://127.0.0.1:{emu_port}/v1/messages",
                content=(folder / f"{name}.json").read_bytes(),
                headers=HEADERS,
                timeout=60,
            )
        (folder / f"{name}.answer").write_bytes(answer.content)
        answers.append(str(folder / f"{name}.answer"))
    bare = subprocess.Popen(
        [sys.executable, "-c", BARE, str(bare_port), *answers],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    measure.wait_listening(bare_port)
    rate: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    try:
        for _ in range(rounds):
            for name in bodies:
                for side, port, proc in (
                    ("emulator", emu_port, emulator),
                    ("bare", bare_port, bare),
                ):
                    query = "" if side == "emulator" else f"?a={folder / name}.answer"
                    before = _cpu(proc.pid)
                    rps = _wrk(
                        f"http://127.0.0.1:{port}/v1/messages{query}",
                        folder / f"{name}.json",
                        seconds,
                    )
                    used = _cpu(proc.pid) - before
                    rate.setdefault((name, side), []).append(rps)
                    cpu.setdefault((name, side), []).append(used / (rps * seconds))
    finally:
        for proc in (emulator, bare):
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    rows = []
    for name, label in (
        ("small", "small cached request (~1,400 tokens)"),
        ("big", "100-block cached request (~57,000 tokens)"),
    ):
        ratios = [e / b for e, b in zip(rate[name, "emulator"], rate[name, "bare"], strict=True)]
        rows.append(
            f"| {label} | {statistics.median(rate[name, 'emulator']):,.0f} req/s, "
            f"{statistics.median(cpu[name, 'emulator']) * 1e3:.2f} ms CPU/req | "
            f"{statistics.median(rate[name, 'bare']):,.0f} req/s, "
            f"{statistics.median(cpu[name, 'bare']) * 1e3:.2f} ms CPU/req | "
            f"{statistics.median(ratios):.2f} |"
        )
    return "\n".join(
        [
            "## Emulator throughput",
            "",
            f"`python bench/emulator_rps.py`: wrk, 16 connections, {rounds} interleaved rounds of "
            f"{seconds} s per side and request; each server is one uvicorn process (the same "
            "settings); medians. CPU per request is the server process's own. Target: the "
            "emulator at 50% or more of the bare app.",
            "",
            "| request | emulator | bare Starlette, same answer | ratio |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    )


if __name__ == "__main__":
    print(run())
