"""Replay recorded real API calls through the emulator's engine and report the agreement.

    python bench/fidelity.py report [bench/fidelity-facts.json] [--out FILE]
    python bench/fidelity.py facts RECORDINGS.json [--out bench/fidelity-facts.json]

`report` replays the facts kept in this repository (or a RECORDINGS.json with bodies) and prints
the agreement per model family and per feature, then every call. It needs nothing else: counts
come from the facts, framing from the catalog as it is now.

`facts` turns RECORDINGS.json, the calls transcribed from public test-suite cassettes, into facts:
`[{"source": {"repo", "path", "commit", "interaction_index"}, "endpoint": "messages" |
"count_tokens", "model", "platform", "request": {...}, "usage": {...}}]`. The prompt texts belong
to the cassettes' authors, so RECORDINGS.json is not part of this repository; build it from the
files docs/fidelity.md cites. Facts hold digests and counts, never the texts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from cachewise.fidelity import FEATURES, Outcome, extract_facts, replay

FACTS = Path(__file__).with_name("fidelity-facts.json")


def _pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k // n}%)" if n else "—"


def summary(rows: list[Outcome]) -> str:
    tools = [r for r in rows if "tools" in r.features]
    lines = [
        f"- calls replayed: {len(rows)} ({sum(bool(r.error) for r in rows)} rejected)",
        f"- exact (read, write and input, or the counted total): "
        f"{_pct(sum(r.exact for r in rows), len(rows))}",
        f"- relational (pattern, and the change from the previous call): "
        f"{_pct(sum(r.relational for r in rows), len(rows))}",
        f"- tool-bearing calls exact: {_pct(sum(r.exact for r in tools), len(tools))}",
        "",
        "| family | " + " | ".join(FEATURES) + " | all |",
        "|---|" + "---|" * (len(FEATURES) + 1),
    ]
    by: dict[str, list[Outcome]] = defaultdict(list)
    for r in rows:
        by[r.family].append(r)
    for family in sorted(by):
        cells = []
        for feature in (*FEATURES, None):
            got = [r for r in by[family] if feature is None or feature in r.features]
            cells.append(_cell(got))
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    lines.append(
        "| all | "
        + " | ".join(
            _cell([r for r in rows if f is None or f in r.features]) for f in (*FEATURES, None)
        )
        + " |"
    )
    return "\n".join(lines) + "\n\nEach cell: exact / relational / calls.\n"


def _cell(rows: list[Outcome]) -> str:
    if not rows:
        return "—"
    return f"{sum(r.exact for r in rows)} / {sum(r.relational for r in rows)} / {len(rows)}"


def table(rows: list[Outcome]) -> str:
    out = [
        "| # | recording | model | features | recorded read/write/input | emulated | exact "
        "| relational | delta |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda t: " / ".join(f"{x:,}" for x in t)  # noqa: E731
    for n, r in enumerate(rows, 1):
        s = r.source
        src = f"{s['repo']}@{s['commit'][:8]} `{s['path']}` #{s['interaction_index']}"
        ours = f"rejected: {r.error[:60]}" if r.error else fmt(r.ours)
        warm = " (warm)" if r.warm else ""
        out.append(
            f"| {n} | {src} | {r.model} | {', '.join(r.features)} | {fmt(r.recorded)} | {ours} "
            f"| {'yes' if r.exact else 'no'}{warm} | {'yes' if r.relational else 'no'} "
            f"| {r.delta:+d} |"
        )
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="replay facts (or recordings) and report")
    rep.add_argument("data", type=Path, nargs="?", default=FACTS)
    rep.add_argument("--out", type=Path, help="also write the report here")
    fac = sub.add_parser("facts", help="make facts from recordings with bodies")
    fac.add_argument("recordings", type=Path)
    fac.add_argument("--out", type=Path, default=FACTS)
    args = parser.parse_args()
    if args.command == "facts":
        facts = extract_facts(json.loads(args.recordings.read_text()))
        args.out.write_text(json.dumps(facts, indent=1, ensure_ascii=False) + "\n")
        print(f"{len(facts['recordings'])} recordings, {len(facts['counts'])} counts -> {args.out}")
        return 0
    data = json.loads(args.data.read_text())
    rows = replay(data if isinstance(data, dict) else {"recordings": data})
    report = summary(rows) + "\n" + table(rows)
    sys.stdout.write(report)
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
