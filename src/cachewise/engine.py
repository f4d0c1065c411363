"""The cache engine: the documented caching rules, pure and clock-injected.

This is the one place the rules live (anthropic-caching.md sections 1-7). The emulator is this
engine behind HTTP, the simulator is this engine over a trace, and the linter and explainer ask it
what would happen. It does no I/O and reads no clock: every call says what time it is.

The rules, as implemented:
- Breakpoints are the explicit markers plus the automatic one; at most 4; a 1h breakpoint may not
  follow a 5m one in tools -> system -> messages order (a bare marker is 5m).
- A read walks back from each breakpoint, last breakpoint first, at most `lookback` positions
  (the breakpoint itself is the first), looking for entries that earlier requests wrote. The first
  entry found is the read (A tokens).
- Each breakpoint whose cumulative prefix reaches the model's minimum writes (or refreshes) exactly
  one entry, at that breakpoint. Billing follows the A/B/C rule: read A, 1h write B-A, 5m write C-B.
- An entry lives `ttl` from the start of the request that wrote or last read it, and becomes
  readable only when the writing response begins (`ready_at`, or `begin` for a caller that learns
  it later): concurrent cold requests each pay.
- Entries are isolated per workspace; the model is folded into every prefix hash.
- An expired entry is absent to every rule. It is kept `retain_expired` longer, so that a lookback
  can still say a miss was an expiry, and then forgotten: the table holds what the recent past
  wrote, not everything ever written.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .body import TTL, strip_markers
from .catalog import Model, catalog
from .errors import InvalidRequest, UnknownModel
from .request import Position, Prompt, parse_request
from .usage import Usage

__all__ = [
    "Account",
    "Breakpoint",
    "BreakpointAccount",
    "Engine",
    "Entry",
    "alive",
    "billed_output",
    "breakpoints",
    "minimum_for",
    "unmarked",
    "validate",
]

LOOKBACK = 20
MAX_BREAKPOINTS = 4
RETAIN_EXPIRED = 3600.0  # one longest TTL

TTL_ORDER_TEXT = (
    "{path}.cache_control.ttl: a ttl='1h' cache_control block must not come after a ttl='5m' "
    "cache_control block. Note that blocks are processed in the following order: "
    "`tools`, `system`, `messages`."
)


@dataclass(frozen=True)
class Breakpoint:
    """A position where the request asks for a cache entry."""

    position: int
    ttl: TTL
    tokens: int
    path: str
    automatic: bool = False


def alive(expires_at: float, now: float, grace: float = 0.0) -> bool:
    """Whether an entry expiring at `expires_at` can still be read at `now`: the one test of
    expiry (the oracle counts keep-alive reads with it too)."""
    return now < expires_at + grace


@dataclass
class Entry:
    """One cache entry: the prefix up to a breakpoint, in one workspace."""

    workspace: str
    model: str
    prefix_hash: str
    position: int
    tokens: int
    ttl: TTL
    written_at: float
    readable_at: float
    expires_at: float
    reads: int = 0
    writes: int = 1

    def alive(self, now: float, grace: float = 0.0) -> bool:
        return alive(self.expires_at, now, grace)

    def readable(self, now: float, grace: float = 0.0) -> bool:
        return self.readable_at <= now and self.alive(now, grace)

    def to_json(self, now: float, grace: float) -> dict[str, Any]:
        """The entry as the emulator lists it at `now`: the one shape of `GET /_emulator/cache`
        and `Emulator.cache()`."""
        return {
            "workspace": self.workspace,
            "model": self.model,
            "position": self.position,
            "tokens": self.tokens,
            "ttl": self.ttl,
            "expires_at": self.expires_at,
            "readable": self.readable(now, grace),
            "readable_at": None if self.readable_at == math.inf else self.readable_at,
            "reads": self.reads,
            "writes": self.writes,
            "prefix_hash": self.prefix_hash,
        }


Outcome = Literal["hit", "wrote", "refreshed", "below_minimum"]
# Why an entry the lookback passed was not read: still being written, past its TTL, drawn by the
# eviction knob, or further back than the lookback reaches.
EntryState = Literal["pending", "expired", "evicted", "beyond"]


@dataclass(frozen=True)
class BreakpointAccount:
    """What one breakpoint did: where its lookback found an entry, what it wrote, and why.

    `unread` holds every entry of this prefix the lookback passed without reading, by position,
    with the reason (`EntryState`); `pending_at`, `expired_at` and `beyond_at` are the first of
    each kind."""

    breakpoint: Breakpoint
    outcome: Outcome
    found_at: int | None = None
    pending_at: int | None = None
    expired_at: int | None = None
    beyond_at: int | None = None
    why: str = ""
    unread: Mapping[int, EntryState] = field(default_factory=dict)


@dataclass(frozen=True)
class Account:
    """What one request cost the cache: the API's usage, and the reasons behind it."""

    usage: Usage
    read_position: int | None
    breakpoints: tuple[BreakpointAccount, ...]
    minimum: int
    minimum_assumed: bool = False
    evicted: bool = False
    notes: tuple[str, ...] = ()
    # The entries this request wrote, or joined while they were pending: `Engine.begin` makes
    # them readable when its response begins.
    pending: tuple[tuple[str, str, str], ...] = ()


