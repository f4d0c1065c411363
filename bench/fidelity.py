"""Replay recorded real API calls through the emulator and compare the cache accounting.

    python bench/fidelity.py RECORDINGS.json [--out docs/fidelity-table.md]

RECORDINGS.json is a list of calls transcribed from public test-suite cassettes:
`{"source": {"repo", "path", "commit", "interaction_index"}, "endpoint": "messages"|"count_tokens",
"model", "platform", "request": {...}, "usage": {...}}`. The prompt texts belong to the cassettes'
authors, so the file is not part of this repository: build it from the repositories named in
docs/fidelity.md. This script prints numbers and citations only, never the texts.

Calls from one cassette file replay in order, one second apart, in a workspace of their own, on a
virtual clock with no latency. A recorded first call that already reads was warmed by an earlier
run of the recorder; for those the comparison is of what is cached (read + write), not which.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx2

from cachewise.testing import Emulator

TEXT_BLOCKS = {"text"}


def text_only(request: dict[str, Any]) -> bool:
    if request.get("tools"):
        return False
    for m in request.get("messages", []):
        content = m.get("content")
        if isinstance(content, list) and any(b.get("type") not in TEXT_BLOCKS for b in content):
            return False
    return True


def split(usage: dict[str, Any]) -> tuple[int, int, int]:
    return (
        int(usage.get("cache_read_input_tokens") or 0),
        int(usage.get("cache_creation_input_tokens") or 0),
        int(usage.get("input_tokens") or 0),
    )


def replay(recordings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for rec in recordings:
        s = rec["source"]
        groups[(s["repo"], s["path"], rec.get("platform", ""), rec["model"])].append(rec)
    rows = []
    with Emulator() as emu:
        for n, calls in enumerate(groups.values()):
            calls.sort(key=lambda r: r["source"]["interaction_index"])
            headers = {"x-api-key": f"fidelity-{n}", "anthropic-version": "2023-06-01"}
            first_message = next((i for i, r in enumerate(calls) if r["endpoint"] == "messages"), 0)
            for i, rec in enumerate(calls):
                emu.advance(1)
                body = {k: v for k, v in rec["request"].items() if k != "stream"}
                body.setdefault("model", rec["model"])  # Bedrock puts the model in the URL
                path = (
                    "/v1/messages/count_tokens"
                    if rec["endpoint"] == "count_tokens"
                    else "/v1/messages"
                )
                if rec["endpoint"] == "count_tokens":
                    body.pop("max_tokens", None)
                else:
                    body.setdefault("max_tokens", 1024)
                r = httpx2.post(emu.base_url + path, json=body, headers=headers, timeout=60)
                rows.append(compare(i == first_message, rec, r))
    return rows


def compare(first: bool, rec: dict[str, Any], r: httpx2.Response) -> dict[str, Any]:
    s = rec["source"]
    where = "/".join(s["path"].split("/")[-2:])
    commit = f"@{s['commit'][:8]}" if s.get("commit") else ""
    row: dict[str, Any] = {
        "source": f"{s['repo']}{commit} `{where}` #{s['interaction_index']}",
        "model": rec["model"],
        "platform": rec.get("platform", ""),
        "endpoint": rec["endpoint"],
        "text_only": text_only(rec["request"]),
    }
    if r.status_code != 200:
        row.update(status=r.status_code, error=r.json().get("error", {}).get("message", "")[:80])
        return row
    data = r.json()
    if rec["endpoint"] == "count_tokens":
        row.update(recorded=(rec["usage"].get("input_tokens"),), ours=(data["input_tokens"],))
        row["total_ok"] = rec["usage"].get("input_tokens") == data["input_tokens"]
        row["pattern_ok"] = True
        return row
    rread, rwrite, rin = split(rec["usage"])
    oread, owrite, oin = split(data["usage"])
    warm = first and rread > 0
    row.update(recorded=(rread, rwrite, rin), ours=(oread, owrite, oin), warm=warm)
    if warm:
        row["pattern_ok"] = (rread + rwrite > 0) == (oread + owrite > 0)
        row["split_ok"] = (rread + rwrite, rin) == (oread + owrite, oin)
    else:
        row["pattern_ok"] = (rread > 0, rwrite > 0) == (oread > 0, owrite > 0)
        row["split_ok"] = (rread, rwrite, rin) == (oread, owrite, oin)
    row["total_ok"] = rread + rwrite + rin == oread + owrite + oin
    row["delta"] = (oread + owrite + oin) - (rread + rwrite + rin)
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    out = [
        "| # | recording | model | platform | text only | recorded read/write/input "
        "| emulator read/write/input | pattern | numbers | total delta |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, row in enumerate(rows, 1):
        if "status" in row:
            out.append(
                f"| {n} | {row['source']} | {row['model']} | {row['platform']} | "
                f"{'yes' if row['text_only'] else 'no'} | — | "
                f"HTTP {row['status']}: {row['error']} | — | — | — |"
            )
            continue
        fmt = lambda t: " / ".join(f"{x:,}" for x in t)  # noqa: E731
        numbers = (
            ("yes" if row.get("split_ok", row["total_ok"]) else "NO")
            if row["text_only"]
            else ("total " + ("yes" if row["total_ok"] else "no") + " (tools)")
        )
        pattern = ("yes" if row["pattern_ok"] else "NO") + (" (warm)" if row.get("warm") else "")
        out.append(
            f"| {n} | {row['source']} | {row['model']} | {row['platform']} | "
            f"{'yes' if row['text_only'] else 'no'} | {fmt(row['recorded'])} | "
            f"{fmt(row['ours'])} | "
            f"{pattern} | {numbers} | {row.get('delta', 0):+d} |"
        )
    return "\n".join(out) + "\n"


def summary(rows: list[dict[str, Any]]) -> str:
    ok = [r for r in rows if "status" not in r]
    msgs = [r for r in ok if r["endpoint"] == "messages"]
    text = [r for r in ok if r["text_only"]]
    return (
        "\n".join(
            [
                f"- calls replayed: {len(rows)} ({len(rows) - len(ok)} rejected by the emulator)",
                f"- write/read pattern agrees: {sum(r['pattern_ok'] for r in msgs)} of "
                f"{len(msgs)} messages calls",
                f"- text-only calls whose numbers agree exactly: "
                f"{sum(r.get('split_ok', r['total_ok']) for r in text)} of {len(text)}",
                f"- calls with tools whose total agrees exactly: "
                f"{sum(r['total_ok'] for r in ok if not r['text_only'])} of {len(ok) - len(text)}",
            ]
        )
        + "\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recordings", type=Path)
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args()
    rows = replay(json.loads(args.recordings.read_text()))
    report = summary(rows) + "\n" + markdown(rows)
    sys.stdout.write(report)
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
