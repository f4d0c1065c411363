"""A long fuzzing run: N bodies from the grammar and its mutations (tests/fuzzing.py), each through
the parser, the engine, lint and plan, and through the emulator in process (Messages as JSON and
as SSE, count_tokens, a batch), against the contract in tests/contract.py.

    python bench/fuzz.py 200000                # bodies 0..199999
    python bench/fuzz.py 50000 --start 200000  # the next ones
    python bench/fuzz.py 1 --start 1234 --show # one body, printed, and what each face answers

Body number k is the same body on every run (`random_body(k)`), so a breach is reproduced by its
number. Prints how many bodies, the outcomes (2xx, each 4xx by status and error type) per face,
and every contract breach by signature with the first body that showed it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from contract import WARM, asgi_call, check_app, check_core, check_messages, emulator_client
from fuzzing import random_body, wire


def _signature(face: str, exc: BaseException) -> str:
    """Where a breach comes from: the face, the exception, and the innermost frame of ours."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "cachewise" in f.filename]
    frame = frames[-1] if frames else traceback.extract_tb(exc.__traceback__)[-1]
    where = f"{Path(frame.filename).name}:{frame.lineno}"
    text = str(exc).splitlines()[0][:100] if str(exc) else ""
    return f"{face}: {type(exc).__name__} at {where} {text}"


async def _app(body: Any, stream: bool) -> list[str]:
    app, client = emulator_client()
    async with client:
        return await check_app(app, client, body, stream)


async def run(count: int, start: int, full_every: int, show: bool) -> int:
    outcomes: dict[str, Counter[str]] = {"messages": Counter(), "parse (full)": Counter()}
    outcomes.update({"messages x2 (full)": Counter(), "count_tokens (full)": Counter()})
    outcomes["batch (full)"] = Counter()
    breaches: Counter[str] = Counter()
    first: dict[str, int] = {}
    began = time.perf_counter()
    shared = emulator_client()[0]  # the cheap face's app, its cache reset now and then
    await asgi_call(shared, "POST", "/v1/messages", wire(WARM))
    for k in range(start, start + count):
        body = random_body(k)
        if show:
            print(wire(body).decode()[:4000])
        if k % 200 == 0:
            shared.state.emulator.reset()
            await asgi_call(shared, "POST", "/v1/messages", wire(WARM))
        faces: list[tuple[str, Any]] = [
            ("messages", lambda b=body, k=k: check_messages(shared, b, k % 2 == 0))
        ]
        if k % full_every == 0:
            faces += [
                ("core", lambda b=body: check_core(b)),
                ("app", lambda b=body, k=k: _app(b, k % 4 == 0)),
            ]
        for face, check in faces:
            try:
                result = check()
                if asyncio.iscoroutine(result):
                    result = await result
            except Exception as exc:
                sig = _signature(face, exc)
                breaches[sig] += 1
                first.setdefault(sig, k)
                if show:
                    traceback.print_exc()
                continue
            if face == "messages":
                outcomes["messages"][result] += 1
            elif face == "core":
                outcomes["parse (full)"][result] += 1
            else:
                outcomes["messages x2 (full)"].update(result[:2])
                outcomes["count_tokens (full)"][result[2].removeprefix("count_tokens ")] += 1
                outcomes["batch (full)"][result[3].removeprefix("batch ")] += 1
        done = k - start + 1
        if done % 5_000 == 0 or done == count:
            _summary(start, done, time.perf_counter() - began, outcomes, breaches, first)
    return 1 if breaches else 0


def _summary(
    start: int,
    done: int,
    seconds: float,
    outcomes: dict[str, Counter[str]],
    breaches: Counter[str],
    first: dict[str, int],
) -> None:
    """The counts so far: a long run shows them as it goes, and in full at its end."""
    print(f"bodies {done} (numbers {start}..{start + done - 1}) in {seconds:.0f} s")
    for face, counter in outcomes.items():
        if counter:
            print(f"{face}:")
            for name, n in counter.most_common():
                print(f"  {n:>8}  {name}")
    print(f"contract breaches: {sum(breaches.values())}")
    for sig, n in breaches.most_common():
        print(f"  {n:>8}  {sig}  (first: body {first[sig]})")
    print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int, help="how many bodies")
    parser.add_argument("--start", type=int, default=0, help="the first body's number")
    parser.add_argument(
        "--full-every",
        type=int,
        default=1,
        help="every body goes to /v1/messages; every Nth also to every face (default: all)",
    )
    parser.add_argument("--show", action="store_true", help="print each body and traceback")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.count, args.start, max(1, args.full_every), args.show)))


if __name__ == "__main__":
    main()
