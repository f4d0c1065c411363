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
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol

from .body import has_markers, strip_markers
from .catalog import catalog
from .cost import priced
from .engine import breakpoints, first_cacheable
from .errors import InputError, InvalidRequest, UnknownModel
from .ledger import CallRecord, Ledger, is_emulated, key_workspace
from .plan import plan
from .request import parse_request
from .results import ResultsFile
from .sender import Outcome, Pacer, Sender
from .spool import Recorder
from .trace import check_models, read_rows
from .usage import Tally, normalize_usage

__all__ = [
    "Engine",
    "LocalEngine",
    "Pacer",
    "Run",
    "RunOptions",
    "RunSummary",
    "read_requests",
    "run_requests",
]


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
    redis: str | None = None  # a Redis URL: the scout is elected across every run sharing it


@dataclass
class RunSummary(Tally):
    """A run: the calls it made this time (a `Tally`), and what it skipped."""

    total: int = 0
    skipped: int = 0
    not_sent: int = 0
    interrupted: bool = False
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
            "not_sent": self.not_sent,
            "interrupted": self.interrupted,
            **{k: v for k, v in tally.items() if k not in ("calls", "errors")},
            "wall_seconds": round(self.wall_seconds, 3),
            "notes": self.notes,
        }


def read_requests(path: str | Path) -> list[dict[str, Any]]:
    """The requests of a Message Batches JSONL file, checked before anything is sent: the shape
    of every line, its custom_id (1-64 letters, digits, _ or -; no repeats), and its model.

    Raises:
        InputError: naming the file, line and field of the first problem.
    """
    seen: dict[str, int] = {}
    out = []
    rows = read_rows(path)
    for row in rows:
        cid = row.custom_id
        if cid is None or not catalog().batches.custom_id.fullmatch(cid):
            problem = "must be 1-64 letters, digits, _ or -"
        elif cid in seen:
            problem = f"duplicate of line {seen[cid]}"
        else:
            problem = ""
        if problem:
            raise InputError(problem, file=row.file, line=row.line, field="custom_id")
        assert cid is not None
        seen[cid] = row.line
        out.append({"custom_id": cid, "params": row.request})
    check_models(rows)
    return out


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
    stop: threading.Event | None = None,
    inputs: Sequence[str | Path] = (),
    engine: Engine | None = None,
) -> RunSummary:
    """Run the requests not yet in `out_path`, appending their results to it.

    Args:
        requests: `{"custom_id", "params"}` items (`read_requests` checks a file of them).
        out_path: the results file; a run holds it exclusively, and resumes from what it holds.
        client: an `anthropic.Anthropic` client (None with an engine whose workers have their
            own, such as `cachewise.distributed.CeleryEngine`).
        options: workers, scout (elected in Redis with `redis`), path (`messages` or
            `batches`), TTL, pacing, retries.
        ledger: where every call is recorded (a row it refuses waits in the spool).
        pacer: shares the start rate with other runs; default one from `options.max_rps`.
        progress: called with the summary after each finished call.
        stop: once set, nothing new is sent; calls in flight finish and are written
            (`cachewise run` sets it on the first Ctrl-C).
        inputs: files the run reads, which `out_path` must not be.
        engine: where the calls run: default this process's threads (`LocalEngine`); the
            results file, the ledger, the summary and Ctrl-C are the same whichever runs them.

    Raises:
        InputError: `out_path` is an input, is not a results file, or another run holds it.
    """
    started = time.monotonic()
    stop = stop or threading.Event()
    results = ResultsFile(out_path, inputs=inputs)
    recorder = Recorder(ledger) if ledger is not None else None
    summary = RunSummary(total=len(requests))
    lock = threading.Lock()

    def finished(usage: Any, model: str, line: dict[str, Any]) -> None:
        results.write(line)
        if results.error is not None:
            stop.set()  # a result that cannot be written must not be paid for again and again
        with lock:
            if line["result"]["type"] == "succeeded":
                u = normalize_usage(usage)
                summary.add(u, *(priced(u, model=model) or (Decimal(0), Decimal(0))))
            else:
                summary.add(error=True)
        if progress is not None:
            progress(summary)

    def deliver(outcome: Outcome) -> None:
        # The row before the line: a run killed in between records the row again when resumed,
        # and the ledger keeps a uid once; the other way round the row would be lost.
        with lock:
            if outcome.custom_id in results.done:
                return  # an engine's duplicate: each custom_id is written once
            results.done.add(outcome.custom_id)
        if recorder is not None and outcome.row is not None:
            recorder.record(outcome.row)
        finished(outcome.usage, outcome.model, outcome.line)

    try:
        batches = _Batches(client, options, recorder, results, finished, stop)
        summary.notes += batches.collect_pending()
        collected = summary.calls
        todo = [r for r in requests if r["custom_id"] not in results.done]
        summary.skipped = len(requests) - len(todo)
        if summary.skipped:
            summary.notes.append(f"resumed: {summary.skipped} request(s) already in {out_path}")
        prepared, groups, notes = _prepare(todo, options)
        summary.notes += notes
        if options.via == "batches":
            summary.notes += batches.run(prepared, groups)
        else:
            order = [prepared[i] for ids in groups.values() for i in ids]
            run = Run(options, Path(out_path), deliver, stop, set(results.done))
            (engine or LocalEngine(client, pacer)).run(order, run)
        summary.not_sent = len(todo) - (summary.calls - collected)
    finally:
        note = results.close()
    if note:
        summary.notes.append(note)
    if results.error is not None:
        summary.notes.append(
            f"stopped sending: {out_path} could not be written ({results.error.strerror})"
        )
    summary.interrupted = summary.not_sent > 0
    summary.wall_seconds = time.monotonic() - started
    return summary


