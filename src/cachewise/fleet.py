"""The fleet gate: one scout per cold prefix across every process that shares a Redis server.

`LocalGate` elects a scout among the threads and tasks of one process; a fleet of proxies on many
machines elects it in Redis. Per prefix (a sha256 of the gate key; raw keys are never stored):

    {prefix}{<sha>}:lease   the scout's token, `SET NX PX`: whoever sets it is the scout; it
                            expires after `lease` seconds, so a scout that died is replaced
    {prefix}{<sha>}:warm    set for the prefix's TTL when a scout's response began
    {prefix}<sha>:done      the channel a release is published on ("1" ok, "0" failed)

A call finds the prefix warm (role "warm", at once), or wins the lease (scout), or subscribes to
the channel and waits (follower) until the release is published, re-checking every `poll`
seconds: a prefix found warm releases it, a lease found gone without warm (its scout died) is
contested again, and `timeout` ends the wait (role "timeout": it goes uncached). The release is
one Lua script: the lease is deleted only by the token that set it.

Redis is for scheduling only; a call never fails because of it. An error or an unreachable server
lets the call go ungated, with one `CachewiseWarning` per outage, and the gate stops asking for
`RETRY_AFTER` seconds so that an outage costs no latency.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
import uuid
import warnings
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio

from .errors import CachewiseWarning
from .gate import Role, Ticket

__all__ = ["RETRY_AFTER", "RedisGate", "gate_digest"]

RETRY_AFTER = 5.0  # seconds an unreachable Redis is left alone before it is asked again
POLL = 0.25  # seconds between a follower's checks of warm and lease
# Seconds: a server that does not answer soon is an outage, not a wait.
TIMEOUTS: dict[str, Any] = {"socket_connect_timeout": 1.0, "socket_timeout": 5.0}

# KEYS: lease, warm. ARGV: token, lease ms. Warm first: a warm prefix needs no scout.
_ENTER = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 'warm' end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 'scout' end
return 'busy'
"""

# KEYS: lease, warm. ARGV: token, ok ("1"/"0"), warm ms, channel. A response that began warmed
# the prefix whoever holds the lease now, so `ok` always marks it warm and wakes the waiters; a
# failure wakes them only when it was this scout's lease (another scout's are still waiting).
_RELEASE = """
local mine = redis.call('GET', KEYS[1]) == ARGV[1]
if mine then redis.call('DEL', KEYS[1]) end
if ARGV[2] == '1' then redis.call('SET', KEYS[2], '1', 'PX', ARGV[3]) end
if mine or ARGV[2] == '1' then redis.call('PUBLISH', ARGV[4], ARGV[2]) end
if mine then return 1 end
return 0
"""


