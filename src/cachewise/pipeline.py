"""A call's way through cachewise, whichever face it comes in by (`wrap`, the proxy).

Before it is sent, a call is *prepared*: parsed, planned (breakpoints for a request that has
none, learned from the requests its workspace sent before), linted, and keyed for the warm gate.
After, it is *recorded*: explained, priced, checked against what was meant to go upstream, and put
in the ledger. Recording never raises: a call the API answered has happened, and its bookkeeping
must not change that (a row the ledger refuses waits in the spool).

    pipeline = Pipeline(recorder=Recorder(open_ledger()), source="proxy")
    call = pipeline.prepare(body, workspace=workspace)
    ...send call.body...
    pipeline.record(call, usage=usage, request_id=request_id)
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .body import copy_json, marker_holders, strip_markers, with_marker
from .catalog import catalog
from .engine import Breakpoint, breakpoints, first_cacheable
from .errors import InvalidRequest, UnknownModel
from .explain import Explainer
from .gate import Ticket
from .ledger import CallRecord, is_emulated
from .lint import Finding, lint
from .plan import HISTORY, Plan, plan
from .request import Prompt, parse_request
from .spool import Recorder
from .trace import Row

__all__ = ["Call", "GateKey", "OnlinePlanner", "Pipeline", "PlanOption", "markers_of"]

GateKey = tuple[str | None, str, str]  # workspace, model, prefix hash
PlanOption = Literal["auto", "off"]


@dataclass
class Call:
    """One call on its way: what is sent, what it was meant to be, and what happened to it."""

    body: dict[str, Any]  # the request as it goes upstream
    prompt: Prompt | None  # its parse; None when it does not parse (it is sent as it came)
    workspace: str | None = None
    findings: list[Finding] = field(default_factory=list)
    intended: list[dict[str, Any]] | None = None  # the breakpoints cachewise meant to send
    planned: bool = False  # whether cachewise changed the request's markers
    key: GateKey | None = None
    key_tokens: int = (
        0  # the prompt's tokens up to the gate key's breakpoint (a warm call reads them)
    )
    ttl_seconds: float = 300.0
    started: float = field(default_factory=time.time)
    first_byte: float | None = None
    ticket: Ticket | None = None


class OnlinePlanner:
    """The planner fed by the traffic it sees: each workspace's last `window` requests are the
    history it learns from (what repeats, how far apart). `simulate`'s `cachewise` strategy
    plans with the same window over a trace.

    Args:
        window: how many earlier requests of a workspace the planner reads.
        workspaces: how many workspaces it remembers (the least recently seen is forgotten).
    """

    def __init__(self, window: int = HISTORY, workspaces: int = 1024) -> None:
        self.window = window
        self.workspaces = workspaces
        self._seen: OrderedDict[str | None, deque[Row]] = OrderedDict()
        self._lock = threading.Lock()

    def history(self, workspace: str | None) -> list[Row]:
        with self._lock:
            return list(self._seen.get(workspace, ()))

    def plan(self, request: Mapping[str, Any] | Prompt, workspace: str | None, now: float) -> Plan:
        return plan(request, history=self.history(workspace), now=now)

    def observe(self, prompt: Prompt, workspace: str | None, started_at: float) -> None:
        """Add a request to its workspace's history (after it is planned: a request is never
        its own history)."""
        row = Row(dict(prompt.body), started_at=started_at, workspace=workspace, prompt=prompt)
        with self._lock:
            seen = self._seen.get(workspace)
            if seen is None:
                seen = self._seen[workspace] = deque(maxlen=self.window)
                while len(self._seen) > self.workspaces:
                    self._seen.popitem(last=False)
            else:
                self._seen.move_to_end(workspace)
            seen.append(row)


def markers_of(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (path, ttl) of every marker a body carries, read from the body alone: what a request
    as sent asks for, to compare with what was meant. The request-level marker's path is
    `/cache_control`. The holders are `marker_holders`', in its order; a path is made only for a
    marker, as this runs on every call."""
    found: list[tuple[str, str]] = []
    _marker_at(body, "/cache_control", found)
    for key in ("tools", "system"):
        blocks = body.get(key)
        for i, block in enumerate(blocks if isinstance(blocks, list) else []):
            _block_markers(block, f"/{key}/", i, found)
    messages = body.get("messages")
    for m, message in enumerate(messages if isinstance(messages, list) else []):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            where = f"/messages/{m}/content/"
            for b, block in enumerate(content):
                # Most blocks hold no marker and no inner blocks: skipped without a call.
                if isinstance(block, dict) and not (
                    "cache_control" in block or block.get("type") in _NESTING
                ):
                    continue
                _block_markers(block, where, b, found)
    return found


