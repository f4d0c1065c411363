"""`cachewise worker`: a Celery worker that makes the calls of distributed runs.

A task is one request of a run. The worker claims it in the run's Redis state (`RunStore`), so
that a task delivered twice (a redelivery after a worker died, a driver that re-enqueued) is sent
once; sends it the way the local engine does (`Sender`: the warm gate, here in Redis, so one
scout per prefix across every worker; `--max-rps` and the API's rate-limit pause, shared in
Redis); stores the result line with the call's ledger row for the driver; and only then is the
message acknowledged (late acknowledgement: a worker that dies mid-call leaves its message to the
broker and its claim to lapse).

The worker needs the API key (`ANTHROPIC_API_KEY`, and `ANTHROPIC_BASE_URL` for a proxy or the
emulator) of the account the calls are paid by; the driver never sends one.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery
from kombu.entity import Queue

from .errors import CachewiseWarning
from .fleet import TIMEOUTS, RedisGate
from .ledger import open_ledger
from .runstore import RedisPacer, RedisStop, RunStore, pause_from, pause_key, row_uid
from .sender import Sender
from .spool import Recorder

__all__ = ["QUEUE", "TASK", "WorkerState", "make_app", "start_worker"]

QUEUE = "cachewise"
TASK = "cachewise.run.call"
VISIBILITY = 300.0  # seconds before a Redis broker hands an unacknowledged task to another worker


def make_app(broker: str, queue: str = QUEUE) -> Celery:
    """The Celery app of the driver and the workers: JSON tasks, acknowledged after they ran,
    one prefetched per worker thread, no result backend (results travel through `RunStore`)."""
    app = Celery("cachewise", broker=broker, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=queue,
        task_queues=[Queue(queue)],  # type: ignore[no-untyped-call]
        # A redelivered task that finds its call claimed does nothing, so this can be short.
        broker_transport_options={"visibility_timeout": VISIBILITY},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    app.task(name=TASK, ignore_result=True)(_call)
    return app


@dataclass
class _Held:
    store: RunStore
    token: str
    lease: float
    renewed: float = field(default_factory=time.monotonic)


class WorkerState:
    """What a worker process keeps between tasks: the Redis client, a sender per (run prefix,
    scout, retries), the claims it holds (renewed by a heartbeat thread) and its ledger.

    Args:
        redis_url: the Redis holding the runs' state, the gate and the rate limits.
        ledger: a ledger the worker records each call in too (the driver always does; give
            both the same PostgreSQL URL for one ledger).
        client_factory: makes the `anthropic.Anthropic` client from a response hook (default:
            from the environment, as the SDK reads it).
    """

    def __init__(
        self, redis_url: str, *, ledger: str | None = None, client_factory: Any = None
    ) -> None:
        self.redis_url = redis_url
        self.client = redis.Redis.from_url(redis_url, **TIMEOUTS)
        self.recorder = Recorder(open_ledger(ledger)) if ledger else None
        self._factory = client_factory
        self._senders: dict[tuple[str, bool, int], Sender] = {}
        self._held: dict[tuple[str, str], _Held] = {}
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        threading.Thread(target=self._heartbeat, name="cachewise-claims", daemon=True).start()

    def call(self, spec: dict[str, Any]) -> str:
        """Run one task: what became of it ("sent", or why not: "done", "busy", "stopped",
        "stale")."""
        store = RunStore(self.client, spec["run"], spec["prefix"])
        item = spec["item"]
        cid, token, lease = item["custom_id"], uuid.uuid4().hex, float(spec["lease"])
        verdict = store.claim(spec["gen"], cid, token, lease)
        if verdict == "stale":
            self._stale(spec)
        if verdict != "mine":
            return verdict
        key = (store.run_id, cid)
        with self._lock:
            self._held[key] = _Held(store, token, lease)
        try:
            sender = self._sender(spec["prefix"], bool(spec["scout"]), spec["retries"])
            pacer = RedisPacer(store, spec.get("max_rps"))
            outcome = sender.send(item, pacer, RedisStop(store))
            if outcome is None:
                store.drop(cid, token)
                return "stopped"
            row = outcome.row
            if row is not None:
                row.uid = row_uid(store.run_id, spec["gen"], cid)
            payload = {
                "line": outcome.line,
                "model": outcome.model,
                "row": row.to_row() if row is not None else None,
            }
            store.store(cid, payload, token)
            if self.recorder is not None and row is not None:
                self.recorder.record(row)
            return "sent"
        finally:
            with self._lock:
                self._held.pop(key, None)

    def close(self) -> None:
        """Close the connections (a worker's end; tests that run one in their process)."""
        self.client.close()
        if self.recorder is not None:
            self.recorder.ledger.close()

    def _sender(self, prefix: str, scout: bool, retries: int) -> Sender:
        key = (prefix, scout, retries)
        with self._lock:
            found = self._senders.get(key)
            if found is None:
                pause = pause_key(prefix)

                def observe(response: Any) -> None:
                    pause_from(self.client, pause, response.headers)

                client = (self._factory or _client)(observe)
                gate: Any = RedisGate(self.redis_url, prefix=f"{prefix}gate:") if scout else "off"
                found = self._senders[key] = Sender(client, gate=gate, retries=retries)
            return found

    def _heartbeat(self) -> None:
        while True:
            time.sleep(0.2)
            now = time.monotonic()
            with self._lock:
                due = [(k, h) for k, h in self._held.items() if now - h.renewed >= h.lease / 3]
            for (_, cid), held in due:
                try:
                    held.store.renew(cid, held.token, held.lease)
                    held.renewed = now
                except (redis.RedisError, OSError):
                    pass  # the claim may lapse: the driver then re-enqueues, and a claim is needed

    def _stale(self, spec: dict[str, Any]) -> None:
        run = str(spec["run"])
        if run not in self._warned:
            self._warned.add(run)
            warnings.warn(
                f"cachewise worker: a task of run {run} that this worker's Redis does not know "
                "(the run finished, or the driver uses another Redis: give workers the "
                "driver's --redis); its tasks are dropped",
                CachewiseWarning,
                stacklevel=2,
            )


def _client(observe: Any) -> Any:
    """The SDK's client, from the worker's environment; `observe` sees every response."""
    import anthropic
    import httpx2

    http = httpx2.Client(event_hooks={"response": [observe]}, timeout=600)
    return anthropic.Anthropic(http_client=http)


_STATE: WorkerState | None = None


def _call(spec: dict[str, Any]) -> str:
    if _STATE is None:
        raise RuntimeError("the cachewise task runs in `cachewise worker` (start_worker)")
    return _STATE.call(spec)


def _warm_up() -> None:
    """Load the SDK and the tokenizer before taking tasks: seconds on a busy machine, which the
    first calls would otherwise spend (a scout among them, holding its followers)."""
    import anthropic  # noqa: F401 - imported for its import time

    from .request import parse_request

    parse_request(
        {
            "model": "claude-sonnet-4-6",
            "max_tokens": 1,
            "messages": [{"role": "user", "content": "ready"}],
        }
    )


def _ready(**_: Any) -> None:
    import sys

    print("cachewise worker: ready", file=sys.stderr, flush=True)


def start_worker(
    broker: str,
    *,
    redis_url: str | None = None,
    concurrency: int = 8,
    queue: str = QUEUE,
    ledger: str | None = None,
    client_factory: Any = None,
) -> int:
    """Run a worker until it is stopped (SIGTERM or Ctrl-C: a warm shutdown, which lets the calls
    in flight finish); its exit status. `concurrency` threads each make one call at a time."""
    from celery.signals import worker_ready

    global _STATE
    worker_ready.connect(_ready, weak=False)
    _STATE = WorkerState(redis_url or broker, ledger=ledger, client_factory=client_factory)
    _warm_up()
    app = make_app(broker, queue)
    worker = app.Worker(
        # Named per process: workers sharing a host and a RabbitMQ would fight over one
        # control queue otherwise (RESOURCE_LOCKED), and all but one would exit.
        hostname=f"cachewise-{os.getpid()}@{socket.gethostname()}",
        pool="threads",
        concurrency=concurrency,
        queues=[queue],
        loglevel="WARNING",
        quiet=True,
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
    )
    worker.start()
    return int(worker.exitcode or 0)
