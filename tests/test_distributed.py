"""`cachewise run --engine celery`: three `cachewise worker` processes, a real Redis (and RabbitMQ
as the other broker), the emulator; one write per prefix group, every custom_id exactly once in
the results file and the ledger when a worker or the driver is killed, Ctrl-C as the local run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cachewise.ledger import Ledger
from cachewise.runner import run_requests
from cachewise.testing import Emulator
from conftest import REDIS_URL, require_or_skip, text

pytest.importorskip("celery")

from cachewise.distributed import CeleryEngine

# One pool of workers per broker for the module: with `-n auto --dist loadgroup`, one process runs
# all of it (under plain `load`, each process that gets one of its tests starts its own pool).
pytestmark = pytest.mark.xdist_group("celery-workers")

AMQP_URL = os.environ.get("CACHEWISE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
CONTEXTS = [text(1500, name) for name in ("north", "south", "east")]
LEASE = 1.5  # a dead worker's claim lapses this soon: the tests stay short


def requests(n: int, groups: int = 3) -> list[dict[str, Any]]:
    """`n` requests over `groups` contexts of this call's own: no other test shares a prefix."""
    salt = uuid.uuid4().hex[:8]
    contexts = [f"{salt} {c}" for c in CONTEXTS]
    return [
        {
            "custom_id": f"q{i}",
            "params": {
                "model": "claude-sonnet-4-6",
                "max_tokens": 16,
                "system": contexts[i % groups],
                "messages": [{"role": "user", "content": f"Question {i}?"}],
            },
        }
        for i in range(n)
    ]


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def writes(rows: list[dict[str, Any]]) -> int:
    return sum(
        1
        for r in rows
        if r["result"]["type"] == "succeeded"
        and r["result"]["message"]["usage"]["cache_creation_input_tokens"] > 0
    )


def assert_exactly_once(out: Path, ledger_path: Path, n: int) -> None:
    ids = Counter(r["custom_id"] for r in lines(out))
    assert set(ids) == {f"q{i}" for i in range(n)}
    assert max(ids.values()) == 1
    assert {r["result"]["type"] for r in lines(out)} == {"succeeded"}
    with Ledger(ledger_path) as ledger:
        calls = ledger.calls()
    assert len(calls) == n and len({c.uid for c in calls}) == n
    assert {c.source for c in calls} == {"run"}


# -- services ------------------------------------------------------------------------------------


def _services(broker: str) -> None:
    """Skip (or fail, where services are required) without Redis, or without the broker."""
    import kombu
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except (redis.RedisError, OSError) as exc:
        require_or_skip(f"no Redis at {REDIS_URL} ({type(exc).__name__}: {exc})")
    if broker.startswith("amqp"):
        try:
            with kombu.Connection(broker, connect_timeout=2) as conn:
                conn.ensure_connection(max_retries=1)
        except Exception as exc:
            require_or_skip(f"no RabbitMQ at {broker} ({type(exc).__name__}: {exc})")


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    # Shared by the module's tests: each sends prompts of its own (`requests` salts them), so
    # one test's cache entries are never another's.
    with Emulator(clock="real", ttft_ms=20, output_tokens_per_s=400) as e:
        yield e


class Workers:
    """`cachewise worker` processes on one queue, pointed at the emulator."""

    def __init__(self, broker: str, emu: Emulator, home: Path, n: int = 3) -> None:
        self.broker, self.queue = broker, f"cw-test-{uuid.uuid4().hex[:10]}"
        self.env = {
            **os.environ,
            "ANTHROPIC_API_KEY": f"sk-test-{uuid.uuid4().hex}",  # a workspace of the test's own
            "ANTHROPIC_BASE_URL": emu.base_url,
            "CACHEWISE_HOME": str(home),
            "PYTHONPATH": os.pathsep.join(sys.path),
        }
        self.home = home
        self.logs: list[Path] = []
        self.procs = [self.start() for _ in range(n)]

    def start(self) -> subprocess.Popen[bytes]:
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.append(self.home / f"worker-{uuid.uuid4().hex[:6]}.log")
        with self.logs[-1].open("wb") as log:
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cachewise",
                    "worker",
                    "--broker",
                    self.broker,
                    "--redis",
                    REDIS_URL,
                    "--queue",
                    self.queue,
                    "--concurrency",
                    "4",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def ready(self) -> Workers:
        """Wait until every worker takes tasks (each says so on its log)."""
        wait_for(lambda: all(b"ready" in log.read_bytes() for log in self.logs[-3:]), 60)
        return self

    def engine(self, prefix: str) -> CeleryEngine:
        return CeleryEngine(
            self.broker, redis_url=REDIS_URL, queue=self.queue, prefix=prefix, lease=LEASE, grace=1
        )

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        _purge(self.broker, self.queue)