@dataclass
class Run:
    """What an engine is given with the calls to make: the run's options, its results file (an
    engine that outlives a process knows its run by it), `deliver` for each call that was sent
    (it records the row, writes the line and counts it, once per custom_id), the stop event,
    and the custom_ids already in the results file."""

    options: RunOptions
    out_path: Path
    deliver: Callable[[Outcome], None]
    stop: threading.Event
    done: set[str]


class Engine(Protocol):
    """Where a run's calls are made; `run` returns when each was delivered or `stop` was set
    (and the calls then in flight were delivered)."""

    def run(self, order: Sequence[dict[str, Any]], run: Run) -> None: ...


class LocalEngine:
    """The calls in this process, `options.workers` at a time."""

    def __init__(self, client: Any, pacer: Pacer | None = None) -> None:
        self.client = client
        self.pacer = pacer

    def run(self, order: Sequence[dict[str, Any]], run: Run) -> None:
        options = run.options
        gate = (options.redis or "local") if options.scout else "off"
        sender = Sender(self.client, gate=gate, retries=options.retries)
        pacer = self.pacer or Pacer(options.max_rps)

        def one(item: dict[str, Any]) -> None:
            outcome = sender.send(item, pacer, run.stop)
            if outcome is not None:  # None: not sent, and a resumed run sends it
                run.deliver(outcome)

        with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
            for future in [pool.submit(one, item) for item in order]:
                future.result()


class _Batches:
    """The Message Batches path: one priming batch (a request per prefix group, 1h breakpoints),
    then the rest; each batch is listed beside the results file from submission until its results
    are written, so a run stopped meanwhile (or killed) collects it when resumed instead of paying
    for it again."""

    def __init__(
        self,
        client: Any,
        options: RunOptions,
        recorder: Recorder | None,
        results: ResultsFile,
        finished: Callable[[Any, str, dict[str, Any]], None],
        stop: threading.Event,
    ) -> None:
        self.client, self.options, self.recorder = client, options, recorder
        self.results, self.finished, self.stop = results, finished, stop
        self.workspace = key_workspace(getattr(client, "api_key", None))

    def collect_pending(self) -> list[str]:
        notes = []
        for pending in self.results.pending_batches():
            notes.append(f"collected batch {pending['batch_id']}, submitted by an earlier run")
            self._collect(pending["batch_id"], {})
        return notes

    def run(
        self, prepared: Sequence[dict[str, Any]], groups: OrderedDict[str, list[int]]
    ) -> list[str]:
        notes = []
        items = [
            {
                "custom_id": p["custom_id"],
                "params": plan(strip_markers(p["params"]), ttl="1h").request
                if self.options.caching
                else p["params"],
            }
            for p in prepared
        ]
        skip = ("uncached", "unparsed")
        primers = [items[ids[0]] for key, ids in groups.items() if key not in skip]
        primer_ids = {p["custom_id"] for p in primers}
        rest = [i for i in items if i["custom_id"] not in primer_ids]
        if primers and rest:
            notes.append(
                f"priming batch of {len(primers)} request(s) with a 1h breakpoint, "
                "then the rest (the documented pattern)"
            )
            self._submit(primers)
        else:
            rest = items
        for chunk in _chunks(rest):
            self._submit(chunk)
        return notes

    def _submit(self, items: Sequence[dict[str, Any]]) -> None:
        if self.stop.is_set() or not items:
            return
        batch = self.client.messages.batches.create(requests=list(items))
        self.results.batch_submitted(batch.id, [i["custom_id"] for i in items])
        models = {i["custom_id"]: str(i["params"].get("model")) for i in items}
        self._collect(batch.id, models)

    def _collect(self, batch_id: str, models: dict[str, str]) -> None:
        started = time.time()
        batch = self.client.messages.batches.retrieve(batch_id)
        while batch.processing_status != "ended":
            self.stop.wait(self.options.poll_seconds)  # a submitted batch is paid for: wait
            batch = self.client.messages.batches.retrieve(batch_id)
        for entry in self.client.messages.batches.results(batch_id):
            if entry.custom_id in self.results.done:
                continue
            result = entry.result
            ok = result.type == "succeeded"
            usage = result.message.usage if ok else None
            model = result.message.model if ok else models.get(entry.custom_id, "")
            if self.recorder is not None:
                rec = CallRecord(
                    started_at=started,
                    ended_at=time.time(),
                    model=model,
                    workspace=self.workspace,
                    source="run",
                    batch=True,
                    status="ok" if ok else "error",
                    request_id=batch_id,
                    emulated=is_emulated(batch_id),
                )
                if usage is not None:
                    rec.set_usage(usage, batch=True)
                self.recorder.record(rec)
            self.finished(usage, model, entry.model_dump(mode="json"))
            self.results.done.add(entry.custom_id)
        self.results.batch_collected(batch_id)


def _chunks(items: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    limits = catalog().batches
    chunks: list[list[dict[str, Any]]] = [[]]
    size = 0
    for item in items:
        n = len(json.dumps(item))
        if len(chunks[-1]) >= limits.max_requests or size + n > limits.max_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += n
    return [c for c in chunks if c]
