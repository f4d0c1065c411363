"""The warm gate: concurrent calls on one cold prefix wait while one of them (the scout) goes first.

A cache entry becomes readable only once the response that writes it has begun, so N calls sent
together on a cold prefix all pay the write. The gate holds every call whose cacheable prefix
(workspace, model, prefix hash at the breakpoint) is being written by a call in flight, and
releases them when that scout's response begins, or fails, or `timeout` passes (then they go
uncached rather than wait forever). A prefix the gate saw warmed passes without waiting for as
long as its TTL runs, and is forgotten after (the gate's own bookkeeping, for scheduling only;
every number in the ledger comes from the API's usage).

The interface is four calls, `acquire` / `acquire_async` and `release` / `release_async`, so that
a gate shared by many processes (`cachewise.fleet.RedisGate`: `SET NX PX` to elect the scout, a
key to mark warm) can stand in; `open_gate` makes one from a spec ("local", "off", a Redis URL).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from .errors import InputError

__all__ = ["Gate", "GateSpec", "LocalGate", "NoGate", "Ticket", "open_gate"]

Role = Literal["scout", "follower", "warm", "timeout", "ungated"]

SWEEP_AT = 64  # the smallest table of warm prefixes the gate sweeps


@dataclass(frozen=True)
class Ticket:
    """What the gate decided for one call: go first (scout), go after the scout (follower), go
    now because the prefix is warm, or go uncached because waiting timed out (or the gate could
    not decide: "ungated"). `lease` is a shared gate's proof that this scout was elected, which
    its release presents (opaque to the caller; None in one process)."""

    key: Hashable | None
    role: Role
    waited: float = 0.0
    lease: str | None = None


class Gate(Protocol):
    def acquire(self, key: Hashable, ttl_seconds: float) -> Ticket: ...

    async def acquire_async(self, key: Hashable, ttl_seconds: float) -> Ticket: ...

    def release(self, ticket: Ticket, *, ok: bool) -> None: ...

    async def release_async(self, ticket: Ticket, *, ok: bool) -> None: ...


GateSpec = Literal["local", "off"] | str | Gate | None


def open_gate(spec: GateSpec, *, timeout: float = 60.0) -> Gate:
    """The gate a spec names: "local" (or None, the default: the threads and tasks of this
    process), "off", a `redis://`, `rediss://` or `unix://` URL (one scout per prefix across
    every process that shares the server), or a `Gate`, returned as it is. `timeout` is the
    longest a follower waits for its scout.

    Raises:
        InputError: a string that is none of these.
    """
    if spec is None or spec == "local":
        return LocalGate(timeout)
    if spec == "off":
        return NoGate()
    if not isinstance(spec, str):
        return spec
    if spec.startswith(("redis://", "rediss://", "unix://")):
        try:
            from .fleet import RedisGate  # redis is optional: the `proxy` extra
        except ImportError as exc:
            raise InputError(
                f"a Redis gate needs redis-py ({exc}): pip install 'cachewise[proxy]'", field="gate"
            ) from exc
        return RedisGate(spec, timeout=timeout)
    raise InputError(f"{spec!r} is not 'local', 'off' or a redis:// URL", field="gate")


class NoGate:
    """Every call goes at once (`gate="off"`)."""

    def acquire(self, key: Hashable, ttl_seconds: float) -> Ticket:
        return Ticket(key, "ungated")

    async def acquire_async(self, key: Hashable, ttl_seconds: float) -> Ticket:
        return Ticket(key, "ungated")

    def release(self, ticket: Ticket, *, ok: bool) -> None:
        return None

    async def release_async(self, ticket: Ticket, *, ok: bool) -> None:
        return None


@dataclass
class _Flight:
    ttl: float
    done: threading.Event = field(default_factory=threading.Event)
    waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = field(
        default_factory=list
    )


class LocalGate:
    """A gate for the threads and asyncio tasks of one process.

    Args:
        timeout: the longest a follower waits for its scout, in seconds.
        clock: seconds, monotonic; injectable for tests.
    """

    def __init__(self, timeout: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.clock = clock
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight] = {}
        self._warm_until: dict[Hashable, float] = {}
        self._sweep_at = SWEEP_AT

    def _enter(self, key: Hashable, ttl: float) -> tuple[Ticket | None, _Flight | None]:
        with self._lock:
            if self._warm_until.get(key, 0.0) > self.clock():
                return Ticket(key, "warm"), None
            flight = self._flights.get(key)
            if flight is None:
                self._flights[key] = _Flight(ttl)
                return Ticket(key, "scout"), None
            return None, flight

    def acquire(self, key: Hashable, ttl_seconds: float) -> Ticket:
        ticket, flight = self._enter(key, ttl_seconds)
        if ticket is not None:
            return ticket
        assert flight is not None
        start = self.clock()
        released = flight.done.wait(self.timeout)
        return Ticket(key, "follower" if released else "timeout", self.clock() - start)

    async def acquire_async(self, key: Hashable, ttl_seconds: float) -> Ticket:
        ticket, flight = self._enter(key, ttl_seconds)
        if ticket is not None:
            return ticket
        assert flight is not None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if flight.done.is_set():
                future.set_result(None)
            else:
                flight.waiters.append((loop, future))
        start = self.clock()
        try:
            await asyncio.wait_for(asyncio.shield(future), self.timeout)
            role: Role = "follower"
        except TimeoutError:
            role = "timeout"
        return Ticket(key, role, self.clock() - start)

    def release(self, ticket: Ticket, *, ok: bool) -> None:
        """The scout's response has begun (`ok`), or the scout failed: let the others go."""
        if ticket.role != "scout":
            return
        with self._lock:
            flight = self._flights.pop(ticket.key, None)
            if flight is None:
                return
            if ok:
                self._warm(ticket.key, self.clock() + flight.ttl)
            flight.done.set()
            waiters, flight.waiters = flight.waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future)

    async def release_async(self, ticket: Ticket, *, ok: bool) -> None:
        self.release(ticket, ok=ok)  # a lock held for microseconds: never blocks the loop

    def _warm(self, key: Hashable, until: float) -> None:
        """Mark a prefix warm (under the lock). Whenever the table has doubled since it was last
        swept, forget the prefixes whose warm time has passed: a scan at most once per as many
        releases as the table then holds."""
        self._warm_until[key] = until
        if len(self._warm_until) >= self._sweep_at:
            now = self.clock()
            self._warm_until = {k: t for k, t in self._warm_until.items() if t > now}
            self._sweep_at = max(SWEEP_AT, 2 * len(self._warm_until))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
