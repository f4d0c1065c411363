"""`cachewise demo`: the seed workload on the embedded emulator, with caching off and then on.

An ~8,000-token project context and 50 distinct questions, run twice through `cachewise run`
against the in-process emulator: once with no cache markers, once with planned breakpoints and
the scout across the workers. Every number comes from the usage the emulator returned.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .home import default_home
from .runner import RunOptions, RunSummary, run_requests

__all__ = ["MODEL", "run_demo", "workload"]

MODEL = "claude-sonnet-4-6"

_TOPICS = (
    "billing",
    "exports",
    "invoices",
    "ledger",
    "reports",
    "receipts",
    "taxes",
    "payroll",
    "vendors",
    "budgets",
)
_WORDS = (
    "the service keeps every account in a double entry ledger and reconciles bank feeds "
    "each night before it closes the period for review by the finance team which signs off "
    "on adjustments accruals and currency revaluation while customers export reports in "
    "several formats and schedule recurring invoices with reminders and late fees"
).split()


def workload(questions: int = 50) -> list[dict[str, Any]]:
    """The seed's workload: one long, stable project context and `questions` distinct questions."""
    paragraphs = []
    for n in range(120):
        words = [_WORDS[(n * 13 + i * 7) % len(_WORDS)] for i in range(48)]
        paragraphs.append(
            f"Section {n // 10 + 1}.{n % 10 + 1} ({_TOPICS[n % len(_TOPICS)]}): "
            + " ".join(words)
            + "."
        )
    context = (
        "You are the support assistant for Harbor Ledger, a bookkeeping service. Answer "
        "from the project notes below.\n\n" + "\n".join(paragraphs)
    )
    return [
        {
            "custom_id": f"q{i:03d}",
            "params": {
                "model": MODEL,
                "max_tokens": 300,
                "system": context,
                "messages": [
                    {
                        "role": "user",
                        "content": f"Question {i + 1}: how do {_TOPICS[i % 10]} work "
                        f"when a customer has {i + 2} open accounts?",
                    }
                ],
            },
        }
        for i in range(questions)
    ]


def run_demo(
    workers: int = 4, out_dir: Path | None = None, stop: threading.Event | None = None
) -> dict[str, Any]:
    """Run the workload off and on; return the JSON the command prints.

    Args:
        workers: calls in flight at once.
        out_dir: where the results files (and the command's chart) go; default `<home>/demo`,
            overwritten by each demo, so demos do not pile up.
        stop: once set, nothing new is sent (the run in progress stops, the next does not start);
            the result says `"interrupted": true`.
    """
    from .testing import Emulator

    requests = workload()
    folder = Path(out_dir) if out_dir is not None else default_home() / "demo"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with Emulator(clock="real", ttft_ms=300, prefill_ms_per_1k=20, output_tokens_per_s=500) as emu:
        client = emu.client()
        runs: dict[str, RunSummary] = {}
        for name, options in (
            ("off", RunOptions(workers=workers, scout=False, caching=False)),
            ("on", RunOptions(workers=workers, scout=True)),
        ):
            if stop is not None and stop.is_set():
                break
            out = folder / f"results-{name}.jsonl"
            out.unlink(missing_ok=True)
            runs[name] = run_requests(requests, out, client, options=options, stop=stop)
    interrupted = len(runs) < 2 or any(r.interrupted for r in runs.values())
    off, on = runs.get("off"), runs.get("on")
    savings = (
        float((off.cost_usd - on.cost_usd) / off.cost_usd * 100)
        if off is not None and on is not None and off.cost_usd and not interrupted
        else 0.0
    )
    return {
        "model": MODEL,
        "calls": len(requests),
        "workers": workers,
        "scenarios": [
            {
                "name": name,
                "usage": r.usage.to_api(),
                "cost_usd": float(r.cost_usd),
                "writes": r.writes,
                "reads": r.reads,
                "wall_seconds": round(r.wall_seconds, 2),
            }
            for name, r in runs.items()
        ],
        "savings_pct": round(savings, 2),
        "interrupted": interrupted,
        "results_dir": str(folder),
    }


def chart(result: dict[str, Any], path: Path) -> bool:
    """A PNG of the two runs' cost and token mix; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        return False
    runs = result["scenarios"]
    names = [f"caching {r['name']}" for r in runs]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(names, [r["cost_usd"] for r in runs], color=["#b0413e", "#2f6f4f"])
    left.set_title(f"Cost of {result['calls']} calls (USD), {result['savings_pct']:.0f}% saved")
    bottom = [0.0] * len(runs)
    for label, key, color in (
        ("input", "input_tokens", "#8c8c8c"),
        ("cache write", "cache_creation_input_tokens", "#d9822b"),
        ("cache read", "cache_read_input_tokens", "#2f6f4f"),
        ("output", "output_tokens", "#3d5a99"),
    ):
        values = [float(r["usage"][key]) for r in runs]
        right.bar(names, values, bottom=bottom, label=label, color=color)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    right.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    right.set_title("Tokens")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
