"""The peers' strategies, checked against the real libraries: `python bench/run.py peers`.

Runs LiteLLM, LangChain (+ langchain-anthropic's AnthropicPromptCachingMiddleware), pydantic-ai
and the anthropic SDK's automatic caching as clients of `cachewise emulate` on loopback, through
`cachewise proxy --plan off --lint off --gate off --store-prompts` (it forwards every byte as it
came and records each call in a ledger: the body, when it started, the usage it was answered).
Each peer runs `drive.py` on an agent and a batch workload with its own API key, so its calls
have a workspace (and a cache) of their own. Then, per peer and workload:

- real: the markers the library sent, and what the emulator billed it;
- modelled: the captured trace with every marker stripped (the client's own put back: pydantic-ai's
  CachePoints), replayed by `cachewise simulate`'s strategy of the same name.

The peers are installed in a virtual environment of their own (pinned in requirements.txt; with
`--latest`, the newest releases in another), created under the user's cache directory on first
use: they are never part of cachewise's install. Rerun after a peer's release (`--latest`) to see
whether its model drifted.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from cachewise.body import block_list, cache_control, strip_markers
from cachewise.cost import cost
from cachewise.ledger import key_workspace, open_ledger
from cachewise.simulate import replay_strategy
from cachewise.strategies import STRATEGIES
from cachewise.trace import ledger_rows, rows_from
from cachewise.usage import normalize_usage

HERE = Path(__file__).parent
PACKAGES = [
    "litellm",
    "langchain",
    "langchain-anthropic",
    "langchain-core",
    "pydantic-ai-slim",
    "anthropic",
]
# The emulator's first byte per workload. The agent's is fast: a sequential client's calls a few
# tens of milliseconds apart, less than the simulator's default first byte (500 ms), so its
# replay from timestamps alone (a trace without `ttft_ms`) matches only because each turn is
# known to follow the answer it carries. The batch's requests carry no answer: its first byte
# comes after the simulator's default, so that replay has them readable no later than they were.
FIRST_BYTE_MS = {"agent": 20, "batch": 600}


def _user_prompts_1h(body: dict[str, Any]) -> dict[str, Any]:
    """pydantic-ai's CachePoint(ttl="1h") ending every user prompt (not the tool results): the
    client's markers, put back after stripping."""
    for message in body.get("messages") or []:
        blocks = block_list(message, "content") if message.get("role") == "user" else None
        if blocks and not any(b.get("type") == "tool_result" for b in blocks):
            blocks[-1]["cache_control"] = cache_control("1h")
    return body


def _nothing(body: dict[str, Any]) -> dict[str, Any]:
    return body


# scenario (drive.py) -> (the strategy that models it, the client's own markers, its package)
SCENARIOS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]], str]] = {
    "sdk-auto": ("auto", _nothing, "anthropic"),
    "litellm": ("litellm", _nothing, "litellm"),
    "langchain": ("langchain", _nothing, "langchain-anthropic"),
    "pydantic-ai": ("pydantic-ai", _nothing, "pydantic-ai-slim"),
    "pydantic-ai-cachepoint-1h": ("pydantic-ai", _user_prompts_1h, "pydantic-ai-slim"),
    "pydantic-ai-messages": ("pydantic-ai-messages", _nothing, "pydantic-ai-slim"),
}
WORKLOADS = ("agent", "batch")


