"""Replay recorded real API calls through the cache engine and score the agreement.

A *recording* is one call transcribed from someone else's test cassette: where it came from, the
request body and the usage the API answered. The bodies belong to their authors, so what is kept
in a repository is their *facts*: each body as a skeleton (every free text replaced by a digest of
itself, so that equal texts stay equal and structure, roles, markers and parameters stay as they
were) and the token count of every text the parser counted, keyed by a digest of the skeleton's
text in its place. Replaying the facts runs the same parser (counting through those facts instead
of ctok) and the same engine, with the catalog's framing as it is now: a change of framing data
is scored again without the bodies; a change in what the parser counts needs them.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .catalog import get_model
from .engine import Engine
from .errors import InputError, InvalidRequest
from .request import parse_request
from .tokens import CtokTokenizer, Slot, Tokenizer

__all__ = ["FactsTokenizer", "Outcome", "extract_facts", "features", "replay", "skeleton"]

# Values that are structure, not text: kept as they are in a skeleton.
_KEPT_KEYS = frozenset({"type", "role", "model", "ttl", "media_type", "effort", "speed"})
FEATURES = ("text", "tools", "tool_choice", "tool rounds", "documents", "images", "thinking")


def _digest(text: str) -> str:
    return "t" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def skeleton(value: Any, key: str | None = None) -> Any:
    """`value` with every free text replaced by a digest of it (equal texts, equal digests).

    Empty and whitespace-only strings stay (the API treats them apart), and so do the values of
    structural keys (`type`, `role`, ...), object keys, numbers and booleans. Redacted thinking
    keeps its length, which is what it is counted by.
    """
    if isinstance(value, dict):
        return {
            k: v if k in _KEPT_KEYS and isinstance(v, str) else skeleton(v, k)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [skeleton(v, key) for v in value]
    if isinstance(value, str):
        if not value.strip():
            return value
        if key == "data":
            return "x" * len(value)
        return _digest(value)
    return value


def _key(version: str, slot: str, text: str) -> str:
    return hashlib.sha256(f"{version}/{slot}:{text}".encode("utf-8", "surrogatepass")).hexdigest()[
        :24
    ]


class _Recorder:
    """A tokenizer that notes every question, and answers with `inner` (or 0)."""

    def __init__(self, inner: Tokenizer | None) -> None:
        self.inner = inner
        self.asked: list[tuple[str, str, str, int]] = []

    def count(self, text: str, version: str, slot: Slot = "user") -> int:
        n = self.inner.count(text, version, slot) if self.inner is not None else 0
        self.asked.append((version, slot, text, n))
        return n


class FactsTokenizer:
    """Counts from recorded facts: the count of the real text whose skeleton is `text`."""

    def __init__(self, counts: Mapping[str, int]) -> None:
        self.counts = counts

    def count(self, text: str, version: str, slot: Slot = "user") -> int:
        if not text:
            return 0
        try:
            return self.counts[_key(version, slot, text)]
        except KeyError:
            raise InputError(
                "fidelity facts: no count for a text the parser now counts differently; "
                "regenerate the facts from the recordings' bodies"
            ) from None


def _body(rec: Mapping[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in rec["request"].items() if k != "stream"}
    body.setdefault("model", rec["model"])  # Bedrock puts the model in the URL
    if rec["endpoint"] == "count_tokens":
        body.pop("max_tokens", None)
    else:
        body.setdefault("max_tokens", 1024)
    return body


def extract_facts(recordings: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The facts of `recordings` (with bodies): skeletons, and the count of every text counted."""
    counts: dict[str, int] = {}
    kept = []
    ctok = CtokTokenizer()
    for n, rec in enumerate(recordings):
        body = _body(rec)
        real, skel = _Recorder(ctok), _Recorder(None)
        shape = skeleton(body)
        parse_request(body, tokenizer=real)
        parse_request(shape, tokenizer=skel)
        if len(real.asked) != len(skel.asked):
            raise InputError(f"recording {n}: its skeleton parses differently from its body")
        for (version, slot, _, count), (_, _, text, _) in zip(real.asked, skel.asked, strict=True):
            if not text:
                continue
            key = _key(version, slot, text)
            if counts.setdefault(key, count) != count:
                raise InputError(f"recording {n}: two texts share a skeleton ({key})")
        kept.append({**{k: v for k, v in rec.items() if k != "request"}, "request": shape})
    return {"recordings": kept, "counts": dict(sorted(counts.items()))}


