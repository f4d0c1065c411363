"""`cachewise run`: a batch of calls over shared context, where one call warms the cache and the
rest ride it.

Input and output are the Message Batches JSONL shapes. Requests are planned (when they carry no
markers), grouped by cacheable prefix, and ordered so that each group's calls run together; the
warm gate of `cachewise.wrap` lets one call per group go first and releases the rest at its first
byte. Results are appended and flushed as calls finish, so a run killed at any point and started
again skips what is done. Retries (429, 529, 5xx, connection errors, honouring `retry-after`)
are the SDK's; a request that keeps failing is written as `errored` and the run goes on.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from .body import has_markers, strip_markers
from .catalog import catalog
from .cost import priced
from .engine import breakpoints, first_cacheable
from .errors import InputError, InvalidRequest, UnknownModel
from .ledger import CallRecord, Ledger, key_workspace
from .plan import plan
from .request import parse_request
from .usage import Tally, normalize_usage

__all__ = ["RunOptions", "RunSummary", "completed_ids", "read_requests", "run_requests"]

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
BATCH_MAX_REQUESTS = 100_000
BATCH_MAX_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class RunOptions:
    workers: int = 4
    scout: bool = True
    via: Literal["messages", "batches"] = "messages"
    ttl: Literal["auto", "5m", "1h"] = "auto"
    max_rps: float | None = None
    retries: int = 4
    caching: bool = True  # False strips every marker (the demo's "off" run)
    poll_seconds: float = 1.0


@dataclass
class RunSummary(Tally):
    """A run: the calls it made this time (a `Tally`), and what it skipped."""

    total: int = 0
    skipped: int = 0
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> int:
        return self.calls - self.errors

    @property
    def errored(self) -> int:
        return self.errors

    def to_json(self) -> dict[str, Any]:
        tally = super().to_json()
        return {
            "total": self.total,
            "skipped": self.skipped,
            "succeeded": self.succeeded,
            "errored": self.errored,
            **{k: v for k, v in tally.items() if k not in ("calls", "errors")},
            "wall_seconds": round(self.wall_seconds, 3),
            "notes": self.notes,
        }


def read_requests(path: str | Path) -> list[dict[str, Any]]:
    """The requests of a Message Batches JSONL file, checked before anything is sent.

    Raises:
        InputError: a line that is not JSON, lacks `custom_id` or `params`, or repeats an id.
    """
    name = str(path)
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=name) from None
    seen: dict[str, int] = {}
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"not JSON: {exc.msg}", file=name, line=number) from None
        if not isinstance(item, dict):
            raise InputError('expected {"custom_id", "params"}', file=name, line=number)
        cid = item.get("custom_id")
        if not isinstance(cid, str) or not CUSTOM_ID.match(cid):
            raise InputError(
                "must be 1-64 letters, digits, _ or -", file=name, line=number, field="custom_id"
            )
        if cid in seen:
            raise InputError(
                f"duplicate of line {seen[cid]}", file=name, line=number, field="custom_id"
            )
        seen[cid] = number
        params = item.get("params")
        if not isinstance(params, dict) or "model" not in params or "messages" not in params:
            raise InputError(
                "must be a Messages request with model and messages",
                file=name,
                line=number,
                field="params",
            )
        out.append({"custom_id": cid, "params": params})
    if not out:
        raise InputError("no requests", file=name)
    return out


def completed_ids(out_path: str | Path) -> set[str]:
    """The custom_ids already in a results file. A last line cut off by a crash is removed, so
    that appending goes on cleanly."""
    path = Path(out_path)
    if not path.exists():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with path.open("r+b") as f:
            f.truncate(cut)
        data = data[:cut]
    done = set()
    for line in data.decode("utf-8").splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict) and isinstance(item.get("custom_id"), str):
            done.add(item["custom_id"])
    return done


class _Results:
    """Appends result lines, flushed and synced one by one, from any thread."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, line: dict[str, Any]) -> None:
        text = json.dumps(line, separators=(",", ":")) + "\n"
        with self._lock:
            self._file.write(text)
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