def peers_python(latest: bool) -> Path:
    """The peers' interpreter, in a venv made (and filled from the registry) on first use."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cachewise-bench"
    venv = Path(
        os.environ.get("CACHEWISE_PEERS_VENV") or base / ("peers-latest" if latest else "peers")
    )
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        spec = (
            ["-r", str(HERE / "requirements.txt")]
            if not latest
            else [*PACKAGES, "pydantic-ai-slim[anthropic]"]
        )
        subprocess.run([str(python), "-m", "pip", "install", "-q", *spec], check=True)
    elif latest:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-U", *PACKAGES], check=True)
    return python


def versions(python: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json; "
        f"print(json.dumps({{p: m.version(p) for p in {PACKAGES!r}}}))"
    )
    return json.loads(
        subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True).stdout
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(stack: ExitStack, args: list[str], port: int, log_path: Path) -> str:
    """`cachewise ARGS` on a loopback port, stopped when the stack closes."""
    log = stack.enter_context(log_path.open("w+b"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cachewise", *args, "--port", str(port)], stdout=log, stderr=log
    )
    stack.callback(lambda: (proc.terminate(), proc.wait(10)))
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return f"http://127.0.0.1:{port}"
        time.sleep(0.05)
    log.seek(0)
    raise SystemExit(f"cachewise {args[0]} did not start: {log.read().decode()[-2000:]}")


def capture(python: Path, ledger: Path, workload: str) -> None:
    """Every peer on a workload through the capturing proxy; the ledger holds the calls."""
    with ExitStack() as stack:
        first_byte = ["--ttft-ms", str(FIRST_BYTE_MS[workload]), "--prefill-ms-per-1k", "0"]
        emulate = ["emulate", *first_byte, "--output-tokens-per-s", "0"]
        emulator = _serve(stack, emulate, _free_port(), ledger.with_suffix(".emulator.log"))
        record = ["--plan", "off", "--lint", "off", "--gate", "off", "--store-prompts"]
        proxy = _serve(
            stack,
            ["proxy", "--upstream", emulator, *record, "--ledger", str(ledger)],
            _free_port(),
            ledger.with_suffix(".proxy.log"),
        )
        env = {k: v for k, v in os.environ.items() if not k.endswith(("_PROXY", "_proxy"))}
        for scenario in SCENARIOS:
            where = ["--base-url", proxy, "--api-key", _key(scenario, workload)]
            subprocess.run(
                [str(python), str(HERE / "drive.py"), scenario, workload, *where],
                check=True,
                env=env,
                timeout=600,
                stdout=subprocess.DEVNULL,
            )


def _key(scenario: str, workload: str) -> str:
    return f"sk-peers-{scenario}-{workload}"


def marker_paths(body: dict[str, Any]) -> list[str]:
    """Where a body carries markers, in the API's order, a 1h one with its TTL."""

    def mark(holder: dict[str, Any], path: str) -> list[str]:
        cc = holder.get("cache_control")
        if not isinstance(cc, dict):
            return []
        return [path + (" 1h" if cc.get("ttl") == "1h" else "")]

    out = mark(body, "auto")
    for i, tool in enumerate(body.get("tools") or []):
        out += mark(tool, f"tools/{i}")
    system = body.get("system")
    for i, block in enumerate(system if isinstance(system, list) else []):
        out += mark(block, f"system/{i}")
    for m, message in enumerate(body.get("messages") or []):
        content = message.get("content")
        for b, block in enumerate(content if isinstance(content, list) else []):
            out += mark(block, f"messages/{m}/{b}")
    return out


def compare(ledgers: dict[str, Path], peer_versions: dict[str, str]) -> list[dict[str, Any]]:
    """Per peer and workload: the captured calls, their markers and cost, against the model."""
    rows = []
    for ledger in ledgers.values():
        rows += ledger_rows(open_ledger(ledger), include_emulated=True)[0]
    out = []
    for scenario, (strategy_name, client, package) in SCENARIOS.items():
        strategy = STRATEGIES[strategy_name]
        for workload in WORKLOADS:
            space = key_workspace(_key(scenario, workload))
            captured = rows_from([r for r in rows if r.get("workspace") == space])
            real_cost = sum(
                float(cost(normalize_usage(r.usage), model=r.request["model"]).total_usd)
                for r in captured
            )
            stripped = [replace(r, request=client(strip_markers(r.request))) for r in captured]
            modelled = replay_strategy(stripped, strategy_name, strategy)
            # The same trace as a ledger without first bytes would give it: timestamps alone.
            bare = [replace(r, ttft_ms=None) for r in stripped]
            timestamps_only = replay_strategy(bare, strategy_name, strategy)
            same = sum(
                marker_paths(strategy(s.request, [])) == marker_paths(r.request)
                for s, r in zip(stripped, captured, strict=True)
            )
            last = captured[-1].request if captured else {}
            out.append(
                {
                    "peer": f"{scenario} ({package} {peer_versions.get(package, '?')})",
                    "strategy": strategy_name,
                    "workload": workload,
                    "requests": len(captured),
                    "real_markers_last": marker_paths(last),
                    "model_markers_last": marker_paths(strategy(stripped[-1].request, []))
                    if captured
                    else [],
                    "same_markers": same,
                    "real_usd": real_cost,
                    "modelled_usd": float(modelled.cost_usd),
                    "timestamps_only_usd": float(timestamps_only.cost_usd),
                    "modelled_errors": modelled.errors,
                }
            )
    return out


