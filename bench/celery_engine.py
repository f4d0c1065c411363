"""`cachewise run --engine celery` against the local engine: 1,000 requests over one shared context,
made by 1, 2 and 4 `cachewise worker` processes (8 calls at once each, Redis as broker and run
state), and by the local engine with as many threads; wall time, writes, reads and cost. The
emulator runs in its own process with a realistic latency: first byte after 200 ms plus 10 ms per
1,000 uncached tokens, output at 200 tokens/s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import measure

from cachewise.demo import workload
from cachewise.distributed import CeleryEngine
from cachewise.runner import RunOptions, RunSummary, run_requests

CALLS = 1000
PROCESSES = (1, 2, 4)
CONCURRENCY = 8  # calls at once per worker process
REDIS = os.environ.get("CACHEWISE_BENCH_REDIS", "redis://127.0.0.1:6379/0")


def requests() -> list[dict[str, Any]]:
    base = workload(1)[0]["params"]
    return [
        {
            "custom_id": f"r{i}",
            "params": {
                **base,
                "messages": [
                    {"role": "user", "content": f"Question {i}: what changed in section {i % 97}?"}
                ],
            },
        }
        for i in range(CALLS)
    ]


def _emulator() -> tuple[subprocess.Popen[bytes], str]:
    port = measure.free_port()
    return measure.emulator(port, **measure.REALISTIC), f"http://127.0.0.1:{port}"


Workers = list[tuple[subprocess.Popen[bytes], Path]]


def _workers(n: int, url: str, queue: str, home: Path) -> Workers:
    env = {
        **os.environ,
        "ANTHROPIC_API_KEY": f"bench-{uuid.uuid4().hex}",
        "ANTHROPIC_BASE_URL": url,
        "CACHEWISE_HOME": str(home),
    }
    out = []
    for i in range(n):
        log = home / f"worker-{i}.log"
        with log.open("wb") as f:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cachewise",
                    "worker",
                    "--broker",
                    REDIS,
                    "--queue",
                    queue,
                    "--concurrency",
                    str(CONCURRENCY),
                ],
                env=env,
                stdout=f,
                stderr=subprocess.STDOUT,
            )
        out.append((proc, log))
    deadline = time.monotonic() + 120
    while not all(b"ready" in log.read_bytes() for _, log in out):
        if time.monotonic() > deadline:
            raise RuntimeError("the workers did not start")
        time.sleep(0.1)
    return out


def _stop(workers: Workers) -> None:
    for proc, _ in workers:
        proc.terminate()
    for proc, _ in workers:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run() -> str:
    server, url = _emulator()
    reqs = requests()
    rows: list[tuple[str, int, int, RunSummary]] = []
    try:
        for n in PROCESSES:
            threads = n * CONCURRENCY
            httpx2.post(url + "/_emulator/reset", json={})
            home = Path(tempfile.mkdtemp())
            queue = f"cachewise-bench-{uuid.uuid4().hex[:8]}"
            workers = _workers(n, url, queue, home)
            try:
                engine = CeleryEngine(REDIS, queue=queue, prefix=f"cachewise-bench:{queue}:")
                s = run_requests(reqs, home / "out.jsonl", None, engine=engine)
            finally:
                _stop(workers)
            rows.append(("celery", n, threads, s))
            httpx2.post(url + "/_emulator/reset", json={})
            with anthropic.Anthropic(api_key=f"bench-{uuid.uuid4().hex}", base_url=url) as client:
                out = Path(tempfile.mkdtemp()) / "out.jsonl"
                s = run_requests(reqs, out, client, options=RunOptions(workers=threads))
            rows.append(("local", 1, threads, s))
    finally:
        server.terminate()
        server.wait(10)
    lines = [
        "## `cachewise run --engine celery`",
        "",
        f"`python bench/celery_engine.py`: {CALLS:,} requests over one ~8,000-token context "
        f"(claude-sonnet-4-6), made by 1, 2 and 4 `cachewise worker` processes of "
        f"{CONCURRENCY} threads (Redis as broker, run state and gate), then by the local engine "
        "with as many threads; `cachewise emulate` in its own process, first byte after 200 ms "
        "+ 10 ms per 1,000 uncached tokens, output at 200 tokens/s. Wall time is the driver's, "
        "from planning to the last result written (workers already started).",
        "",
        "| engine | processes | calls at once | wall | calls/s | cache writes | cache reads "
        "| cost | vs no caching |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for engine, n, threads, s in rows:
        lines.append(
            f"| {engine} | {n} | {threads} | {s.wall_seconds:.1f}s | "
            f"{s.succeeded / s.wall_seconds:.0f} | {s.writes} | {s.reads} | "
            f"${float(s.cost_usd):.4f} | {float(s.cost_usd / s.cost_without_cache_usd):.3f}x |"
        )
    lines += [
        "",
        "The same scout on both engines: one call writes the context, every other call reads "
        "it, so the cost is the same; the Celery engine adds a broker round trip and the "
        "run's Redis bookkeeping per call, and spreads the calls over processes (and machines).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
