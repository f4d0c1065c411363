"""Every strategy on every workload, against the oracle: `python bench/simulate_compare.py`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from workloads import TARGETS, WORKLOADS

from cachewise.simulate import simulate
from cachewise.trace import rows_from


def run() -> str:
    lines = [
        "## `cachewise simulate --compare`: strategies against the oracle",
        "",
        "`python bench/simulate_compare.py`: seeded workloads (`bench/workloads.py`), each "
        "strategy replayed through the engine, cost relative to the oracle's lower bound "
        "(a ratio of 1.000 is optimal; the bound may sit below the true optimum).",
        "",
    ]
    speed = []
    verdicts = []
    for name, make in WORKLOADS.items():
        trace = make()
        text = "\n".join(json.dumps(r) for r in trace)
        t0 = time.perf_counter()
        rows = rows_from(json.loads(line) for line in text.splitlines())
        parse_s = time.perf_counter() - t0
        simulate(rows, ["none"])  # count the tokens once (the memo keeps them)
        t0 = time.perf_counter()
        outcomes = simulate(rows)
        sim_s = time.perf_counter() - t0
        speed.append((name, len(rows), len(outcomes) - 1, sim_s, parse_s))
        lines += [
            f"### {name} ({len(rows)} requests)",
            "",
            "| strategy | cost | vs oracle | writes | reads | waited |",
            "|---|---|---|---|---|---|",
        ]
        for o in outcomes:
            lines.append(
                f"| {o.name} | ${float(o.cost_usd):.4f} | {o.ratio_to_oracle:.3f}x | "
                f"{o.writes} | {o.reads} | {o.wait_seconds:.1f}s |"
            )
        ours = next(o for o in outcomes if o.name == "cachewise")
        peers = [o for o in outcomes if o.name not in ("cachewise", "oracle", "as-is")]
        best = min(peers, key=lambda o: o.cost_usd)
        target = TARGETS.get(name)
        verdicts.append(
            f"| {name} | {ours.ratio_to_oracle:.3f}x | {target:.2f}x |"
            if target
            else f"| {name} | {ours.ratio_to_oracle:.3f}x | — |"
        )
        verdicts[-1] += (
            f" {best.name} {best.ratio_to_oracle:.3f}x | "
            f"{'yes' if ours.cost_usd <= best.cost_usd else 'NO'} |"
        )
        lines.append("")
    lines += [
        "### Summary",
        "",
        "Where cachewise misses a target, the cost above the bound is the first rewrite of a "
        "prefix after its first 5m entry expired: on multi-tenant, each tenant's second request "
        "comes 400-1,000 s after its first. Writing first entries with 1h would meet 1.25x there "
        "and cost the seed batch its 1.02x (2x instead of 1.25x on its only write); the first "
        "request of both workloads is one request with a large system prompt and nothing before "
        "it, so no online rule can tell them apart when it must choose. The planner keeps 5m for "
        "a first write and switches on the first gap it sees (its own, or other prefixes'), and "
        "sends keep-alive reads while the longest gap seen says another use may come.",
        "",
        "| workload | cachewise vs oracle | target | best peer | cachewise <= best peer |",
        "|---|---|---|---|---|",
        *verdicts,
        "",
        "### Simulator speed",
        "",
        "| workload | requests | strategies | simulate (all) | requests/s per strategy | "
        "plain JSON parse |",
        "|---|---|---|---|---|---|",
    ]
    for name, n, k, sim_s, parse_s in speed:
        lines.append(
            f"| {name} | {n} | {k} | {sim_s:.2f}s | {n * k / sim_s:,.0f} | {parse_s * 1e3:.1f} ms |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
