"""Wall time and cost of 500 requests over one shared context, with and without the scout, at 1, 4
and 16 workers, against the emulator (in its own process) with a realistic latency: first byte
after 200 ms plus 10 ms per 1,000 uncached tokens, output at 200 tokens/s.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import measure

from cachewise.demo import workload
from cachewise.runner import RunOptions, run_requests

CALLS = 500
WORKERS = (1, 4, 16)


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


def run() -> str:
    port = measure.free_port()
    server = measure.emulator(port, **measure.REALISTIC)
    url = f"http://127.0.0.1:{port}"
    try:
        rows = []
        reqs = requests()
        with anthropic.Anthropic(api_key="bench", base_url=url) as client:
            for workers in WORKERS:
                for scout in (False, True):
                    httpx2.post(url + "/_emulator/reset", json={})
                    out = Path(tempfile.mkdtemp()) / "out.jsonl"
                    s = run_requests(
                        reqs, out, client, options=RunOptions(workers=workers, scout=scout)
                    )
                    rows.append((workers, scout, s))
    finally:
        server.terminate()
        server.wait(10)
    lines = [
        "## `cachewise run`: the scout",
        "",
        f"`python bench/runner_scout.py`: {CALLS} requests over one ~8,000-token context "
        "(claude-sonnet-4-6) against `cachewise emulate` in its own process, first byte after "
        "200 ms + 10 ms per 1,000 uncached tokens, output at 200 tokens/s.",
        "",
        "| workers | scout | wall | cache writes | cache reads | cost | vs no caching |",
        "|---|---|---|---|---|---|---|",
    ]
    for workers, scout, s in rows:
        lines.append(
            f"| {workers} | {'yes' if scout else 'no'} | {s.wall_seconds:.1f}s | "
            f"{s.writes} | {s.reads} | ${float(s.cost_usd):.4f} | "
            f"{float(s.cost_usd / s.cost_without_cache_usd):.3f}x |"
        )
    lines += [
        "",
        "Without the scout, the first wave of workers all start on a cold prefix and "
        "each pays the write; with it, one call writes and every other call reads.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