_NESTING = ("tool_result", "document")  # a tuple: a sent body's "type" may be unhashable


def _block_markers(block: Any, where: str, i: int, found: list[tuple[str, str]]) -> None:
    if not isinstance(block, dict):
        return
    if "cache_control" in block:
        _marker_at(block, f"{where}{i}", found)
    kind = block.get("type")
    if kind == "tool_result":
        inner, at = block.get("content"), "/content/"
    elif kind == "document" and isinstance(block.get("source"), dict):
        inner, at = block["source"].get("content"), "/source/content/"
    else:
        return
    for k, sub in enumerate(inner if isinstance(inner, list) else []):
        if isinstance(sub, dict) and "cache_control" in sub:
            _marker_at(sub, f"{where}{i}{at}{k}", found)


def _marker_at(holder: Mapping[str, Any], path: str, found: list[tuple[str, str]]) -> None:
    marker = holder.get("cache_control")
    if isinstance(marker, dict):
        ttl = marker.get("ttl", "5m")
        found.append((path, ttl if isinstance(ttl, str) else str(ttl)))


def _intended(bps: list[Breakpoint]) -> list[dict[str, Any]]:
    return [
        {"path": "/cache_control" if bp.automatic else bp.path, "ttl": bp.ttl, "tokens": bp.tokens}
        for bp in bps
    ]


def wire_state(intended: list[dict[str, Any]] | None, sent: list[tuple[str, str]]) -> str | None:
    """`ok` when what was sent asks for exactly the breakpoints meant, `lost` when a meant one
    is missing, `changed` when as many are there but a path or a TTL differs. `sent` is
    `markers_of` a body: a marker on an inner block of a tool result or document is its
    block's breakpoint (as the parser places it), and one beside its block's own wins."""
    if intended is None:
        return None
    meant = [(b["path"], b["ttl"]) for b in intended]
    sent = list(_as_breakpoints(sent).items())
    if sorted(meant) == sorted(sent):
        return "ok"
    sent_paths = {p for p, _ in sent}
    return "lost" if any(p not in sent_paths for p, _ in meant) else "changed"


_INNER = re.compile(r"(/messages/\d+/content/\d+)(?:/source)?/content/\d+")


def _as_breakpoints(markers: list[tuple[str, str]]) -> dict[str, str]:
    """Markers by the path of the breakpoint each makes: an inner block's is its block's. (One
    on an inner block that is not the last is refused by the API: it fails the call anyway.)"""
    out: dict[str, str] = {}
    for path, ttl in markers:
        inner = _INNER.fullmatch(path)
        if inner is None:
            out.setdefault(path, ttl)
        else:
            out[inner[1]] = ttl
    return out


def _wire(call: Call, sent: Mapping[str, Any] | bytes | None) -> str | None:
    """What went upstream against what was meant. Bytes made from `call.body` that hold as
    many markers as were meant are that body (a count, microseconds); otherwise they are read
    again to see which markers they carry."""
    if isinstance(sent, bytes):
        meant = len(call.intended or ())
        if sent.count(b'"cache_control"') == meant:
            sent = None
        else:
            try:
                sent = json.loads(sent)
            except ValueError:
                return "lost" if meant else "ok"
            if not isinstance(sent, dict):
                return "lost" if meant else "ok"
    return wire_state(call.intended, markers_of(sent if sent is not None else call.body))


