"""Cold paths, where a user feels them most: a fresh process that lints a small request (a
pre-commit hook), and a fresh process whose first wrapped call carries a ~6k-token prompt it has
never sent. Each is timed from outside, as a new process, with an empty cachewise home (nothing
counted yet) and with the home a previous process left (the on-disk count cache warm); the sides
are interleaved round by round.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
from measure import emulator, free_port, prose

ROUNDS = 7

SMALL = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 256,
    "system": [
        {
            "type": "text",
            "text": "You triage tickets for Harbor Ledger. Answer in two sentences.",
            "cache_control": {"type": "ephemeral"},
        }
    ],
    "messages": [{"role": "user", "content": "Invoice INV-2026-0113 shows twice."}],
}

# A fresh process makes one call, bare or wrapped, to an emulator in another process that has
# answered this prompt before (so its side costs both the same); the prompt is new to the client.
_FIRST_CALL = """
import sys, time, json
import anthropic
import cachewise
body = json.loads(sys.argv[3])
client = anthropic.Anthropic(base_url=sys.argv[2], api_key="k", max_retries=0)
if sys.argv[1] == "wrap":
    client = cachewise.wrap(client, ledger=False)
sent = time.perf_counter()
client.messages.create(**body)
print(time.perf_counter() - sent)
"""


def _timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def _first_call(kind: str, url: str, body: dict, env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_CALL, kind, url, json.dumps(body)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out)


def _sides(
    cli: str,
    request: Path,
    edited: Path,
    url: str,
    big: dict,
    cold: dict[str, str],
    warm: dict[str, str],
) -> dict[str, Callable[[], float]]:
    lint = [cli, "lint", str(request)]
    return {
        "import": lambda: _timed([sys.executable, "-c", "import cachewise"], cold),
        "lint cold": lambda: _timed(lint, cold),
        "lint warm": lambda: _timed(lint, warm),
        "lint edited": lambda: _timed([cli, "lint", str(edited)], warm),
        "bare first call": lambda: _first_call("bare", url, big, cold),
        "wrapped first call, cold": lambda: _first_call("wrap", url, big, cold),
        "wrapped first call, warm": lambda: _first_call("wrap", url, big, warm),
    }


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2]


def run() -> str:
    cli = str(Path(sys.executable).with_name("cachewise"))
    results: dict[str, list[float]] = {}
    big = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "system": [{"type": "text", "text": prose(4_500, seed=11)}],
        "messages": [{"role": "user", "content": "Summarise ticket T-88213 from 2026-11-30."}],
    }
    with tempfile.TemporaryDirectory() as tmp:
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps(SMALL))
        # Bytecode, as an installed package has it (pip compiles at install), kept out of the tree.
        base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        base["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "bytecode")
        warm = {**base, "CACHEWISE_HOME": str(Path(tmp) / "warm")}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = emulator(port, env={**os.environ, "CACHEWISE_HOME": str(Path(tmp) / "emu")})
        try:
            headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
            httpx2.post(f"{url}/v1/messages", json=big, headers=headers, timeout=120)
            subprocess.run([cli, "lint", str(request)], env=warm, capture_output=True)
            _first_call("wrap", url, big, warm)  # leaves its counts in the warm home
            for i in range(ROUNDS):
                cold = {**base, "CACHEWISE_HOME": str(Path(tmp) / f"cold{i}")}
                # A prompt just edited: texts this home has never counted.
                edited = Path(tmp) / f"edited{i}.json"
                system = [{**SMALL["system"][0], "text": f"{SMALL['system'][0]['text']} Rev {i}."}]
                edited.write_text(json.dumps({**SMALL, "system": system}))
                sides = _sides(cli, request, edited, url, big, cold, warm)
                for label, seconds in sides.items():
                    results.setdefault(label, []).append(seconds())
        finally:
            server.terminate()
            server.wait()
    m = {k: _median(v) for k, v in results.items()}
    return "\n".join(
        [
            "## Cold start",
            "",
            f"`python bench/cold_start.py`: new processes, {ROUNDS} interleaved rounds, medians, "
            "with bytecode compiled (as an installed package has it). "
            "*Cold*: an empty cachewise home (nothing counted before); *warm*: the home an "
            "earlier process left (its on-disk count cache and tokenizer snapshot); *edited*: "
            "the warm home, and a request whose system text it has never counted (a pre-commit "
            "hook after an edit). The first-call rows time the call "
            "alone, in a new process, for a ~6k-token prompt it has never sent, against an "
            "emulator in another process that has answered it before.",
            "",
            "| what | seconds |",
            "|---|---|",
            f"| `python -c 'import cachewise'` | {m['import']:.2f} |",
            f"| `cachewise lint request.json` (small), cold | {m['lint cold']:.2f} |",
            f"| `cachewise lint request.json` (small), warm | {m['lint warm']:.2f} |",
            f"| `cachewise lint request.json` (small), edited | {m['lint edited']:.2f} |",
            f"| first call, bare SDK | {m['bare first call']:.2f} |",
            f"| first call, wrapped, cold | {m['wrapped first call, cold']:.2f} |",
            f"| first call, wrapped, warm | {m['wrapped first call, warm']:.2f} |",
            "",
            "A small lint starts no tokenizer when the disk cache has its texts; an edited one "
            "loads the tokenizer's snapshot; a cold one builds the tokenizer from ctok's "
            "vocabulary (once per machine), which is most of its time. A wrapped first call "
            "plans its breakpoints, which needs the prompt's token counts.",
            "",
        ]
    )


if __name__ == "__main__":
    print(run())