class Pacer:
    """At most `rate` call starts per second across workers; and a pause until a reset time when
    the API's `anthropic-ratelimit-requests-remaining` says 0."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next, self._paused_until)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)

    def observe(self, headers: Any) -> None:
        remaining = headers.get("anthropic-ratelimit-requests-remaining")
        reset = headers.get("anthropic-ratelimit-requests-reset")
        if remaining == "0" and reset:
            from datetime import datetime

            try:
                at = datetime.fromisoformat(reset.replace("Z", "+00:00")).timestamp()
            except ValueError:
                return
            with self._lock:
                self._paused_until = max(
                    self._paused_until, time.monotonic() + max(0.0, at - time.time())
                )


def _prepare(
    requests: Sequence[dict[str, Any]], options: RunOptions
) -> tuple[list[dict[str, Any]], OrderedDict[str, list[int]], list[str]]:
    """Plan each request, group them by cacheable prefix (in order of first appearance), and
    choose the TTL: with `auto`, 1h when the allowed rate spaces a group's calls so far apart
    that a 5m entry would expire between them and the engine says 1h costs less."""
    notes: list[str] = []
    ttl = _choose_ttl(requests, options, notes) if options.ttl == "auto" else options.ttl
    prepared, groups = [], OrderedDict[str, list[int]]()
    for i, item in enumerate(requests):
        params = item["params"]
        if not options.caching:
            params = strip_markers(params)
        elif not has_markers(params):
            with suppress(InvalidRequest, UnknownModel):  # the API will say what is wrong
                params = plan(params, ttl=ttl).request
        prepared.append({"custom_id": item["custom_id"], "params": params})
        groups.setdefault(_group_key(params), []).append(i)
    if options.caching:
        notes.append(f"{len(groups)} prefix group(s); breakpoints planned with ttl {ttl}")
    return prepared, groups, notes


def _choose_ttl(
    requests: Sequence[dict[str, Any]], options: RunOptions, notes: list[str]
) -> Literal["5m", "1h"]:
    five_minutes = catalog().ttl_seconds["5m"]
    if not options.max_rps or not requests or options.max_rps * five_minutes >= 1:
        return "5m"  # calls keep coming within 5 minutes: every read refreshes the entry
    from .scenario import Scenario, run_scenarios

    try:
        prompt = parse_request(plan(requests[0]["params"], ttl="5m").request)
    except (InvalidRequest, UnknownModel):
        return "5m"
    bps = breakpoints(prompt)
    if not bps:
        return "5m"
    gap = 1.0 / options.max_rps
    scenario = Scenario(
        prompt.model.id,
        len(requests),
        bps[0].tokens,
        prompt.total_tokens - bps[0].tokens,
        gap_seconds=gap,
    )
    by_name = {r.name: r.cost_usd for r in run_scenarios(scenario)}
    choice: Literal["5m", "1h"] = "1h" if by_name["1h"] < by_name["5m"] else "5m"
    notes.append(
        f"at {options.max_rps:g} requests/s calls come {gap:,.0f}s apart, longer than "
        f"a 5m entry lives: ttl {choice} (engine: 5m ${by_name['5m']:.4f}, 1h "
        f"${by_name['1h']:.4f})"
    )
    return choice


def _group_key(params: dict[str, Any]) -> str:
    try:
        prompt = parse_request(params)
    except (InvalidRequest, UnknownModel):
        return "unparsed"
    first = first_cacheable(prompt)
    if first is None:
        return "uncached"
    return prompt.positions[first.position].prefix_hash


def run_requests(
    requests: Sequence[dict[str, Any]],
    out_path: str | Path,
    client: Any,
    *,
    options: RunOptions = RunOptions(),
    ledger: Ledger | None = None,
    pacer: Pacer | None = None,
    progress: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """Run the requests not yet in `out_path`, appending their results to it."""
    started = time.monotonic()
    done = completed_ids(out_path)
    todo = [r for r in requests if r["custom_id"] not in done]
    summary = RunSummary(total=len(requests), skipped=len(requests) - len(todo))
    if summary.skipped:
        summary.notes.append(f"resumed: {summary.skipped} request(s) already in {out_path}")
    prepared, groups, notes = _prepare(todo, options)
    summary.notes += notes
    results = _Results(Path(out_path))
    lock = threading.Lock()

    def finished(custom_id: str, usage: Any, model: str, line: dict[str, Any]) -> None:
        results.write(line)
        with lock:
            if line["result"]["type"] == "succeeded":
                u = normalize_usage(usage)
                summary.add(u, *(priced(u, model=model) or (Decimal(0), Decimal(0))))
            else:
                summary.add(error=True)
        if progress is not None:
            progress(summary)

    try:
        if options.via == "batches":
            summary.notes += _run_batches(prepared, groups, client, options, ledger, finished)
        else:
            order = [prepared[i] for ids in groups.values() for i in ids]
            _run_messages(order, client, options, ledger, pacer or Pacer(options.max_rps), finished)
    finally:
        results.close()
    summary.wall_seconds = time.monotonic() - started
    return summary


def _error_line(custom_id: str, exc: BaseException) -> dict[str, Any]:
    body = getattr(exc, "body", None)
    inner = body.get("error") if isinstance(body, dict) else None
    error = inner if isinstance(inner, dict) else {"type": "api_error", "message": str(exc)}
    return {
        "custom_id": custom_id,
        "result": {"type": "errored", "error": {"type": "error", "error": error}},
    }


def _run_messages(
    order: Sequence[dict[str, Any]],
    client: Any,
    options: RunOptions,
    ledger: Ledger | None,
    pacer: Pacer,
    finished: Callable[[str, Any, str, dict[str, Any]], None],
) -> None:
    from .client import wrap

    wrapped = wrap(
        client.with_options(max_retries=options.retries),
        ledger=ledger if ledger is not None else False,
        plan="off",
        lint="off",
        gate="local" if options.scout else "off",
        source="run",
    )

    def one(item: dict[str, Any]) -> None:
        pacer.wait()
        params = item["params"]
        try:
            message = wrapped.messages.create(**params)
        except Exception as exc:  # the SDK has retried what can be retried
            finished(
                item["custom_id"],
                None,
                str(params.get("model")),
                _error_line(item["custom_id"], exc),
            )
            return
        finished(
            item["custom_id"],
            message.usage,
            message.model,
            {
                "custom_id": item["custom_id"],
                "result": {"type": "succeeded", "message": message.model_dump(mode="json")},
            },
        )

    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        for future in [pool.submit(one, item) for item in order]:
            future.result()


def _run_batches(
    prepared: Sequence[dict[str, Any]],
    groups: OrderedDict[str, list[int]],
    client: Any,
    options: RunOptions,
    ledger: Ledger | None,
    finished: Callable[[str, Any, str, dict[str, Any]], None],
) -> list[str]:
    """One priming batch (a request per prefix group, 1h breakpoints), then the rest."""
    notes = []
    items = [
        {
            "custom_id": p["custom_id"],
            "params": plan(strip_markers(p["params"]), ttl="1h").request
            if options.caching
            else p["params"],
        }
        for p in prepared
    ]
    primers = [items[ids[0]] for key, ids in groups.items() if key not in ("uncached", "unparsed")]
    primer_ids = {p["custom_id"] for p in primers}
    rest = [i for i in items if i["custom_id"] not in primer_ids]
    workspace = key_workspace(getattr(client, "api_key", None))
    if primers and rest:
        notes.append(
            f"priming batch of {len(primers)} request(s) with a 1h breakpoint, "
            "then the rest (the documented pattern)"
        )
        _one_batch(primers, client, options, ledger, workspace, finished)
    else:
        rest = items
    for chunk in _chunks(rest):
        _one_batch(chunk, client, options, ledger, workspace, finished)
    return notes


def _chunks(items: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    chunks: list[list[dict[str, Any]]] = [[]]
    size = 0
    for item in items:
        n = len(json.dumps(item))
        if len(chunks[-1]) >= BATCH_MAX_REQUESTS or size + n > BATCH_MAX_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += n
    return [c for c in chunks if c]


def _one_batch(
    items: Sequence[dict[str, Any]],
    client: Any,
    options: RunOptions,
    ledger: Ledger | None,
    workspace: str | None,
    finished: Callable[[str, Any, str, dict[str, Any]], None],
) -> None:
    batch = client.messages.batches.create(requests=list(items))
    started = time.time()
    while batch.processing_status != "ended":
        time.sleep(options.poll_seconds)
        batch = client.messages.batches.retrieve(batch.id)
    models = {i["custom_id"]: str(i["params"].get("model")) for i in items}
    for entry in client.messages.batches.results(batch.id):
        line = entry.model_dump(mode="json")
        result = entry.result
        usage = result.message.usage if result.type == "succeeded" else None
        model = result.message.model if result.type == "succeeded" else models[entry.custom_id]
        if ledger is not None:
            rec = CallRecord(
                started_at=started,
                ended_at=time.time(),
                model=model,
                workspace=workspace,
                source="run",
                batch=True,
                status="ok" if usage is not None else "error",
            )
            if usage is not None:
                rec.set_usage(usage, batch=True)
            ledger.record(rec)
        finished(entry.custom_id, usage, model, line)