def features(request: Mapping[str, Any]) -> list[str]:
    """What a request exercises, in the report's terms."""
    found: set[str] = set()
    if request.get("tools"):
        found.add("tools")
    choice = request.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool", "none"):
        found.add("tool_choice")
    if request.get("thinking"):
        found.add("thinking")
    for m in request.get("messages", []):
        content = m.get("content")
        for b in content if isinstance(content, list) else []:
            kind = b.get("type") if isinstance(b, dict) else None
            found |= {"tool rounds"} if kind in ("tool_use", "tool_result") else set()
            found |= {"images"} if kind == "image" else set()
            found |= {"documents"} if kind == "document" else set()
            found |= {"thinking"} if kind in ("thinking", "redacted_thinking") else set()
    return [f for f in FEATURES if f in found] or ["text"]


@dataclass(frozen=True)
class Outcome:
    """One replayed call: the recorded and emulated (read, write, input), or a total only."""

    source: Mapping[str, Any]
    model: str
    family: str
    features: tuple[str, ...]
    recorded: tuple[int, ...]
    ours: tuple[int, ...]
    warm: bool = False
    error: str | None = None
    step_ok: bool | None = None  # the change from the previous call of its file agrees

    @property
    def exact(self) -> bool:
        if self.error:
            return False
        if self.warm:  # an earlier run of the recorder had warmed the cache: compare the sums
            r, o = self.recorded, self.ours
            return (r[0] + r[1], r[2]) == (o[0] + o[1], o[2])
        return self.recorded == self.ours

    @property
    def pattern_ok(self) -> bool:
        """Reads where the recording read and writes where it wrote."""
        if self.error or len(self.recorded) == 1:
            return not self.error
        (rr, rw, _), (orr, ow, _) = self.recorded, self.ours
        if self.warm:
            return (rr + rw > 0) == (orr + ow > 0)
        return (rr > 0, rw > 0) == (orr > 0, ow > 0)

    @property
    def relational(self) -> bool:
        """The pattern agrees and, after a file's first call, so does the change in the total."""
        return self.pattern_ok and self.step_ok is not False

    @property
    def delta(self) -> int:
        return sum(self.ours) - sum(self.recorded)


def _split(usage: Mapping[str, Any]) -> tuple[int, int, int]:
    return (
        int(usage.get("cache_read_input_tokens") or 0),
        int(usage.get("cache_creation_input_tokens") or 0),
        int(usage.get("input_tokens") or 0),
    )


def replay(data: Mapping[str, Any]) -> list[Outcome]:
    """Replay recordings (`{"recordings": [...]}` with bodies, or facts with `counts` too).

    Calls of one cassette file replay in order, one second apart, in a workspace of their own.
    A recorded first call that already reads was warmed by an earlier run of the recorder; for
    those the comparison is of what is cached (read + write), not which.
    """
    counts = data.get("counts")
    tokenizer: Tokenizer | None = FactsTokenizer(counts) if counts is not None else None
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for rec in data["recordings"]:
        s = rec["source"]
        groups[(s["repo"], s["path"], rec["model"])].append(rec)
    engine, now, out = Engine(), 0.0, []
    for n, calls in enumerate(groups.values()):
        calls = sorted(calls, key=lambda r: r["source"]["interaction_index"])
        first = next((i for i, r in enumerate(calls) if r["endpoint"] == "messages"), 0)
        previous: Outcome | None = None
        for i, rec in enumerate(calls):
            now += 1
            outcome = _one(engine, rec, tokenizer, f"fidelity-{n}", now, i == first)
            if previous is not None and not (outcome.error or previous.error):
                steps = sum(outcome.recorded) - sum(previous.recorded)
                outcome = _with_step(outcome, steps == sum(outcome.ours) - sum(previous.ours))
            out.append(outcome)
            previous = outcome
    return out


def _with_step(o: Outcome, ok: bool) -> Outcome:
    return Outcome(o.source, o.model, o.family, o.features, o.recorded, o.ours, o.warm, o.error, ok)


def _one(
    engine: Engine,
    rec: Mapping[str, Any],
    tokenizer: Tokenizer | None,
    workspace: str,
    now: float,
    first: bool,
) -> Outcome:
    body = _body(rec)
    family = get_model(rec["model"]).framing.name
    feats = tuple(features(rec["request"]))
    usage = rec["usage"]
    try:
        prompt = parse_request(body, tokenizer=tokenizer)
        if rec["endpoint"] == "count_tokens":
            total = (int(usage["input_tokens"]),)
            return Outcome(
                rec["source"], rec["model"], family, feats, total, (prompt.total_tokens,)
            )
        got = engine.account(prompt, now=now, workspace=workspace).usage
    except InvalidRequest as exc:
        return Outcome(
            rec["source"], rec["model"], family, feats, _split(usage), (), error=str(exc)
        )
    recorded = _split(usage)
    ours = (got.cache_read_input_tokens, got.cache_creation_input_tokens, got.input_tokens)
    return Outcome(
        rec["source"], rec["model"], family, feats, recorded, ours, first and recorded[0] > 0
    )