@dataclass
class Pipeline:
    """Prepares and records calls for one face (`source`): see the module's docstring.

    Args:
        recorder: where rows go (None: nowhere).
        plan: "auto" plans requests without markers and upgrades a request-level automatic
            marker to a plan that keeps it; "off" sends markers as they come.
        lint: whether to lint each request (its findings are on the `Call`).
        source: the ledger's `source` column ("wrap", "run", "proxy").
        tags: labels stored with every row.
        store_prompts: also store each request body as sent.
    """

    recorder: Recorder | None = None
    plan: PlanOption = "auto"
    lint: bool = True
    source: str = "wrap"
    tags: Any = None
    store_prompts: bool = False
    planner: OnlinePlanner = field(default_factory=OnlinePlanner)
    explainer: Explainer = field(default_factory=Explainer)

    # -- before ------------------------------------------------------------------------------

    def prepare(
        self,
        body: Mapping[str, Any],
        *,
        workspace: str | None = None,
        prompt: Prompt | None = None,
        now: float | None = None,
    ) -> Call:
        """The call for a request body (`prompt`: its parse, when the caller has it). A body that
        does not parse is sent as it came: the API says what is wrong with it."""
        started = time.time() if now is None else now
        if prompt is None:
            try:
                prompt = parse_request(body)
            except (InvalidRequest, UnknownModel):
                return Call(dict(body), None, workspace, started=started)
        sent, planned = prompt, False
        if self.plan == "auto":
            sent, planned = self._planned(prompt, workspace, started)
            self.planner.observe(prompt, workspace, started)
        call = Call(
            dict(sent.body),
            sent,
            workspace,
            findings=lint(sent) if self.lint else [],
            intended=_intended(breakpoints(sent)),
            planned=planned,
            started=started,
        )
        first = first_cacheable(sent)
        if first is not None:
            at = sent.positions[first.position]
            call.key, call.key_tokens = (workspace, sent.model.id, at.prefix_hash), at.cumulative
            call.ttl_seconds = float(catalog().ttl_seconds[first.ttl])
        return call

    def _planned(self, prompt: Prompt, workspace: str | None, now: float) -> tuple[Prompt, bool]:
        marks = breakpoints(prompt)
        if any(not bp.automatic for bp in marks):
            return prompt, False  # the client placed its own: they are kept as they are
        request: Mapping[str, Any] | Prompt = prompt  # parsed already: not parsed again
        if marks:  # only the request-level marker: made explicit where it lands, then planned
            auto = marks[0]
            request = with_marker(strip_markers(dict(prompt.body)), auto.path, auto.ttl)
        result = self.planner.plan(request, workspace, now)
        if not result.breakpoints:
            return prompt, False
        planned = result.request
        if marks and marks[0].ttl == "1h":  # asked to live an hour: the plan's entries live as long
            planned = copy_json(dict(planned))
            for holder in marker_holders(planned):
                if isinstance(holder.get("cache_control"), dict):
                    holder["cache_control"] = {"type": "ephemeral", "ttl": "1h"}
        elif result.prompt is not None:
            return result.prompt, True  # the planner's own parse of what it planned
        return prompt.remarked(planned), True

    # -- after -------------------------------------------------------------------------------

    def record(
        self,
        call: Call,
        *,
        usage: Any = None,
        message_id: str | None = None,
        request_id: str | None = None,
        error: str | None = None,
        http_status: int | None = None,
        sent: Mapping[str, Any] | bytes | None = None,
    ) -> CallRecord | None:
        """Explain, price and keep one call; `error` is the error's type when it failed, `sent`
        what went upstream (the body's bytes, or the body handed to the SDK) when it may differ
        from `call.body`. Never raises: what cannot be recorded is a warning (see `Recorder`)."""
        rec = self.row(
            call,
            usage=usage,
            message_id=message_id,
            request_id=request_id,
            error=error,
            http_status=http_status,
            sent=sent,
        )
        if rec is not None and self.recorder is not None:
            self.recorder.record(rec, prompt=call.body if self.store_prompts else None)
        return rec

    def row(
        self,
        call: Call,
        *,
        usage: Any = None,
        message_id: str | None = None,
        request_id: str | None = None,
        error: str | None = None,
        http_status: int | None = None,
        sent: Mapping[str, Any] | bytes | None = None,
    ) -> CallRecord | None:
        """The call's ledger row, explained and priced, not yet written (`record` writes it; a
        server writes many at once). Never raises: None, with a warning, when it cannot."""
        try:
            return self._row(call, usage, message_id, request_id, error, http_status, sent)
        except Exception as exc:  # bookkeeping must never fail the call
            import warnings

            from .errors import CachewiseWarning

            warnings.warn(
                f"cachewise could not record a call ({type(exc).__name__}: {exc}); the call "
                "itself is unaffected",
                CachewiseWarning,
                stacklevel=4,
            )
            return None

    def _row(
        self,
        call: Call,
        usage: Any,
        message_id: str | None,
        request_id: str | None,
        error: str | None,
        http_status: int | None,
        sent: Mapping[str, Any] | bytes | None,
    ) -> CallRecord:
        prompt = call.prompt
        rec = CallRecord(
            started_at=call.started,
            first_byte_at=call.first_byte,
            ended_at=time.time(),
            workspace=call.workspace,
            model=prompt.model.id if prompt else str(call.body.get("model")),
            source=self.source,
            tags=self.tags,
            request_id=request_id,
            http_status=http_status,
        )
        if usage is not None:
            rec.set_usage(usage)
        if error is not None:
            rec.status, rec.error_type = "error", error
        if call.ticket is not None:
            # A wait only where there was one: a scout's or a warm call's 0 is not a wait.
            waited = call.ticket.waited
            rec.gate_role, rec.gate_wait_s = call.ticket.role, waited if waited > 0 else None
        rec.emulated = is_emulated(message_id) or is_emulated(request_id)
        if prompt is None:
            return rec
        bps = breakpoints(prompt)
        rec.prefix_hashes = [prompt.positions[bp.position].prefix_hash for bp in bps]
        rec.prefix_hash = rec.prefix_hashes[-1] if rec.prefix_hashes else None
        rec.breakpoints = _intended(bps)
        rec.intended_breakpoints = call.intended
        rec.wire = _wire(call, sent)
        if rec.status == "ok":
            self._explain(call, prompt, rec)
        return rec

    def _explain(self, call: Call, prompt: Prompt, rec: CallRecord) -> None:
        ready = call.first_byte or rec.ended_at or call.started
        workspace = call.workspace or "default"
        read = rec.usage.cache_read_input_tokens
        if read > 0:
            # A hit, whatever the engine says: it follows the call, and nothing is diagnosed.
            # The prefix read: the engine's, if the API read as much; else the one whose count
            # the read equals.
            rec.cause = "hit"
            account = self.explainer.follow(prompt, start=call.started, ready=ready,
                                            workspace=workspace)  # fmt: skip
            at = account.read_position if account is not None else None
            if at is None or prompt.positions[at].cumulative != read:
                at = next((p.index for p in prompt.positions if p.cumulative == read), at)
            rec.read_hash = prompt.positions[at].prefix_hash if at is not None else None
            return
        explanation = self.explainer.observe(
            prompt, start=call.started, ready=ready, workspace=workspace
        )
        rec.cause = "likely_server_side" if explanation.cause == "hit" else explanation.cause