def gate_digest(key: Hashable) -> str:
    """The sha256 a gate key is stored under: of its JSON (a tuple is a list), so that every
    process, in any language, derives the same name from the same key."""
    text = json.dumps(key, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class _Names:
    lease: str
    warm: str
    channel: str

    @classmethod
    def of(cls, prefix: str, key: Hashable) -> _Names:
        sha = gate_digest(key)
        # {sha} is a hash tag: lease and warm share a cluster slot, as one script needs.
        return cls(f"{prefix}{{{sha}}}:lease", f"{prefix}{{{sha}}}:warm", f"{prefix}{sha}:done")


@dataclass
class _Side:
    """A client and the scripts registered on it (one for threads, one per event loop)."""

    client: Any
    enter: Any
    release: Any

    @classmethod
    def on(cls, client: Any) -> _Side:
        return cls(client, client.register_script(_ENTER), client.register_script(_RELEASE))


class RedisGate:
    """A warm gate shared by every process that uses the same Redis server and `prefix`.

    Args:
        url_or_client: a `redis://`, `rediss://` or `unix://` URL, or a `redis.Redis` (then the
            async calls run its sync ones in a worker thread).
        timeout: the longest a follower waits for its scout, in seconds.
        prefix: the start of every key and channel name.
        lease: how long an elected scout may take to reach its first byte before another call
            is elected in its place; default min(timeout, 120).
        poll: seconds between a follower's checks of warm and lease.
    """

    def __init__(
        self,
        url_or_client: str | redis.Redis,
        *,
        timeout: float = 60.0,
        prefix: str = "cachewise:gate:",
        lease: float | None = None,
        poll: float = POLL,
    ) -> None:
        self.timeout = timeout
        self.prefix = prefix
        self.lease = min(timeout, 120.0) if lease is None else lease
        self.poll = poll
        self._url = url_or_client if isinstance(url_or_client, str) else None
        if isinstance(url_or_client, str):
            client: redis.Redis = redis.Redis.from_url(url_or_client, **TIMEOUTS)
        else:
            client = url_or_client
        self._sync = _Side.on(client)
        self._loops: dict[asyncio.AbstractEventLoop, _Side] = {}  # asyncio clients are per loop
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._outage = False

    # -- threads -----------------------------------------------------------------------------

    def acquire(self, key: Hashable, ttl_seconds: float) -> Ticket:
        if self._resting():
            return Ticket(key, "ungated")
        names, token, start = _Names.of(self.prefix, key), self._token(ttl_seconds), _now()
        side = self._sync
        try:
            verdict = _said(
                side.enter(keys=[names.lease, names.warm], args=[token, self._lease_ms()])
            )
            if verdict != "busy":
                return self._recovered(_ticket(key, verdict, token, 0.0))
            pubsub = side.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(names.channel)
                while True:  # entered again after subscribing: a release in between is not missed
                    verdict = _said(
                        side.enter(keys=[names.lease, names.warm], args=[token, self._lease_ms()])
                    )
                    left = start + self.timeout - _now()
                    if verdict != "busy" or left <= 0:
                        return self._recovered(_ticket(key, verdict, token, _now() - start))
                    if pubsub.get_message(timeout=min(self.poll, left)) is not None:
                        return self._recovered(Ticket(key, "follower", _now() - start))
            finally:
                pubsub.close()
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return Ticket(key, "ungated", _now() - start)

    def release(self, ticket: Ticket, *, ok: bool) -> None:
        """The scout's response has begun (`ok`), or it failed: let the fleet's followers go."""
        if ticket.role != "scout" or ticket.lease is None:
            return
        names = _Names.of(self.prefix, ticket.key)
        try:
            args = _release_args(ticket, ok, names)
            self._sync.release(keys=[names.lease, names.warm], args=args)
        except (redis.RedisError, OSError) as exc:  # the lease expires; followers re-elect
            self._failed(exc)
        else:
            self._outage = False

    # -- event loops -------------------------------------------------------------------------

    async def acquire_async(self, key: Hashable, ttl_seconds: float) -> Ticket:
        if self._resting():
            return Ticket(key, "ungated")
        if self._url is None:
            return await asyncio.to_thread(self.acquire, key, ttl_seconds)
        names, token, start = _Names.of(self.prefix, key), self._token(ttl_seconds), _now()
        try:
            side = self._loop_side()
            verdict = _said(
                await side.enter(keys=[names.lease, names.warm], args=[token, self._lease_ms()])
            )
            if verdict != "busy":
                return self._recovered(_ticket(key, verdict, token, 0.0))
            pubsub = side.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(names.channel)
                while True:
                    verdict = _said(
                        await side.enter(
                            keys=[names.lease, names.warm], args=[token, self._lease_ms()]
                        )
                    )
                    left = start + self.timeout - _now()
                    if verdict != "busy" or left <= 0:
                        return self._recovered(_ticket(key, verdict, token, _now() - start))
                    if await pubsub.get_message(timeout=min(self.poll, left)) is not None:
                        return self._recovered(Ticket(key, "follower", _now() - start))
            finally:
                await pubsub.aclose()
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return Ticket(key, "ungated", _now() - start)

    async def release_async(self, ticket: Ticket, *, ok: bool) -> None:
        if ticket.role != "scout" or ticket.lease is None:
            return
        if self._url is None:
            await asyncio.to_thread(self.release, ticket, ok=ok)
            return
        names = _Names.of(self.prefix, ticket.key)
        try:
            await self._loop_side().release(
                keys=[names.lease, names.warm], args=_release_args(ticket, ok, names)
            )
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
        else:
            self._outage = False

    def _loop_side(self) -> _Side:
        """This event loop's client: an asyncio connection belongs to the loop that opened it.
        Clients of loops that have closed are dropped when another loop first asks."""
        loop = asyncio.get_running_loop()
        with self._lock:
            side = self._loops.get(loop)
            if side is None:
                assert self._url is not None
                self._loops = {lp: s for lp, s in self._loops.items() if not lp.is_closed()}
                client = redis.asyncio.Redis.from_url(self._url, **TIMEOUTS)
                side = self._loops[loop] = _Side.on(client)
            return side

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the threads' connections (the client's, when the gate made it)."""
        if self._url is not None:
            self._sync.client.close()

    async def aclose(self) -> None:
        """Close this event loop's connections."""
        with self._lock:
            side = self._loops.pop(asyncio.get_running_loop(), None)
        if side is not None:
            await side.client.aclose()

    # -- health ------------------------------------------------------------------------------

    def _resting(self) -> bool:
        return self._down_until > _now()

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            first, self._outage = not self._outage, True
            self._down_until = _now() + RETRY_AFTER
        if first:
            warnings.warn(
                f"cachewise: the warm gate's Redis ({self._where()}) failed "
                f"({type(exc).__name__}: {exc}); calls go ungated until it answers "
                f"(asked again every {RETRY_AFTER:g} s)",
                CachewiseWarning,
                stacklevel=3,
            )

    def _recovered(self, ticket: Ticket) -> Ticket:
        self._outage = False  # the next failure is a new outage, worth its own warning
        return ticket

    def _where(self) -> str:
        if self._url is None:
            return "a client"
        parts = urlsplit(self._url)  # no credentials in a warning
        return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"

    def _lease_ms(self) -> int:
        return max(1, round(self.lease * 1000))

    @staticmethod
    def _token(ttl_seconds: float) -> str:
        # The lease's value: unique to this election, and carries the warm TTL to the release.
        return f"{max(1, round(ttl_seconds * 1000))}:{uuid.uuid4().hex}"


def _said(reply: bytes | str) -> str:
    """A script's reply (bytes, or str from a client made with `decode_responses`)."""
    return reply.decode() if isinstance(reply, bytes) else reply


def _ticket(key: Hashable, verdict: str, token: str, waited: float) -> Ticket:
    """The role for an `_ENTER` verdict: found warm before waiting is "warm", after is released
    by the scout that warmed it; a lease won is "scout" (re-elected, when it waited); still busy
    here means the wait is over."""
    role: Role
    if verdict == "warm":
        role = "follower" if waited else "warm"
    elif verdict == "scout":
        return Ticket(key, "scout", waited, token)
    else:
        role = "timeout"
    return Ticket(key, role, waited)


def _release_args(ticket: Ticket, ok: bool, names: _Names) -> list[str]:
    assert ticket.lease is not None
    ttl_ms = ticket.lease.partition(":")[0]
    return [ticket.lease, "1" if ok else "0", ttl_ms, names.channel]


def _now() -> float:
    return time.monotonic()