def table(results: list[dict[str, Any]], peer_versions: dict[str, str]) -> str:
    lines = [
        "Each peer library run for real against `cachewise emulate`, "
        "captured by `cachewise proxy --plan off --store-prompts`, against `cachewise simulate`'s "
        "strategy of the same name replaying the captured trace with its markers stripped "
        "(`python bench/run.py peers`; the peers in a venv of their own, bench/peers/). "
        "Agent: 6 turns on a ~6k-token system prompt and 2 tools, two of them after a tool round, "
        f"first byte {FIRST_BYTE_MS['agent']} ms (calls tens of milliseconds apart); batch: 8 "
        f"one-turn questions on the same prompt, 4 at a time, first byte "
        f"{FIRST_BYTE_MS['batch']} ms. The last column replays the trace without its first "
        "bytes (`ttft_ms`), as rows with only `started_at` and `request`: the agent's turns are "
        "ordered after the answers they carry, whatever their timestamps. "
        "Versions: " + ", ".join(f"{p} {v}" for p, v in peer_versions.items()) + ".",
        "",
        "| peer | strategy | workload | requests | markers the peer sent (last request) "
        "| same markers as the model | real | modelled | modelled/real "
        "| modelled, timestamps only |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = r["modelled_usd"] / r["real_usd"] if r["real_usd"] else float("nan")
        markers = ", ".join(r["real_markers_last"]) or "none"
        errors = f" ({r['modelled_errors']} rejected)" if r["modelled_errors"] else ""
        lines.append(
            f"| {r['peer']} | `{r['strategy']}` | {r['workload']} | {r['requests']} | {markers} | "
            f"{r['same_markers']}/{r['requests']} | ${r['real_usd']:.4f} | "
            f"${r['modelled_usd']:.4f}{errors} | {ratio:.3f}x | ${r['timestamps_only_usd']:.4f} |"
        )
    drift = [
        r
        for r in results
        if r["same_markers"] != r["requests"] or abs(r["modelled_usd"] - r["real_usd"]) > 5e-7
    ]
    lines += [
        "",
        "Marker paths: `auto` is the top-level automatic marker, `messages/M/B` block B of "
        "message M. "
        + (
            "Every model matches its peer: the same markers on every request, the same cost."
            if not drift
            else "Models that drifted from their peer: "
            + "; ".join(
                f"{r['peer']} on {r['workload']} (modelled markers of the last request: "
                f"{', '.join(r['model_markers_last']) or 'none'})"
                for r in drift
            )
            + "."
        ),
    ]
    return "\n".join(lines)


def run(latest: bool = False, keep: Path | None = None) -> str:
    """Capture every peer on every workload and compare; `keep`: a folder for the ledgers (and
    the servers' logs), to look into a drift with `cachewise trace --from-ledger`."""
    python = peers_python(latest)
    peer_versions = versions(python)
    with tempfile.TemporaryDirectory() as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        ledgers = {w: folder / f"{w}.db" for w in WORKLOADS}
        for workload, ledger in ledgers.items():
            ledger.unlink(missing_ok=True)
            capture(python, ledger, workload)
        return table(compare(ledgers, peer_versions), peer_versions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--latest", action="store_true", help="the newest peer releases, not the pins"
    )
    parser.add_argument(
        "--print", action="store_true", help="print the table; leave bench/results.md"
    )
    parser.add_argument("--keep", type=Path, help="keep the captured ledgers in this folder")
    args = parser.parse_args()
    if args.print:
        print(run(args.latest, args.keep))
        return
    sys.path.insert(0, str(HERE.parent))
    import run as bench  # bench/run.py: writes its section of bench/results.md

    bench.SECTIONS["peers"] = lambda: run(args.latest, args.keep)
    bench.main(["peers"])


if __name__ == "__main__":
    main()
