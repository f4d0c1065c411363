"""When to send a keep-alive read: a `max_tokens: 0` request that only reads a cached prefix, to
renew its entry before it expires.

A keep-alive costs a read of the prefix; letting the entry die costs a write when the prefix is
next used. So a keep-alive pays when the chance that the prefix is used again within the time
it buys is at least `read / (write - read)` (0.087 at Anthropic's 5m prices). The policy
estimates that chance from what it has seen, and stops when the evidence says stop:

- Superseded: the block the entry ends with has since been sent under another prefix (a new
  version of the prompt, such as one with a new timestamp in front). The old one will not return.
- Idle: nothing else was sent in the workspace since the prefix was last used, or nothing during
  the last TTL. A batch that finished, or a trace that ended, stops paying within one TTL; a
  lone prefix with long pauses is left to its TTL (the planner learns 1h for it).
- Unlikely: of the idle periods seen so far that lasted as long as this one, too few ended with
  a return within the next TTL (a Kaplan-Meier hazard over every prefix's gaps, with idle periods
  still open counted as survivors). With fewer than `min_evidence` such periods the policy has no
  estimate and relies on the workspace being busy.

A caller may set these rules aside for an entry (`rent`): it then gets exactly its budget of
keep-alives per idle period, unless used or superseded first. That is ski rental, which a
competitive guarantee needs (`cachewise.rent`): evidence can always be fooled.

It is pure: callers ask which keep-alives are due before a time, then tell it about the use at
that time (in that order: a decision must not see the future). The
simulator drives it through the engine; the numbers are in bench/results.md.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .body import TTL, strip_markers, with_marker

__all__ = ["KeepAlivePolicy", "Key"]

Key = tuple[str, str]  # (workspace, prefix hash of the entry)


@dataclass
class _Prefix:
    workspace: str
    last_use: float
    refreshed: float
    ttl: float
    tail: str  # digest of the block the entry ends with
    order: int  # when it began to be kept alive: of two due at once, the older goes first
    budget: int | None = None  # keep-alives allowed in this idle period (None: no cap)
    pings: int = 0  # keep-alives sent since its last use
    rent: bool = False  # sent up to the budget whatever the evidence says (ski rental)


class KeepAlivePolicy:
    """Which keep-alive reads to send, and when (see the module docstring)."""

    def __init__(
        self, *, threshold: float = 0.087, min_evidence: int = 3, margin: float = 10.0
    ) -> None:
        if min_evidence < 1 or margin < 0:
            raise ValueError("min_evidence must be at least 1 and margin not negative")
        self.threshold, self.min_evidence, self.margin = threshold, min_evidence, margin
        self.prefixes: dict[Key, _Prefix] = {}  # entries being kept alive
        # The same, by the block each ends with: what a new version of a prompt supersedes.
        self.by_tail: dict[tuple[str, str], set[Key]] = {}
        # When each is next due, in order; an item whose time no longer matches is stale.
        self.queue: list[tuple[float, int, Key]] = []
        self.uses = 0
        self.last_use: dict[Key, tuple[str, float]] = {}  # every prefix ever used
        self.gaps: dict[str, list[float]] = {}  # per workspace, sorted: idle periods that ended
        self.idle_since: dict[str, list[float]] = {}  # per workspace, sorted: last use of each
        self.activity: dict[str, float] = {}  # per workspace: when something was last sent

    def used(
        self,
        key: Key,
        *,
        at: float,
        ttl: float,
        tail: str,
        digests: frozenset[str],
        budget: int | None = None,
        rent: bool = False,
    ) -> None:
        """A request read or wrote the entry `key` (whose prompt holds blocks `digests`); at
        most `budget` keep-alives are sent for it before its next use (the ski-rental cap), and
        with `rent`, exactly that many unless it is used or superseded first: the evidence rules
        below are set aside, as a competitive guarantee needs (docs/simulate.md)."""
        workspace = key[0]
        self.activity[workspace] = max(self.activity.get(workspace, at), at)
        since = self.idle_since.setdefault(workspace, [])
        if key in self.last_use:
            _, last = self.last_use[key]
            insort(self.gaps.setdefault(workspace, []), at - last)
            del since[bisect_left(since, last)]
        self.last_use[key] = (workspace, at)
        insort(since, at)
        # Superseded by a new version of its prompt: found through the blocks this prompt holds,
        # so the work grows with the prompt, not with how many prefixes are alive.
        for digest in digests:
            for other in list(self.by_tail.get((workspace, digest), ())):
                if other != key:
                    self._drop(other)
        kept = self.prefixes.get(key)
        if kept is not None:
            order = kept.order
            self._drop(key)
        else:
            self.uses += 1
            order = self.uses
        p = self.prefixes[key] = _Prefix(workspace, at, at, ttl, tail, order, budget, rent=rent)
        self.by_tail.setdefault((workspace, tail), set()).add(key)
        heapq.heappush(self.queue, (self._next(p), p.order, key))

    def sent(self, workspace: str, at: float) -> None:
        """Something that used no cache was sent: the workspace is busy all the same."""
        self.activity[workspace] = max(self.activity.get(workspace, at), at)

    def due(self, before: float) -> Iterator[tuple[Key, float]]:
        """Keep-alives to send before `before`, in time order: (key, when)."""
        while self.queue and self.queue[0][0] < before:
            at, order, key = heapq.heappop(self.queue)
            p = self.prefixes.get(key)
            if p is None or p.order != order or self._next(p) != at:
                continue  # dropped, used again or renewed since this was queued
            if self._worth_it(p, at):
                p.refreshed, p.pings = at, p.pings + 1
                heapq.heappush(self.queue, (self._next(p), order, key))
                yield key, at
            else:
                self._drop(key)

    def _drop(self, key: Key) -> None:
        p = self.prefixes.pop(key, None)
        if p is not None:
            keys = self.by_tail[(p.workspace, p.tail)]
            keys.discard(key)
            if not keys:
                del self.by_tail[(p.workspace, p.tail)]

    def _next(self, p: _Prefix) -> float:
        """Just before the entry expires (and always later than its last renewal)."""
        return p.refreshed + max(p.ttl - self.margin, p.ttl / 2)

    def _worth_it(self, p: _Prefix, at: float) -> bool:
        if p.budget is not None and p.pings >= p.budget:
            return False  # they have cost what letting the entry die would have: stop renting
        if p.rent:
            return True
        busy = self.activity.get(p.workspace, p.last_use)
        if busy <= p.last_use or at - busy > p.ttl:
            return False  # nothing else was sent since this prefix was used, or not lately
        hazard = self.hazard(p.workspace, at - p.last_use, p.ttl, now=at)
        return hazard is None or hazard >= self.threshold

    def hazard(self, workspace: str, idle: float, window: float, *, now: float) -> float | None:
        """Of the idle periods that lasted `idle`, the share that ended within `window` more;
        None with too little evidence."""
        gaps = self.gaps.get(workspace, [])
        longer = len(gaps) - bisect_right(gaps, idle)
        returned = bisect_right(gaps, idle + window) - bisect_right(gaps, idle)
        # Prefixes idle for longer than idle + window still: they outlived the window.
        survivors = bisect_left(self.idle_since.get(workspace, []), now - idle - window)
        if longer + survivors < self.min_evidence:
            return None
        return returned / (longer + survivors)


def ping(body: dict[str, Any], pointer: str, ttl: TTL) -> dict[str, Any]:
    """The keep-alive request for the entry that ends at `pointer` in `body`: the prompt up to that
    block, marked there, `max_tokens: 0`, and a one-character user turn when the prompt would not
    end with one (what comes after the breakpoint is paid as input: keep it small)."""
    marked = with_marker(strip_markers(body), pointer, ttl)
    parts = pointer.strip("/").split("/")
    messages = list(marked.get("messages") or [])
    if parts[0] == "messages":
        m, b = int(parts[1]), int(parts[3])
        last = dict(messages[m])
        last["content"] = last["content"][: b + 1]
        messages = [*messages[:m], last]
    elif parts[0] == "tools":
        marked["tools"] = marked["tools"][: int(parts[1]) + 1]
        marked.pop("system", None)
        messages = []
    else:
        marked["system"] = marked["system"][: int(parts[1]) + 1]
        messages = []
    if not messages or messages[-1].get("role") != "user":
        messages.append({"role": "user", "content": "."})
    return {**marked, "messages": messages, "max_tokens": 0}