def violations(prompt: Prompt, *, max_breakpoints: int = MAX_BREAKPOINTS) -> list[InvalidRequest]:
    """Every reason the API would reject this request's cache markers, in the API's words."""
    found: list[InvalidRequest] = []
    for p in prompt.problems:
        if p.kind == "thinking":
            text = f"{p.api_path}.cache_control: Extra inputs are not permitted"
        elif p.kind == "empty_text":
            text = "cache_control cannot be set for empty text blocks"
        elif p.kind == "inner_content":
            text = (
                f"{p.api_path}: cache_control may only be set on the last block of this content; "
                "set it on the parent block instead"
            )
        elif p.kind == "deferred":
            text = f"{p.api_path}: cache_control cannot be set on a tool with defer_loading"
        elif p.kind == "bad_type":
            text = f"{p.api_path}: Input should be 'ephemeral'"
        else:
            text = f"{p.api_path}: Input should be '5m' or '1h'"
        found.append(InvalidRequest(text, path=p.path, rule="marker_placement"))
    found.extend(
        InvalidRequest(
            "text content blocks must contain non-whitespace text",
            path=path,
            rule="marker_placement",
        )
        for path in prompt.whitespace_text
    )
    explicit = prompt.markers
    if len(explicit) > max_breakpoints:
        found.append(
            InvalidRequest(
                f"A maximum of {max_breakpoints} blocks with cache_control may be provided. "
                f"Found {len(explicit)}.",
                path=explicit[max_breakpoints].path + "/cache_control",
                rule="max_breakpoints",
            )
        )
    auto = prompt.automatic
    if auto is not None:
        target = _automatic_target(prompt)
        if target is not None and target.marker is not None and target.marker.ttl != auto.ttl:
            found.append(
                InvalidRequest(
                    f"cache_control: automatic caching with ttl='{auto.ttl}' conflicts with the "
                    f"explicit ttl='{target.marker.ttl}' cache_control on the last block "
                    f"({target.marker.api_path})",
                    path="/cache_control",
                    rule="automatic",
                )
            )
        elif (target is None or target.marker is None) and len(explicit) >= max_breakpoints:
            found.append(
                InvalidRequest(
                    f"cache_control: automatic caching needs a free breakpoint slot, but "
                    f"{len(explicit)} blocks already have cache_control "
                    f"(at most {max_breakpoints})",
                    path="/cache_control",
                    rule="automatic",
                )
            )
    seen_5m = False
    for bp in breakpoints(prompt):
        if bp.ttl == "5m":
            seen_5m = True
        elif seen_5m:
            where = "cache_control" if bp.automatic else _api_path(prompt, bp)
            text = TTL_ORDER_TEXT.format(path=where).replace(
                "cache_control.cache_control", "cache_control"
            )
            ttl_path = "/cache_control/ttl" if bp.automatic else bp.path + "/cache_control/ttl"
            found.append(InvalidRequest(text, path=ttl_path, rule="ttl_order"))
            break
    for conflict in prompt.prewarm_conflicts:
        found.append(
            InvalidRequest(
                f"max_tokens: 0 (cache pre-warming) cannot be used with {conflict}",
                path="/max_tokens",
                rule="prewarm",
            )
        )
    return found