def _purge(broker: str, queue: str) -> None:
    import kombu

    with kombu.Connection(broker, connect_timeout=2) as conn:
        channel = conn.default_channel
        try:
            channel.queue_purge(queue)
            channel.queue_delete(queue)
        except Exception:
            pass  # never declared: nothing to remove


@pytest.fixture(scope="module", params=["redis", "amqp"])
def workers(
    request: pytest.FixtureRequest, emu: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    """Three worker processes for the module's tests on a broker (started once: a worker takes
    seconds to start on a busy machine)."""
    broker = REDIS_URL if request.param == "redis" else AMQP_URL
    _services(broker)
    pool = Workers(broker, emu, tmp_path_factory.mktemp("worker-home"))
    try:
        yield pool.ready()
    finally:
        pool.stop()


def bounded(seconds: float = 180) -> threading.Event:
    """A stop event that a timer sets: a run that hangs ends (and its test fails) instead. Far
    above a run's time here (seconds), so that a machine busy with other work does not fail it."""
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.daemon = True
    timer.start()
    return stop


def wait_for(predicate: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# -- the tests -----------------------------------------------------------------------------------


def test_300_requests_in_3_groups_write_3_times(
    workers: Workers, redis_prefix: str, tmp_path: Path
) -> None:
    out, ledger_path = tmp_path / "out.jsonl", tmp_path / "ledger.db"
    with Ledger(ledger_path) as ledger:
        s = run_requests(
            requests(300),
            out,
            None,
            engine=workers.engine(redis_prefix),
            ledger=ledger,
            stop=bounded(),
        )
    assert (s.succeeded, s.errored, s.not_sent, s.interrupted) == (300, 0, 0, False)
    assert (s.writes, writes(lines(out))) == (3, 3)
    assert s.reads == 297
    assert_exactly_once(out, ledger_path, 300)


# With a worker killed, claims pause while its leases run out; on a machine busy with other work
# the pause can pass the driver's 30 s "are workers running?" warning, which is then no news.
@pytest.mark.filterwarnings("ignore:no worker has taken a call")
def test_a_worker_killed_mid_run_loses_and_repeats_nothing(
    workers: Workers, redis_prefix: str, tmp_path: Path, emu: Emulator
) -> None:
    out, ledger_path = tmp_path / "out.jsonl", tmp_path / "ledger.db"
    victim = workers.procs[0]

    def kill_when_going() -> None:
        wait_for(lambda: len(lines(out)) >= 30)
        victim.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_when_going, daemon=True)
    killer.start()
    with Ledger(ledger_path) as ledger:
        s = run_requests(
            requests(150),
            out,
            None,
            engine=workers.engine(redis_prefix),
            ledger=ledger,
            stop=bounded(),
        )
    killer.join(5)
    assert victim.poll() == -signal.SIGKILL
    workers.procs[0] = workers.start()  # three again, for the module's other tests
    assert (s.succeeded, s.not_sent) == (150, 0)
    assert_exactly_once(out, ledger_path, 150)


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_a_queue_with_no_message_waiting_reads_as_empty_on_either_broker(broker: str) -> None:
    """The driver hands a call out again when its message went with a dead worker only if the
    queue is empty; a Redis broker says 404 for a drained queue (Redis deletes an empty list),
    which once read as "cannot say" and left the call waiting for the visibility timeout."""
    from cachewise.distributed import queue_empty
    from cachewise.worker import TASK, make_app

    url = REDIS_URL if broker == "redis" else AMQP_URL
    _services(url)
    queue = f"cw-test-{uuid.uuid4().hex[:10]}"
    app = make_app(url, queue)
    try:
        assert queue_empty(app, queue)  # never declared
        app.send_task(TASK, args=[{}], queue=queue)
        assert not queue_empty(app, queue)
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(queue)
        assert queue_empty(app, queue)  # drained
    finally:
        _purge(url, queue)
        app.close()


def _driver(workers: Workers, req: Path, out: Path, ledger: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cachewise",
            "run",
            str(req),
            "--out",
            str(out),
            "--engine",
            "celery",
            "--broker",
            workers.broker,
            "--redis",
            REDIS_URL,
            "--queue",
            workers.queue,
            "--ledger",
            str(ledger),
            "--format",
            "json",
        ],
        env={k: v for k, v in workers.env.items() if not k.startswith("ANTHROPIC_")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("workers", ["redis"], indirect=True)
def test_a_driver_killed_and_started_again_completes_the_run(
    workers: Workers, tmp_path: Path
) -> None:
    req, out, ledger = tmp_path / "req.jsonl", tmp_path / "out.jsonl", tmp_path / "ledger.db"
    req.write_text("".join(json.dumps(r) + "\n" for r in requests(150)))
    first = _driver(workers, req, out, ledger)
    wait_for(lambda: len(lines(out)) >= 20 or first.poll() is not None)
    first.kill()
    first.communicate(timeout=10)
    assert 0 < len(lines(out)) < 150
    second = _driver(workers, req, out, ledger)
    stdout, stderr = second.communicate(timeout=60)
    assert second.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["skipped"] + summary["succeeded"] == 150
    assert_exactly_once(out, ledger, 150)
    with Ledger(ledger) as led:
        assert sum(c.usage.cache_creation_input_tokens > 0 for c in led.calls()) == 3


@pytest.mark.parametrize("workers", ["redis"], indirect=True)
def test_ctrl_c_sends_nothing_new_writes_the_calls_in_flight_and_resumes(
    workers: Workers, tmp_path: Path, emu: Emulator
) -> None:
    req, out, ledger = tmp_path / "req.jsonl", tmp_path / "out.jsonl", tmp_path / "ledger.db"
    req.write_text("".join(json.dumps(r) + "\n" for r in requests(150)))
    before = emu.stats()["requests"]
    driver = _driver(workers, req, out, ledger)
    wait_for(lambda: len(lines(out)) >= 20 or driver.poll() is not None)
    driver.send_signal(signal.SIGINT)
    stdout, stderr = driver.communicate(timeout=30)
    assert driver.returncode == 130, stderr
    assert "Interrupted" in stderr and "run the same command again" in stderr
    summary = json.loads(stdout)
    assert summary["interrupted"] and summary["not_sent"] > 0
    written = len(lines(out))
    assert summary["succeeded"] == written < 150
    sent = emu.stats()["requests"] - before
    time.sleep(0.5)  # the workers drain the queue without sending
    assert emu.stats()["requests"] - before == sent == written  # every call sent was written
    with Ledger(ledger) as led:
        assert len(led.calls()) == written
    again = _driver(workers, req, out, ledger)
    stdout, stderr = again.communicate(timeout=60)
    assert again.returncode == 0, stderr
    assert json.loads(stdout)["skipped"] == written
    assert_exactly_once(out, ledger, 150)


# -- a worker's task, in this process -------------------------------------------------------------


def test_a_task_delivered_again_is_not_sent_again(redis_prefix: str) -> None:
    import redis

    from cachewise.errors import CachewiseWarning
    from cachewise.runstore import RunStore, row_uid
    from cachewise.worker import WorkerState

    with Emulator() as emu:
        state = WorkerState(REDIS_URL, client_factory=lambda observe: emu.client())
        store = RunStore(redis.Redis.from_url(REDIS_URL), "unit", redis_prefix)
        gen = store.attach()
        item = requests(1)[0]
        spec = {"run": "unit", "gen": gen, "prefix": redis_prefix, "item": item}
        spec |= {"scout": True, "retries": 0, "max_rps": None, "lease": 5}
        assert store.claim(gen, "other", "someone-else", 5) == "mine"
        assert state.call({**spec, "item": {**item, "custom_id": "other"}}) == "busy"
        assert state.call(spec) == "sent"
        assert state.call(spec) == "done"  # a redelivery: the result is there
        assert emu.stats()["requests"] == 1
        (payload,) = store.payloads([item["custom_id"]])
        assert payload is not None and payload["line"]["custom_id"] == item["custom_id"]
        assert payload["row"]["uid"] == row_uid("unit", gen, item["custom_id"])
        with pytest.warns(CachewiseWarning, match="does not know"):
            assert state.call({**spec, "gen": "an-earlier-attempt"}) == "stale"
        store.mark_enqueued(["q-late"])
        store.set_stop()
        late = {**spec, "item": {**item, "custom_id": "q-late"}}
        assert state.call(late) == "stopped"  # and a resumed driver hands it out again
        assert "q-late" not in store.enqueued()
        assert emu.stats()["requests"] == 1
        store.finish()
        state.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "celery"], "needs --broker"),
        (["--engine", "celery", "--broker", "amqp://h//"], "needs --redis"),
        (["--engine", "celery", "--broker", "redis://h", "--emulate"], "cachewise emulate"),
        (["--engine", "celery", "--broker", "redis://h", "--via", "batches"], "--via batches"),
        (["--broker", "redis://h"], "--broker is for --engine celery"),
    ],
)
def test_run_options_of_the_celery_engine_are_checked_first(
    args: list[str], message: str, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from cachewise.cli import main

    req = tmp_path / "req.jsonl"
    req.write_text(json.dumps(requests(1)[0]) + "\n")
    result = CliRunner().invoke(main, ["run", str(req), "--out", str(tmp_path / "o.jsonl"), *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_a_worker_without_a_key_or_a_redis_says_what_it_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from cachewise.cli import main

    result = CliRunner().invoke(main, ["worker", "--broker", "redis://127.0.0.1:1"])
    assert result.exit_code == 2 and "ANTHROPIC_API_KEY" in result.output
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    result = CliRunner().invoke(main, ["worker", "--broker", "amqp://127.0.0.1//"])
    assert result.exit_code == 2 and "needs --redis" in result.output
    result = CliRunner().invoke(main, ["worker", "--broker", "redis://127.0.0.1:1"])
    assert result.exit_code == 2 and "no Redis answers at redis://127.0.0.1:1" in result.output


def test_max_rps_and_the_apis_pause_are_shared_by_every_worker(redis_prefix: str) -> None:
    import redis

    from cachewise.runstore import RedisPacer, RunStore

    client = redis.Redis.from_url(REDIS_URL)
    store = RunStore(client, "pace", redis_prefix)
    # Two workers' pacers of one run at 20 starts a second: six starts take 5 intervals.
    pacers = [RedisPacer(store, 20), RedisPacer(RunStore(client, "pace", redis_prefix), 20)]
    start = time.monotonic()
    for i in range(6):
        assert pacers[i % 2].wait(threading.Event())
    assert 0.22 <= time.monotonic() - start < 1.0
    # A response saying no request is left until a reset pauses every run of the account.
    pacers[0].observe(_no_request_left(0.4))
    other_run = RedisPacer(RunStore(client, "another-run", redis_prefix), None)
    start = time.monotonic()
    assert other_run.wait(threading.Event())
    assert 0.25 <= time.monotonic() - start < 1.0
    pacers[0].observe(_no_request_left(5))
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    start = time.monotonic()
    assert not other_run.wait(stop)  # stopped while paused: it is not sent
    assert time.monotonic() - start < 2


def _no_request_left(seconds: float) -> dict[str, str]:
    reset = time.time() + seconds
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(reset)) + f".{int(reset % 1 * 1e6):06d}Z"
    return {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": stamp,
    }


def test_a_worker_and_the_driver_sharing_one_postgresql_ledger_keep_one_row_per_call(
    redis_prefix: str, postgres_url: str
) -> None:
    import redis

    from cachewise.ledger import CallRecord
    from cachewise.runstore import RunStore, row_uid
    from cachewise.worker import WorkerState

    with Emulator() as emu:
        state = WorkerState(
            REDIS_URL, ledger=postgres_url, client_factory=lambda observe: emu.client()
        )
        store = RunStore(redis.Redis.from_url(REDIS_URL), "one-ledger", redis_prefix)
        gen = store.attach()
        items = requests(3)
        for item in items:
            spec = {"run": "one-ledger", "gen": gen, "prefix": redis_prefix, "item": item}
            spec |= {"scout": True, "retries": 0, "max_rps": None, "lease": 5}
            assert state.call(spec) == "sent"
        # The driver records the same calls in the same ledger as it collects them.
        with Ledger(postgres_url) as ledger:
            for payload in store.payloads([i["custom_id"] for i in items]):
                assert payload is not None
                ledger.record(CallRecord.from_row(payload["row"]))
            calls = ledger.calls()
        assert len(calls) == 3 and {c.source for c in calls} == {"run"}
        assert {c.uid for c in calls} == {row_uid("one-ledger", gen, i["custom_id"]) for i in items}
        store.finish()
        state.close()
