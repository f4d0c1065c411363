"""The state of a distributed `cachewise run` in Redis, shared by its driver and its workers.

A run is known by an id made from the driver's host and results file, so a driver started again
on the same file finds it. Its keys, under `{prefix}run:{<id>}:`:

    meta        `gen` (this attempt at the run: a task of an earlier, finished attempt is
                stale) and `stop` ("1" once the driver was interrupted: nothing new is sent)
    results     custom_id -> the call's results line and ledger row, set once (`HSETNX`)
    log         a stream of custom_ids in the order their results were stored: the driver reads
                it from where it left off, and from the start when it re-attaches
    enqueued    the custom_ids handed to the broker, so a driver re-attaching does not hand
                them over again
    claim:<id>  the worker sending that call, with a lease its heartbeat renews: a redelivered
                task finds the call claimed (or done) and does not send it again; a claim
                that lapses without a result is a worker that died, and the driver re-enqueues

Every change a worker makes is one Lua script, so the driver never sees a claim released without
its result stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from .sender import reset_time

__all__ = [
    "KEEP_SECONDS",
    "RedisPacer",
    "RedisStop",
    "RunStore",
    "pause_from",
    "row_uid",
    "run_id_for",
]

KEEP_SECONDS = 7 * 24 * 3600  # an interrupted run's state waits this long to be resumed

# KEYS: meta, results, claim, enqueued. ARGV: gen, custom_id, token, lease ms.
_CLAIM = """
local m = redis.call('HMGET', KEYS[1], 'gen', 'stop')
if m[1] ~= ARGV[1] then return 'stale' end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 'done' end
if m[2] == '1' then
  redis.call('SREM', KEYS[4], ARGV[2])
  return 'stopped'
end
if redis.call('SET', KEYS[3], ARGV[3], 'NX', 'PX', ARGV[4]) then return 'mine' end
return 'busy'
"""

# KEYS: results, log, claim. ARGV: custom_id, payload, token, keep seconds.
_STORE = """
local stored = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
if stored == 1 then redis.call('XADD', KEYS[2], '*', 'id', ARGV[1]) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
if redis.call('GET', KEYS[3]) == ARGV[3] then redis.call('DEL', KEYS[3]) end
return stored
"""

# KEYS: claim, enqueued. ARGV: custom_id, token. A call not sent: whoever resumes sends it.
_DROP = """
if redis.call('GET', KEYS[1]) == ARGV[2] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], ARGV[1])
"""

# KEYS: claim. ARGV: token, lease ms.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# KEYS: next start, pause. ARGV: interval ms. The wait, in ms, before this call may start.
_PACE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local start = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'),
                       tonumber(redis.call('GET', KEYS[2]) or '0'))
local interval = tonumber(ARGV[1])
if interval > 0 then
  redis.call('SET', KEYS[1], tostring(start + interval), 'PX', start - now + interval + 60000)
end
return start - now
"""


def pause_key(prefix: str) -> str:
    """Where the API's "no requests left until ..." is kept: it is the account's, not a run's."""
    return f"{prefix}pause"


def run_id_for(out_path: str | Path) -> str:
    """A run's id: its driver's host and the results file's real path."""
    where = f"{socket.gethostname()}:{os.path.realpath(out_path)}"
    return hashlib.sha256(where.encode()).hexdigest()[:16]


def row_uid(run_id: str, gen: str, custom_id: str) -> str:
    """The ledger uid of a request's call in one attempt at a run: recorded by a worker and by
    the driver, or again after a crash, the row is kept once."""
    return hashlib.sha256(f"{run_id}:{gen}:{custom_id}".encode()).hexdigest()[:32]