def billed_output(prompt: Prompt, output_tokens: int) -> int:
    """A pre-warm (`max_tokens: 0`) generates nothing, whatever a recorded usage says."""
    return 0 if prompt.prewarm else output_tokens


def unmarked(body: Mapping[str, Any]) -> Prompt | None:
    """The request without any cache marker, or None when the API would reject it whatever its
    markers (a malformed body, an unknown model, whitespace-only text, a pre-warm that streams):
    such a request is billed nothing."""
    try:
        prompt = parse_request(strip_markers(body))
    except (InvalidRequest, UnknownModel):
        return None
    return None if violations(prompt) else prompt


def minimum_for(model: Model) -> tuple[int, bool]:
    """The model's minimum cacheable prefix, and whether it is the catalog's assumption."""
    if model.min_cacheable_tokens is None:
        return catalog().default_min_cacheable_tokens, True
    return model.min_cacheable_tokens, False


def first_cacheable(prompt: Prompt) -> Breakpoint | None:
    """The first breakpoint whose prefix reaches the model's minimum: the most widely shared
    prefix this request can write or read (what the warm gate and the runner group by)."""
    minimum, _ = minimum_for(prompt.model)
    return next((bp for bp in breakpoints(prompt) if bp.tokens >= minimum), None)


def validate(prompt: Prompt) -> None:
    """Raise the API's 400 for the first problem `violations` finds."""
    if prompt.derived("valid", lambda: not violations(prompt)):
        return  # the hot path: a server meets the same valid prompt call after call
    raise violations(prompt)[0]  # a new exception per raise: a raised one keeps its traceback


def breakpoints(prompt: Prompt) -> list[Breakpoint]:
    """The request's breakpoints in cache order: explicit markers, then the automatic one."""
    return list(prompt.derived("breakpoints", lambda: tuple(_breakpoints(prompt))))


def _breakpoints(prompt: Prompt) -> list[Breakpoint]:
    found = [
        Breakpoint(p.index, p.marker.ttl, p.cumulative, p.path)
        for p in prompt.positions
        if p.marker is not None
    ]
    if prompt.automatic is not None:
        target = _automatic_target(prompt)
        if target is not None and target.marker is None:
            found.append(
                Breakpoint(
                    target.index,
                    prompt.automatic.ttl,
                    target.cumulative,
                    target.path,
                    automatic=True,
                )
            )
    return found


def _automatic_target(prompt: Prompt) -> Position | None:
    # "the system silently walks backwards to find the nearest eligible block"
    for p in reversed(prompt.positions):
        if p.eligible:
            return p
    return None


def _api_path(prompt: Prompt, bp: Breakpoint) -> str:
    marker = prompt.positions[bp.position].marker
    return marker.api_path if marker else "cache_control"


