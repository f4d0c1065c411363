"""Run the benchmarks and write bench/results.md.

    python bench/run.py                 # every section (about 15 minutes: the runner is real time)
    python bench/run.py simulate        # only the named sections; the others are kept as they were

Each section records when it was generated, so a partial run never passes old numbers off as new.
"""

from __future__ import annotations

import platform
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import analyzer_speed
import body_speed
import celery_engine
import cold_start
import emulator_rps
import fleet_gate
import memo_speed
import proxy_fleet
import proxy_overhead
import report_scale
import runner_scout
import simulate_compare
import simulate_scale
import wrap_overhead
from peers import harness as peers_harness

SECTIONS = {
    "emulator": emulator_rps.run,
    "bodies": body_speed.run,
    "memo": memo_speed.run,
    "analyzer": analyzer_speed.run,
    "wrap": wrap_overhead.run,
    "cold": cold_start.run,
    "fleet": fleet_gate.run,
    "proxy": proxy_overhead.run,
    "proxy_fleet": proxy_fleet.run,
    "runner": runner_scout.run,
    "celery": celery_engine.run,
    "simulate": simulate_compare.run,
    "simulate_scale": simulate_scale.run,
    "report_scale": report_scale.run,
    "peers": peers_harness.run,  # the peer libraries, in a venv of their own (bench/peers/)
}
RESULTS = Path(__file__).parent / "results.md"
_MARK = re.compile(r"^<!-- section: (\w+) -->$", re.MULTILINE)


def _existing() -> dict[str, str]:
    if not RESULTS.exists():
        return {}
    text = RESULTS.read_text()
    marks = list(_MARK.finditer(text))
    return {
        m[1]: text[m.end() : marks[i + 1].start() if i + 1 < len(marks) else len(text)].strip()
        for i, m in enumerate(marks)
    }


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        sys.exit(f"unknown section {unknown[0]!r}; sections: {', '.join(SECTIONS)}")
    sections = _existing()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for name in names or list(SECTIONS):
        body = SECTIONS[name]().strip()
        sections[name] = f"{body}\n\n_Generated {stamp}._"
        print(body, flush=True)
    header = [
        "# Benchmark results",
        "",
        f"Written by `python bench/run.py` (Python {platform.python_version()}, "
        f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} CPUs). The machine is "
        "shared and noisy: read medians and ratios, not single numbers.",
        "",
    ]
    parts = [f"<!-- section: {n} -->\n{sections[n]}\n" for n in SECTIONS if n in sections]
    RESULTS.write_text("\n".join(header) + "\n" + "\n".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