class RunStore:
    """One run's keys (see the module's docstring) on a Redis client."""

    def __init__(self, client: redis.Redis, run_id: str, prefix: str = "cachewise:") -> None:
        self.client = client
        self.run_id = run_id
        self.prefix = prefix
        base = f"{prefix}run:{{{run_id}}}:"  # a hash tag: one cluster slot, as the scripts need
        self.meta, self.results, self.log = base + "meta", base + "results", base + "log"
        self.enqueued_key, self._claim_base = base + "enqueued", base + "claim:"
        self.pace_key = base + "pace"
        self.pause_key = pause_key(prefix)
        self._claim = client.register_script(_CLAIM)
        self._store = client.register_script(_STORE)
        self._drop = client.register_script(_DROP)
        self._renew = client.register_script(_RENEW)

    def claim_key(self, custom_id: str) -> str:
        return self._claim_base + custom_id

    # -- the driver --------------------------------------------------------------------------

    def attach(self) -> str:
        """Start the run, or re-attach to it (clearing an earlier stop); its `gen`."""
        self.client.hsetnx(self.meta, "gen", uuid.uuid4().hex)
        self.client.hset(self.meta, "stop", "0")
        self.client.expire(self.meta, KEEP_SECONDS)
        return _text(self.client.hget(self.meta, "gen"))

    def set_stop(self) -> None:
        self.client.hset(self.meta, "stop", "1")

    def enqueued(self) -> set[str]:
        return {_text(m) for m in self.client.smembers(self.enqueued_key)}

    def mark_enqueued(self, ids: list[str]) -> None:
        if ids:
            self.client.sadd(self.enqueued_key, *ids)
            self.client.expire(self.enqueued_key, KEEP_SECONDS)

    def read_log(self, cursor: str, block_ms: int | None) -> tuple[str, list[str]]:
        """The custom_ids stored after `cursor` (waiting up to `block_ms` for one), and the new
        cursor."""
        reply: Any = self.client.xread({self.log: cursor}, count=1000, block=block_ms)
        ids = []
        for _, entries in reply or ():
            for entry_id, fields in entries:
                cursor = _text(entry_id)
                ids.append(_text(fields.get(b"id", fields.get("id", b""))))
        return cursor, ids

    def payloads(self, ids: list[str]) -> list[dict[str, Any] | None]:
        raw = self.client.hmget(self.results, ids) if ids else []
        return [json.loads(r) if r is not None else None for r in raw]

    def claimed(self, ids: list[str]) -> list[bool]:
        if not ids:
            return []
        return [v is not None for v in self.client.mget([self.claim_key(i) for i in ids])]

    def stored(self, ids: list[str]) -> list[bool]:
        pipe = self.client.pipeline(transaction=False)
        for i in ids:
            pipe.hexists(self.results, i)
        return [bool(v) for v in pipe.execute()]

    def finish(self) -> None:
        """The run is complete: its state goes (a late task then finds its run gone)."""
        self.client.delete(self.meta, self.results, self.log, self.enqueued_key)

    # -- the workers -------------------------------------------------------------------------

    def claim(self, gen: str, custom_id: str, token: str, lease: float) -> str:
        """ "mine" (send it), "done" (a result is stored), "busy" (another worker sends it),
        "stopped" (the driver was interrupted) or "stale" (not this attempt at the run)."""
        keys = [self.meta, self.results, self.claim_key(custom_id), self.enqueued_key]
        return _text(self._claim(keys=keys, args=[gen, custom_id, token, _ms(lease)]))

    def renew(self, custom_id: str, token: str, lease: float) -> bool:
        return bool(self._renew(keys=[self.claim_key(custom_id)], args=[token, _ms(lease)]))

    def store(self, custom_id: str, payload: dict[str, Any], token: str) -> bool:
        """Keep a call's result and release its claim; False when one was already stored."""
        keys = [self.results, self.log, self.claim_key(custom_id)]
        data = json.dumps(payload, separators=(",", ":"))
        return bool(self._store(keys=keys, args=[custom_id, data, token, KEEP_SECONDS]))

    def drop(self, custom_id: str, token: str) -> None:
        """A claimed call that was not sent (the run stopped): released for a resumed run."""
        self._drop(keys=[self.claim_key(custom_id), self.enqueued_key], args=[custom_id, token])

    def stopping(self) -> bool:
        return _text(self.client.hget(self.meta, "stop") or b"1") == "1"


class RedisStop:
    """A run's stop flag as a `sender.Stop`: set when the driver was interrupted (or the run
    is gone)."""

    def __init__(self, store: RunStore, poll: float = 0.25) -> None:
        self.store, self.poll = store, poll

    def is_set(self) -> bool:
        return self.store.stopping()

    def wait(self, timeout: float | None = None) -> bool:
        end = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = self.poll if end is None else min(self.poll, end - time.monotonic())
            if left <= 0:
                return False
            time.sleep(left)
        return True


class RedisPacer:
    """`--max-rps` across every worker of a run (call starts spaced in Redis's clock), and the
    pause every worker of the account keeps when a response says no request is left until a
    reset time."""

    def __init__(self, store: RunStore, rate: float | None) -> None:
        self.store = store
        self.interval_ms = round(1000 / rate) if rate else 0
        self._pace = store.client.register_script(_PACE)

    def wait(self, stop: Any = None) -> bool:
        keys = [self.store.pace_key, self.store.pause_key]
        try:
            wait_ms = int(self._pace(keys=keys, args=[self.interval_ms]))
        except (redis.RedisError, OSError):
            return True  # pacing is never a reason not to send
        if wait_ms <= 0:
            return True
        if stop is None:
            time.sleep(wait_ms / 1000)
            return True
        return not stop.wait(wait_ms / 1000)

    def observe(self, headers: Any) -> None:
        pause_from(self.store.client, self.store.pause_key, headers)


def pause_from(client: redis.Redis, key: str, headers: Any) -> None:
    """Keep the time a response says requests may start again (when it says none are left) where
    every worker's pacer reads it."""
    at = reset_time(headers)
    if at is None:
        return
    with contextlib.suppress(redis.RedisError, OSError):
        ms = max(1, round((at - time.time()) * 1000))
        client.set(key, str(round(at * 1000)), px=ms)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
