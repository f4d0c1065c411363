"""What every benchmark shares: realistic text, and timing two sides interleaved.

The machine is shared and noisy, so a side is never timed in a loop of its own: each round times
every side once, back to back, and a ratio is the median of the rounds' ratios. Text looks like
what people send (numbers, dates, invoice and account ids, prices, section numbers), because the
analyzer's costs depend on it: text without digits skips most of its patterns.
"""

from __future__ import annotations

import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping

__all__ = ["Timings", "emulator", "free_port", "interleave", "prose", "wait_listening"]

_WORDS = (
    "the service keeps every account in a double entry ledger and reconciles bank feeds each "
    "night before it closes the period for review by the finance team which signs off on "
    "adjustments accruals and currency revaluation while customers export reports in several "
    "formats and schedule recurring invoices with reminders and late fees"
).split()


def prose(words: int, seed: int) -> str:
    """`words` words of a support knowledge base: sentences with the numbers, dates, ids and
    amounts real documents carry (about one in eight words)."""
    rng = random.Random(seed)
    out: list[str] = []
    for i in range(words):
        out.append(rng.choice(_WORDS))
        roll = rng.random()
        if roll < 0.04:
            out.append(str(rng.randint(2, 480)))
        elif roll < 0.06:
            out.append(f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}")
        elif roll < 0.08:
            out.append(f"INV-{rng.randint(10000, 99999)}")
        elif roll < 0.10:
            out.append(f"${rng.randint(1, 9999):,}.{rng.randint(0, 99):02d}")
        elif roll < 0.12:
            out.append(f"section {rng.randint(1, 40)}.{rng.randint(1, 9)}")
        if i % 17 == 16:
            out[-1] += "."
    return " ".join(out) + "."


class Timings:
    """Seconds per round for each side, measured interleaved."""

    def __init__(self, sides: Mapping[str, list[float]]) -> None:
        self.sides = dict(sides)

    def median(self, side: str) -> float:
        return statistics.median(self.sides[side])

    def ratio(self, side: str, base: str) -> float:
        """The median of the rounds' ratios side/base: steadier than a ratio of medians."""
        pairs = zip(self.sides[side], self.sides[base], strict=True)
        return statistics.median(a / b for a, b in pairs)


def interleave(sides: Mapping[str, Callable[[], object]], rounds: int = 21) -> Timings:
    """Time each side once per round, the sides back to back, after one untimed warm-up each."""
    for fn in sides.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, fn in sides.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return Timings(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


# The latency the runner's benchmarks give the emulator: a first byte after 200 ms + 10 ms per
# 1,000 uncached tokens, output at 200 tokens/s.
REALISTIC = {"ttft_ms": 200, "prefill_ms_per_1k": 10, "output_tokens_per_s": 200}


def emulator(
    port: int,
    *,
    ttft_ms: float = 0,
    prefill_ms_per_1k: float = 0,
    output_tokens_per_s: float = 0,
    **popen: object,
) -> subprocess.Popen[bytes]:
    """`cachewise emulate` on `port` in its own process, listening; no simulated latency unless
    asked (`REALISTIC`)."""
    args = ["--ttft-ms", str(ttft_ms), "--prefill-ms-per-1k", str(prefill_ms_per_1k)]
    args += ["--output-tokens-per-s", str(output_tokens_per_s)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cachewise", "emulate", "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **popen,  # type: ignore[call-overload]
    )
    wait_listening(port)
    return proc
