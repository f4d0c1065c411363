"""The Celery engine of `cachewise run`: the driver plans and groups as the local engine does, hands
each call to Celery workers on any number of machines (`cachewise worker`), and collects their
results into the same results file, ledger, progress bar and summary.

    engine = CeleryEngine("redis://queue-host:6379/0")
    run_requests(requests, "results.jsonl", None, engine=engine, ledger=ledger)

What keeps every guarantee of the local engine (the run's state: `cachewise.runstore`):
- one scout per prefix group: workers elect it in the Redis warm gate, the proxy's and wrap's;
- exactly once by custom_id: a worker claims a call before sending it and stores its result and
  ledger row together; the driver records the row (the ledger keeps a uid once) before writing
  the line; a task delivered twice finds the call claimed or done and sends nothing;
- a worker that dies mid-call: its claim lapses without a result, and the driver hands the call
  out again (the broker may redeliver it too: that copy finds it claimed or done);
- a driver that dies: the workers go on; started again on the same results file, it re-attaches
  to the run, writes what was stored meanwhile, and hands out only what was never handed out;
- Ctrl-C: the driver raises the run's stop flag (workers send nothing new), waits for the calls
  in flight and writes them; the run is resumed by running the same command again.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import redis

from .errors import CachewiseError, CachewiseWarning, InputError
from .fleet import TIMEOUTS
from .ledger import CallRecord
from .runner import Run
from .runstore import RunStore, run_id_for
from .sender import Outcome
from .worker import QUEUE, TASK, make_app

__all__ = ["CeleryEngine"]

IDLE_WARNING = 30.0  # seconds without a call claimed or done before the driver asks for workers


class CeleryEngine:
    """Calls made by Celery workers (see the module's docstring).

    Args:
        broker: the Celery broker (`redis://...` or `amqp://...`).
        redis_url: the Redis of the runs' state, the gate and the rate limits; default the
            broker, when it is a Redis. Workers must be given the same.
        queue: the broker queue; workers must consume it.
        prefix: the start of every Redis key of the run (and of the gate's keys).
        lease: seconds a worker's claim on a call lasts unless its heartbeat renews it: how
            soon a call of a worker that died is handed out again.
        grace: seconds a handed-out call may go unclaimed while the queue is empty before it
            is taken as lost (a message that vanished with a worker) and handed out again.
        poll: seconds between the driver's checks of claims.
    """

    def __init__(
        self,
        broker: str,
        *,
        redis_url: str | None = None,
        queue: str = QUEUE,
        prefix: str = "cachewise:",
        lease: float = 15.0,
        grace: float = 5.0,
        poll: float = 0.5,
    ) -> None:
        if not broker.startswith(("redis://", "rediss://", "amqp://", "amqps://", "pyamqp://")):
            raise InputError(f"{broker!r} is not a redis:// or amqp:// URL", field="broker")
        if redis_url is None and not broker.startswith(("redis://", "rediss://")):
            raise InputError(
                "a broker that is not Redis needs --redis URL too: the runs' state, the warm "
                "gate and the rate limits live in Redis",
                field="redis",
            )
        self.broker, self.redis_url = broker, redis_url or broker
        self.queue, self.prefix = queue, prefix
        self.lease, self.grace, self.poll = lease, grace, poll

    def run(self, order: Sequence[dict[str, Any]], run: Run) -> None:
        """Hand out the calls and collect their results (see the module's docstring).

        Raises:
            CachewiseError: the Redis or the broker failed; the workers go on, and the same
                command run again re-attaches to the run.
        """
        client = redis.Redis.from_url(self.redis_url, **TIMEOUTS)
        app = make_app(self.broker, self.queue)
        store = RunStore(client, run_id_for(run.out_path), self.prefix)
        failures: tuple[type[BaseException], ...] = (redis.RedisError, OSError, *_broker_errors())
        try:
            _Driver(self, app, store, run).go(order)
        except failures as exc:
            raise CachewiseError(
                f"the run's Redis or broker failed ({type(exc).__name__}: {exc}); the results "
                "so far are written, and the same command run again re-attaches to the run"
            ) from exc
        finally:
            client.close()
            app.close()


def _broker_errors() -> tuple[type[BaseException], ...]:
    from kombu.exceptions import KombuError, OperationalError

    return (KombuError, OperationalError)


class _Driver:
    def __init__(self, engine: CeleryEngine, app: Any, store: RunStore, run: Run) -> None:
        self.engine, self.app, self.store, self.run = engine, app, store, run
        self.gen = ""
        self.cursor = "0-0"
        self.outstanding: dict[str, dict[str, Any]] = {}
        self.seen_claimed: set[str] = set()
        self.last_life: dict[str, float] = {}
        self.activity = 0.0  # when a call was last seen claimed or done
        self.warned = False

    def go(self, order: Sequence[dict[str, Any]]) -> None:
        self.gen = self.store.attach()
        self.outstanding = {i["custom_id"]: i for i in order}
        self.activity = start = time.monotonic()
        self.last_life = dict.fromkeys(self.outstanding, start)
        self._collect(None)  # what workers stored while no driver was there
        handed = self.store.enqueued()
        self._hand_out([i for i in self.outstanding.values() if i["custom_id"] not in handed])
        stopping = False
        next_check = time.monotonic() + self.engine.poll
        while self.outstanding:
            self._collect(200)
            if self.run.stop.is_set():
                if not stopping:
                    self.store.set_stop()  # workers send nothing new; in-flight calls finish
                    stopping = True
                if not any(self.store.claimed(list(self.outstanding))):
                    self._collect(None)
                    break
            elif time.monotonic() >= next_check:
                self._supervise()
                next_check = time.monotonic() + self.engine.poll
        if not self.outstanding:
            self.store.finish()

    def _collect(self, block_ms: int | None) -> None:
        while True:
            self.cursor, ids = self.store.read_log(self.cursor, block_ms)
            wanted = [i for i in ids if i in self.outstanding]
            for cid, payload in zip(wanted, self.store.payloads(wanted), strict=True):
                if payload is not None:
                    self._deliver(cid, payload)
            if block_ms is not None or not ids:
                return

    def _deliver(self, cid: str, payload: dict[str, Any]) -> None:
        self.outstanding.pop(cid, None)
        self.activity = time.monotonic()
        line = payload["line"]
        result = line.get("result", {})
        usage = (
            result.get("message", {}).get("usage") if result.get("type") == "succeeded" else None
        )
        row = CallRecord.from_row(payload["row"]) if payload.get("row") else None
        self.run.deliver(Outcome(line, usage, str(payload.get("model", "")), row))

    def _hand_out(self, items: list[dict[str, Any]]) -> None:
        options = self.run.options
        now = time.monotonic()
        with self.app.producer_or_acquire() as producer:
            for start in range(0, len(items), 100):
                if self.run.stop.is_set():
                    return
                chunk = items[start : start + 100]
                self.store.mark_enqueued([i["custom_id"] for i in chunk])
                for item in chunk:
                    spec = {
                        "run": self.store.run_id,
                        "gen": self.gen,
                        "prefix": self.store.prefix,
                        "item": item,
                        "scout": options.scout,
                        "retries": options.retries,
                        "max_rps": options.max_rps,
                        "lease": self.engine.lease,
                    }
                    self.app.send_task(
                        TASK, args=[spec], queue=self.engine.queue, producer=producer
                    )
                    self.last_life[item["custom_id"]] = now

    def _supervise(self) -> None:
        """Hand out again the calls that were lost: claimed once, and now neither claimed nor
        done (their worker died); or never claimed, for `grace` seconds, with the queue empty
        (their message vanished with a worker before it was claimed)."""
        now = time.monotonic()
        ids = list(self.outstanding)
        free = []
        for cid, claimed in zip(ids, self.store.claimed(ids), strict=True):
            if claimed:
                self.seen_claimed.add(cid)
                self.last_life[cid] = self.activity = now
            else:
                free.append(cid)
        if now - self.activity > IDLE_WARNING and not self.warned:
            self.warned = True
            warnings.warn(
                f"no worker has taken a call of this run for {IDLE_WARNING:g} s: are workers "
                f"running on queue {self.engine.queue!r} of this broker (cachewise worker "
                f"--broker URL --queue {self.engine.queue})?",
                CachewiseWarning,
                stacklevel=2,
            )
        if not free:
            return
        unstored = [c for c, s in zip(free, self.store.stored(free), strict=True) if not s]
        lost = [c for c in unstored if c in self.seen_claimed]
        idle = [
            c
            for c in unstored
            if c not in self.seen_claimed and now - self.last_life.get(c, now) > self.engine.grace
        ]
        if idle and self._queue_empty():
            lost += idle
        if lost:
            self.seen_claimed.difference_update(lost)
            self._hand_out([self.outstanding[c] for c in lost])

    def _queue_empty(self) -> bool:
        return queue_empty(self.app, self.engine.queue)


def queue_empty(app: Any, queue: str) -> bool:
    """Whether the broker holds no message waiting in `queue`. A queue it does not have holds
    none: a Redis broker keeps a queue as a list, and Redis deletes an empty list, so its
    transport answers 404 for every drained queue (which read as "cannot say" left a call lost
    with a dead worker's prefetched message waiting for the broker's visibility timeout)."""
    try:
        with app.connection_for_read() as conn:
            declared = conn.default_channel.queue_declare(queue=queue, passive=True)
            return int(declared.message_count) == 0
    except Exception as exc:
        # Anything else is a broker that cannot say: the call waits for its claim to show.
        return str(getattr(exc, "reply_code", "")) == "404"
