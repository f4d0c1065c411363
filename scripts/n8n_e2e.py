"""End-to-end: real n8n, its Anthropic nodes, through two cachewise proxies, onto the emulator.

    python scripts/n8n_e2e.py             # n8n -> proxy -> recorder -> emulator (the default)
    python scripts/n8n_e2e.py --direct    # n8n -> recorder -> emulator: what n8n does on its own

It installs n8n once (scripts/n8n_install.sh, cached), starts the emulator, a recorder in front of
it (one JSON line per call it receives: see n8n_recorder.py), two proxies sharing one Redis and one
ledger, and two n8n processes each with its own credential pointing at its own proxy. Every
workflow of examples/n8n then runs `--runs` times on both n8n at once: the first round finds the
cache cold on both, the later ones find it warm. The checks come from what the emulator answered:

- every webhook answered 200, and every call reached the emulator and succeeded;
- http (its own cache_control) reads; native (no caching setting) reads only through the proxy;
- the Chat Model workflows (chain, agent) read through the proxy;
- through the proxy each workflow's cold prefix is written once across both n8n processes, and the
  ledger holds every call (`cachewise report --include-emulated`).

Exit 0 when every check passes. Everything started here is stopped on exit and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import n8n_examples
import n8n_recorder

REPO = Path(__file__).resolve().parent.parent
# One key for both n8n: one workspace, so they share the cache. New each run: the proxies' Redis
# remembers warm prefixes for minutes, and this run's emulator starts cold.
API_KEY = f"sk-ant-n8n-e2e-{uuid.uuid4().hex[:12]}"
QUESTIONS = [
    "Merchant LM-30454 reports 3 mis-picks this month. What do we credit per mis-pick?",
    "Order LFO-260227-89623 is HELD. Can the customer still change the delivery address?",
    "What is the storage fee for 12 pallets kept 200 days? Show the sum.",
    "Who approves a 3,200.00 damage credit for warehouse LW-03?",
    "Is a camera battery of 95 Wh per cell packed with the camera allowed in?",
    "When is the next full stock count, and what happens to inbound deliveries that day?",
]


class Stack:
    """The processes this run started, stopped in reverse order whatever happens."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.stops: list[Callable[[], None]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append((name, proc))
        return proc

    def close(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the cleanup
            signal.signal(sig, signal.SIG_IGN)
        for stop in reversed(self.stops):
            stop()
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # its own session: n8n's task runner too
        deadline = time.time() + 15
        for _, proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        noise = ("Failed to start Python task runner", "There are deprecations", " - ")
        kept = [line for line in text.splitlines() if line and not line.startswith(noise)]
        return "\n".join(kept[-lines:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(
    url: str, seconds: float, proc: subprocess.Popen[bytes] | None = None, *, ok_only: bool = False
) -> None:
    """Until `url` answers (with 2xx when `ok_only`: n8n's readiness is 503 while it starts)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            if not ok_only:
                return  # it answers: any status will do
            time.sleep(0.3)
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {seconds:.0f} s")


def wait_port(port: int, seconds: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listening on {port} after {seconds:.0f} s")


def wait_webhook(port: int, kind: str, seconds: float) -> None:
    """Until n8n has registered the workflow's webhook. n8n activates workflows one by one after
    it reports ready; a CORS preflight (OPTIONS with an Origin) lists a path's methods once its
    webhook is registered, and fails before."""
    url = f"http://127.0.0.1:{port}/webhook/cachewise-{kind}"
    preflight = urllib.request.Request(url, method="OPTIONS", headers={"origin": "http://e2e"})
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(preflight, timeout=2) as reply:
                if "POST" in reply.headers.get("access-control-allow-methods", ""):
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"n8n did not register {url} in {seconds:.0f} s")


def python_env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(REPO / "src")]))
    return {**os.environ, "PYTHONPATH": path}


def install() -> tuple[str, str]:
    started = time.time()
    script = REPO / "scripts" / "n8n_install.sh"  # its progress (stderr) shows as it goes
    out = subprocess.run(["bash", str(script)], check=True, stdout=subprocess.PIPE, text=True)
    found = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    print(f"n8n: {found['N8N_HOME']} ({time.time() - started:.0f} s)")
    return found["NODE"], found["N8N"]


def n8n_env(folder: Path, port: int) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("N8N_", "DB_"))}
    return {
        **keep,
        "N8N_USER_FOLDER": str(folder),
        "N8N_PORT": str(port),
        "N8N_LISTEN_ADDRESS": "127.0.0.1",
        "N8N_HOST": "127.0.0.1",
        "N8N_WEBHOOK_URL": f"http://127.0.0.1:{port}/",
        "N8N_DISABLED_MODULES": "mcp-registry",  # it fetches a server list from the internet
        "N8N_RUNNERS_BROKER_PORT": str(free_port()),  # two n8n on one machine: two brokers
        "N8N_RUNNERS_MODE": "internal",
        "N8N_DIAGNOSTICS_ENABLED": "false",
        "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
        "N8N_TEMPLATES_ENABLED": "false",
        "N8N_PERSONALIZATION_ENABLED": "false",
        "N8N_HIRING_BANNER_ENABLED": "false",
        "N8N_COMMUNITY_PACKAGES_ENABLED": "false",
        "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "false",
        "N8N_SECURE_COOKIE": "false",
        "N8N_LOG_LEVEL": "warn",
        "EXTERNAL_FRONTEND_HOOKS_URLS": "",
        "N8N_DIAGNOSTICS_CONFIG_FRONTEND": "",
        "N8N_DIAGNOSTICS_CONFIG_BACKEND": "",
    }


def prepare_n8n(
    stack: Stack, node: str, n8n: str, folder: Path, base_url: str, env: dict[str, str]
) -> None:
    """Credential and workflows pointed at `base_url`, imported and published before start."""
    files = folder / "import"
    (files / "workflows").mkdir(parents=True)
    (files / "credential.json").write_text(json.dumps([n8n_examples.credential(base_url, API_KEY)]))
    for kind in n8n_examples.KINDS:
        text = json.dumps(n8n_examples.workflow(kind)).replace(n8n_examples.BASE_URL, base_url)
        (files / "workflows" / f"{kind}.json").write_text(text)
    for args in (
        ["import:credentials", f"--input={files / 'credential.json'}"],
        ["import:workflow", "--separate", f"--input={files / 'workflows'}"],
        # One id a call: n8n 2.x dropped --all, and activation by import is for queue mode only.
        *(
            ["publish:workflow", f"--id={n8n_examples.workflow(k)['id']}"]
            for k in n8n_examples.KINDS
        ),
    ):
        name = folder.name  # its log is the instance's
        if stack.start(name, [node, n8n, *args], env).wait() != 0:
            raise RuntimeError(f"n8n {args[0]} failed:\n{stack.tail(name)}")


def fire(port: int, kind: str, question: str) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhook/cachewise-{kind}",
        data=json.dumps({"question": question}).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=180) as reply:
            return reply.status, reply.read().decode(errors="replace")[:300]
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")[:300]
    except OSError as err:
        return 0, str(err)


def fire_all(ports: dict[str, int], runs: int) -> dict[str, list[int]]:
    """Every workflow `runs` times, on both n8n at once; the webhooks' statuses per workflow."""
    statuses: dict[str, list[int]] = {}
    pool = concurrent.futures.ThreadPoolExecutor(len(ports))
    try:
        for kind in n8n_examples.KINDS:
            statuses[kind] = []
            for r in range(runs):
                question = QUESTIONS[r % len(QUESTIONS)]
                futures = {
                    name: pool.submit(fire, port, kind, f"Run {r} on n8n-{name}: {question}")
                    for name, port in ports.items()
                }
                for name, future in futures.items():
                    status, text = future.result()
                    statuses[kind].append(status)
                    if status != 200:
                        print(f"  {kind} run {r} on n8n-{name}: HTTP {status} {text}")
    finally:  # on Ctrl-C, not waiting for calls in flight: stopping n8n ends them
        pool.shutdown(wait=False, cancel_futures=True)
    return statuses


def tally(calls: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """One workflow's calls summed: calls, failures, tokens, and the cold writes (a write of at
    least half the smallest prompt: the shared prefix, not a question's tail)."""
    mine = [c for c in calls if c["workflow"] == kind and c["path"] == "/v1/messages"]
    usage = [c["usage"] or {} for c in mine]
    prompts = [
        u.get("input_tokens", 0)
        + u.get("cache_creation_input_tokens", 0)
        + u.get("cache_read_input_tokens", 0)
        for u in usage
    ]
    floor = min(prompts, default=0) / 2
    return {
        "calls": len(mine),
        "failed": sum(c["status"] != 200 for c in mine),
        "instances": sorted({c["instance"] or "?" for c in mine}),
        "input": sum(u.get("input_tokens", 0) for u in usage),
        "write": sum(u.get("cache_creation_input_tokens", 0) for u in usage),
        "read": sum(u.get("cache_read_input_tokens", 0) for u in usage),
        "reading_calls": sum(u.get("cache_read_input_tokens", 0) > 0 for u in usage),
        "cold_writes": sum(u.get("cache_creation_input_tokens", 0) >= floor > 0 for u in usage),
    }


def checks(
    rows: dict[str, dict[str, Any]],
    runs: dict[str, list[int]],
    direct: bool,
    shared_gate: bool,
    ledger: dict[str, Any] | None,
) -> list[tuple[str, bool]]:
    out = []
    for kind, row in rows.items():
        ok_hooks = all(s == 200 for s in runs[kind])
        out.append((f"{kind}: {len(runs[kind])} webhook runs answered 200", ok_hooks))
        both = row["instances"] == ["n8n-a", "n8n-b"]
        ok_calls = row["calls"] >= len(runs[kind]) and row["failed"] == 0 and both
        out.append((f"{kind}: {row['calls']} calls from both n8n, none failed", ok_calls))
        reads = row["reading_calls"] > 0
        if kind == "http" or not direct:
            out.append((f"{kind}: repeated runs read the cache", reads))
        elif kind == "native":
            why = "it sends no cache_control"
            out.append((f"{kind}: no read without the proxy ({why})", not reads))
        else:  # the Chat Model's automatic breakpoint sits after the question, new every run
            why = "each question is a new prefix"
            out.append((f"{kind}: no read without the proxy ({why})", not reads))
        if shared_gate:  # without one Redis, each proxy gates only its own calls
            once = row["cold_writes"] == 1
            out.append((f"{kind}: the cold prefix written once across both n8n", once))
    if ledger is not None:
        total = sum(r["calls"] for r in rows.values())
        seen = {k: sum(r[k] for r in rows.values()) for k in ("input", "write", "read")}
        usage = ledger["usage"]
        kept = {
            "input": usage["input_tokens"],
            "write": usage["cache_creation_input_tokens"],
            "read": usage["cache_read_input_tokens"],
        }
        out.append(
            (
                f"ledger: every call recorded ({ledger['calls']} of {total})",
                ledger["calls"] == total,
            )
        )
        out.append(("ledger: its token counts are the emulator's", kept == seen))
    return out


def ledger_report(ledger: Path) -> dict[str, Any]:
    argv = [sys.executable, "-m", "cachewise", "report", "--ledger", str(ledger)]
    argv += ["--format", "json", "--include-emulated"]
    done = subprocess.run(argv, env=python_env(), capture_output=True, text=True, check=True)
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def summary(rows: dict[str, dict[str, Any]], results: list[tuple[str, bool]]) -> str:
    head = (
        f"{'workflow':<8} {'calls':>5} {'input':>8} {'write':>8} {'read':>8} "
        f"{'reading':>7} {'cold writes':>11}"
    )
    lines = [head, "-" * len(head)]
    for kind, r in rows.items():
        lines.append(
            f"{kind:<8} {r['calls']:>5} {r['input']:>8,} {r['write']:>8,} {r['read']:>8,} "
            f"{r['reading_calls']:>7} {r['cold_writes']:>11}"
        )
    lines.append("")
    lines += [f"{'PASS' if ok else 'FAIL'}  {text}" for text, ok in results]
    return "\n".join(lines)


def run(args: argparse.Namespace, work: Path, stack: Stack) -> int:
    node, n8n = install()
    capture = work / "calls.jsonl"
    emulator_port = free_port()
    emulator = stack.start(
        "emulator",
        [
            sys.executable,
            "-m",
            "cachewise",
            "emulate",
            "--port",
            str(emulator_port),
            "--ttft-ms",
            str(args.ttft_ms),
            "--output-tokens-per-s",
            "0",
        ],
        python_env(),
    )
    wait_http(f"http://127.0.0.1:{emulator_port}/_emulator/stats", 30, emulator)
    recorder_port = free_port()
    recorder = n8n_recorder.serve(f"http://127.0.0.1:{emulator_port}", capture, recorder_port)
    stack.stops.append(lambda: setattr(recorder, "should_exit", True))
    upstream = f"http://127.0.0.1:{recorder_port}"
    ledger = work / "ledger.sqlite"
    targets = []
    for name in ("a", "b"):
        if args.direct:
            targets.append(upstream)
            continue
        port = free_port()
        argv = [sys.executable, "-m", "cachewise", "proxy", "--upstream", upstream]
        argv += ["--port", str(port), "--ledger", str(ledger)]
        argv += ["--redis", args.redis] if args.redis else []  # without: each gates its own
        proxy = stack.start(f"proxy-{name}", argv, python_env())
        wait_port(port, 30, proxy)  # not an HTTP probe: it would be a call upstream
        targets.append(f"http://127.0.0.1:{port}")
    ports = {name: free_port() for name in ("a", "b")}
    envs = {name: n8n_env(work / f"n8n-{name}", ports[name]) for name in ports}
    pool = concurrent.futures.ThreadPoolExecutor(2)  # each CLI call boots n8n: both at once
    try:
        setups = [
            pool.submit(prepare_n8n, stack, node, n8n, work / f"n8n-{name}", target, envs[name])
            for name, target in zip(ports, targets, strict=True)
        ]
        for setup in setups:
            setup.result()
    finally:  # on Ctrl-C, not waiting: closing the stack stops the CLI calls
        pool.shutdown(wait=False, cancel_futures=True)
    procs = {name: stack.start(f"n8n-{name}", [node, n8n, "start"], envs[name]) for name in ports}
    for name, proc in procs.items():
        wait_http(f"http://127.0.0.1:{ports[name]}/healthz/readiness", 300, proc, ok_only=True)
        for kind in n8n_examples.KINDS:  # "ready" comes before the webhooks are registered
            wait_webhook(ports[name], kind, 120)
        print(f"n8n-{name}: ready on port {ports[name]}")
    print(
        f"mode: {'direct (no proxy)' if args.direct else 'through two proxies'}; "
        f"{args.runs} rounds per workflow, both n8n at once"
    )
    statuses = fire_all(ports, args.runs)
    time.sleep(0.5)  # the recorder writes a call's line when its reply has been relayed
    calls = n8n_recorder.read(capture)
    rows = {kind: tally(calls, kind) for kind in n8n_examples.KINDS}
    kept = None if args.direct else ledger_report(ledger)
    results = checks(rows, statuses, args.direct, bool(args.redis) and not args.direct, kept)
    print()
    print(summary(rows, results))
    if kept is not None:
        print(
            f"\nledger: ${kept['cost_usd']:.4f} spent, ${kept['cost_without_cache_usd']:.4f} "
            f"without caching ({kept['savings_pct']:g}% saved)"
        )
    print(f"\ncalls as the emulator received them: {capture}" if args.out else "")
    failed = [text for text, ok in results if not ok]
    if failed:
        for name in ("n8n-a", "n8n-b"):
            print(f"\n--- last lines of {name}.log\n{stack.tail(name)}")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--direct", action="store_true", help="n8n straight to the emulator")
    parser.add_argument("--runs", type=int, default=4, help="rounds per workflow (default 4)")
    parser.add_argument("--ttft-ms", type=float, default=1500, help="emulator first-byte time")
    parser.add_argument(
        "--redis", default="redis://127.0.0.1:6379/0", help="the proxies' Redis ('' for none)"
    )
    parser.add_argument("--out", type=Path, help="keep logs, ledger and calls.jsonl here")
    args = parser.parse_args()
    if args.runs < 2:
        parser.error("--runs must be at least 2: a read needs a run before it")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    work = args.out or Path(tempfile.mkdtemp(prefix="cachewise-n8n-"))
    stack = Stack(work)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # finally below runs on kill too
    try:
        return run(args, work, stack)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        stack.close()
        if not args.out:
            subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    sys.exit(main())