@dataclass
class Engine:
    """The cache of one emulated API, across workspaces and models.

    Args:
        lookback: positions each breakpoint checks, itself included (documented: 20).
        legacy_lookback: the pre-2026-03 reading, in which a write leaves an entry at every
            position of the prefix, so reads hit unmarked earlier blocks. Off by default.
        ttl_in_key: treat 5m and 1h entries of one prefix as different entries (observed once,
            not documented). Off by default.
        eviction_rate: probability that a readable entry is missing anyway, for what-if studies of
            server-side misses. Deterministic given `seed`.
        expiry_grace: seconds an entry outlives its TTL ("promptly, though not immediately").
        retain_expired: seconds an expired entry is kept after its TTL and grace, absent to every
            rule but named `expired` by a lookback that passes it; then it is forgotten.
            `math.inf` keeps every entry (a replay of a finite trace). Callers' clocks may step
            back (concurrent requests), but by less than this.
    """

    lookback: int = LOOKBACK
    legacy_lookback: bool = False
    ttl_in_key: bool = False
    eviction_rate: float = 0.0
    expiry_grace: float = 0.0
    seed: int | None = None
    retain_expired: float = RETAIN_EXPIRED
    entries: dict[tuple[str, str, str], Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._ttl_seconds = catalog().ttl_seconds
        # When each entry may be forgotten, soonest first. A read or refresh moves an entry's
        # time later without touching the queue: it is queued again when its old time comes.
        self._forget_queue: list[tuple[float, int, tuple[str, str, str], Entry]] = []
        self._queued = itertools.count()

    def reset(self) -> None:
        """Empty the cache."""
        self.entries.clear()
        self._forget_queue.clear()
        self._rng = random.Random(self.seed)

    def snapshot(self, now: float) -> list[Entry]:
        """The entries alive at `now` (readable or still pending), oldest first."""
        return [e for e in self.entries.values() if e.alive(now, self.expiry_grace)]

    def account(
        self,
        prompt: Prompt,
        *,
        now: float,
        workspace: str = "default",
        ready_at: float | None = None,
        output_tokens: int = 0,
        commit: bool = True,
    ) -> Account:
        """Account one request that starts at `now`, and update the cache unless `commit` is False.

        Args:
            prompt: the parsed request.
            now: when the request starts, in seconds on the caller's clock.
            workspace: the cache's isolation unit.
            ready_at: when the response begins (its entries become readable); default `now`.
                `math.inf` leaves them pending until `begin` says when it began.
            output_tokens: copied into the usage.
            commit: False asks what would happen without changing anything (no eviction draws).

        Raises:
            InvalidRequest: the API would reject the request.
        """
        validate(prompt)
        model = prompt.model
        minimum, assumed = minimum_for(model)
        bps = breakpoints(prompt)
        ready = now if ready_at is None else max(now, ready_at)

        looks = [self._look(prompt, workspace, bp, now, commit) for bp in bps]
        read_at: int | None = None
        read_key: tuple[str, str, str] | None = None
        evicted = False
        for look in reversed(looks):
            evicted = evicted or look.evicted
            if look.found is not None:
                read_at, read_key = look.found, look.key
                break
        # Read up to a; written up to b for an hour and up to c in all (a <= b <= c): a later
        # breakpoint's prefix holds an earlier one's, so the furthest of each kind decides.
        a = b = c = prompt.positions[read_at].cumulative if read_at is not None else 0
        cacheable = []
        for bp in bps:
            if bp.tokens >= minimum:
                cacheable.append(bp)
                c = max(c, bp.tokens)
                if bp.ttl == "1h" and (read_at is None or bp.position > read_at):
                    b = max(b, bp.tokens)

        accounts = []
        for bp, look in zip(bps, looks, strict=True):
            if bp.tokens < minimum:
                outcome: Outcome = "below_minimum"
                why = f"prefix of {bp.tokens} tokens is below the minimum of {minimum}"
            elif read_at is not None and bp.position <= read_at:
                outcome = "hit" if bp.position == read_at else "refreshed"
                why = "read from cache" if outcome == "hit" else "covered by a later read"
            else:
                outcome = "wrote"
                why = look.why or "no entry in the lookback window"
            accounts.append(
                BreakpointAccount(
                    bp,
                    outcome,
                    look.found,
                    look.pending,
                    look.expired,
                    look.beyond,
                    why,
                    look.unread,
                )
            )

        pending: list[tuple[str, str, str]] = []
        if commit:
            pending = self._apply(
                prompt, workspace, cacheable, read_at, read_key, now, ready, minimum
            )
            self._forget(now)
        notes = []
        if assumed:
            notes.append(f"{model.id}: minimum cacheable tokens unknown; assumed {minimum}")
        return Account(
            usage=Usage(
                input_tokens=prompt.total_tokens - c,
                cache_read_input_tokens=a,
                ephemeral_5m_input_tokens=c - b,
                ephemeral_1h_input_tokens=b - a,
                output_tokens=billed_output(prompt, output_tokens),
            ),
            read_position=read_at,
            breakpoints=tuple(accounts),
            minimum=minimum,
            minimum_assumed=assumed,
            evicted=evicted,
            notes=tuple(notes),
            pending=tuple(pending),
        )

    def begin(self, account: Account, at: float) -> None:
        """The response of an accounted request begins at `at`: the entries it wrote are readable
        from then on, or from earlier if another writer of the same prefix began first."""
        for key in account.pending:
            entry = self.entries.get(key)
            if entry is not None:
                entry.readable_at = min(entry.readable_at, at)

    # -- internals -------------------------------------------------------------------------------

    def _kept(self, entry: Entry, now: float) -> bool:
        """Whether the entry still exists at `now`: alive, or expired less than
        `retain_expired` ago."""
        return entry.alive(now, self.expiry_grace + self.retain_expired)

    def _queue(self, key: tuple[str, str, str], entry: Entry) -> None:
        due = entry.expires_at + self.expiry_grace + self.retain_expired
        if due < math.inf:
            heapq.heappush(self._forget_queue, (due, next(self._queued), key, entry))

    def _forget(self, now: float) -> None:
        """Drop the entries whose time has come, soonest first. An entry comes up once, or once
        more per `retain_expired` it lives on after reads, so a request pays for about as many
        entries as it writes, never for a scan of the table."""
        queue = self._forget_queue
        while queue and queue[0][0] <= now:
            _, _, key, entry = heapq.heappop(queue)
            if self.entries.get(key) is not entry:
                continue  # evicted or replaced since it was queued
            if self._kept(entry, now):
                self._queue(key, entry)  # read or refreshed since
            else:
                del self.entries[key]

    def _key(self, workspace: str, prefix_hash: str, ttl: TTL) -> tuple[str, str, str]:
        return (workspace, prefix_hash, ttl if self.ttl_in_key else "*")

    def _look(
        self, prompt: Prompt, workspace: str, bp: Breakpoint, now: float, commit: bool
    ) -> _Look:
        look = _Look()
        lowest = max(0, bp.position - self.lookback + 1)
        for index in range(bp.position, lowest - 1, -1):
            key = self._key(workspace, prompt.positions[index].prefix_hash, bp.ttl)
            entry = self.entries.get(key)
            if entry is None or not self._kept(entry, now):
                continue
            if not entry.alive(now, self.expiry_grace):
                look.unread[index] = "expired"
                if look.expired is None:
                    look.expired = index
                    look.why = f"the entry at position {index} had expired"
                continue
            if now < entry.readable_at:
                look.unread[index] = "pending"
                if look.pending is None:
                    look.pending = index
                    look.why = (
                        f"the entry at position {index} was still being written by a "
                        "request whose response had not begun"
                    )
                continue
            if commit and self.eviction_rate and self._rng.random() < self.eviction_rate:
                del self.entries[key]
                look.unread[index] = "evicted"
                look.evicted = True
                look.why = f"the entry at position {index} was evicted (eviction knob)"
                continue
            look.found, look.key = index, key
            return look
        # Not a rule: what lies just outside the window, so that a miss can say why.
        for index in range(lowest - 1, -1, -1):
            key = self._key(workspace, prompt.positions[index].prefix_hash, bp.ttl)
            entry = self.entries.get(key)
            if entry is None or not self._kept(entry, now):
                continue
            look.unread[index] = "beyond"
            if entry.readable(now, self.expiry_grace):
                look.beyond = index
                look.why = look.why or (
                    f"the entry at position {index} is "
                    f"{bp.position - index + 1} positions back, outside the "
                    f"{self.lookback}-position lookback window"
                )
                break
        return look

    def _apply(
        self,
        prompt: Prompt,
        workspace: str,
        cacheable: list[Breakpoint],
        read_at: int | None,
        read_key: tuple[str, str, str] | None,
        now: float,
        ready: float,
        minimum: int,
    ) -> list[tuple[str, str, str]]:
        """Read, refresh and write; the keys of the entries written (see `Account.pending`)."""
        hit = self.entries.get(read_key) if read_key else None
        if hit is not None:
            hit.reads += 1
            hit.expires_at = max(hit.expires_at, now + self._ttl_seconds[hit.ttl])
        written: Iterable[tuple[Position, TTL]] = (
            (prompt.positions[bp.position], bp.ttl) for bp in cacheable
        )
        if self.legacy_lookback and cacheable:
            last = cacheable[-1].position
            written = [
                (p, _ttl_at_or_after(cacheable, p.index))
                for p in prompt.positions[: last + 1]
                if p.cumulative >= minimum
            ]
        keys = []
        for position, ttl in written:
            inside_read = read_at is not None and position.index <= read_at
            key = self._write(prompt, workspace, position, ttl, now, ready, create=not inside_read)
            if key is not None:
                keys.append(key)
        return keys

    def _write(
        self,
        prompt: Prompt,
        workspace: str,
        position: Position,
        ttl: TTL,
        now: float,
        ready: float,
        *,
        create: bool = True,
    ) -> tuple[str, str, str] | None:
        """Write or refresh one entry; its key if this request wrote it (or joined a pending
        write of it), None if it only refreshed it or left it alone."""
        key = self._key(workspace, position.prefix_hash, ttl)
        expires = now + self._ttl_seconds[ttl]
        entry = self.entries.get(key)
        if entry is not None and not entry.alive(now, self.expiry_grace):
            entry = None  # expired: a write starts a new one
        if entry is not None and entry.readable(now, self.expiry_grace):
            # A refresh, not a write: it renews the entry's own TTL. A 1h marker on a live 5m
            # entry does not upgrade it for the price of a read (the one observation of an
            # upgrade shows a rewrite; `ttl_in_key` models that).
            entry.expires_at = max(entry.expires_at, now + self._ttl_seconds[entry.ttl])
            return None
        if not create:
            # A breakpoint inside the read: its tokens were billed as a read, so nothing was
            # written there. Creating an entry (say a 1h one under a 5m read) for the price of a
            # read is undocumented, and so is changing a pending one (its TTL, or when it turns
            # readable); we assume neither.
            return None
        if entry is not None:
            entry.writes += 1  # a concurrent write of a pending entry: both requests paid
            entry.readable_at = min(entry.readable_at, ready)
            entry.expires_at = max(entry.expires_at, expires)
            return key
        entry = self.entries[key] = Entry(
            workspace=workspace,
            model=prompt.model.id,
            prefix_hash=position.prefix_hash,
            position=position.index,
            tokens=position.cumulative,
            ttl=ttl,
            written_at=now,
            readable_at=ready,
            expires_at=expires,
        )
        self._queue(key, entry)
        return key


@dataclass
class _Look:
    found: int | None = None
    pending: int | None = None
    expired: int | None = None
    beyond: int | None = None
    evicted: bool = False
    why: str = ""
    key: tuple[str, str, str] | None = None
    unread: dict[int, EntryState] = field(default_factory=dict)


def _ttl_at_or_after(bps: list[Breakpoint], position: int) -> TTL:
    return next((bp.ttl for bp in bps if bp.position >= position), bps[-1].ttl)
