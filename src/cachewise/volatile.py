"""Volatile content: text that is likely different on every request, and so poisons the cache
prefix it sits in (timestamps, dates, UUIDs, request and session ids, random tokens, counters).

These are heuristics about content, not caching rules: a finding is a warning with the exact
place, and a trace with several requests settles the question by showing whether the block
actually changed. A hex token counts only when it holds a digit: sixteen letters from a to f and
no digit is a word, not random hex (which has one with odds of ten million to one).

Cost: each pattern group runs only when what it needs is in the text (a digit; one of its
keywords, found by substring search), the patterns that start with a digit or a hex character
let the regex engine skip every other character, and a text's answer is remembered, so the same
system prompt sent on every call is scanned once.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass

__all__ = ["Volatile", "find_volatile"]


@dataclass(frozen=True)
class Volatile:
    """A span of text that looks like it changes per request."""

    kind: str
    text: str
    start: int


# Patterns that begin with a digit: the regex engine skips to digits. Alternatives in priority
# order (at one position, the first that matches names the kind). A lookbehind after the first
# character keeps the word boundary without giving up that skip.
_DIGITS = re.compile(
    r"\d(?<![\w]\d)(?:"
    r"(?P<timestamp>\d{3}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?\b)"
    r"|(?P<time>(?::|(?<=[01])\d:|(?<=2)[0-3]:)[0-5]\d:[0-5]\d\b)"
    r"|(?P<date>\d{3}-\d{2}-\d{2}\b|\d?/\d{1,2}/\d{4}\b)"
    r"|(?P<unix>(?<=1)[5-9]\d{8}(?:\d{3})?\b)"
    r")"
)
_HEX = re.compile(
    r"[0-9a-fA-F](?<!\w[0-9a-fA-F])(?:"
    r"(?P<uuid>[0-9a-fA-F]{7}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)"
    r"|(?P<hex>[0-9a-fA-F]{15,}\b)"
    r")"
)
# Patterns that begin with a word: tried only where one of their words occurs.
_WORDY: tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...] = (
    (
        "date",
        ("today is", "current date", "the date is", "now is"),
        re.compile(r"(?:today is|current date|the date is|now is)\b[^\n]{0,40}", re.I),
    ),
    (
        "request or session id",
        ("req", "sess", "trace", "run", "conv"),
        re.compile(
            r"(?:req|request|sess|session|trace|run|conv|conversation)[_-]?(?:id)?"
            r"[=:_ -]+[A-Za-z0-9_-]{6,}",
            re.I,
        ),
    ),
    (
        "counter",
        ("turn", "attempt", "iteration", "request", "call", "retry"),
        re.compile(
            r"(?:turn|attempt|iteration|request|call|retry)\s*(?:#|no\.?|number)?\s*\d+\b", re.I
        ),
    ),
)
_KINDS = {
    "timestamp": "timestamp",
    "time": "time of day",
    "date": "date",
    "unix": "unix timestamp",
    "uuid": "uuid",
    "hex": "hex token",
}
_PRIORITY = ("timestamp", "time of day", "date", "uuid", "request or session id")
_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{24,}")

_MEMO: OrderedDict[str, Volatile | None] = OrderedDict()
_MEMO_CHARS = 16_000_000  # the texts it keeps alive, at most
_memo_lock = threading.Lock()
_memo_size = 0


def find_volatile(text: str) -> Volatile | None:
    """The first volatile-looking span in `text`, or None (remembered per distinct text)."""
    global _memo_size
    found = _MEMO.get(text, _MEMO)  # a dict read is atomic: no lock on the hot path
    if found is not _MEMO:
        return found  # type: ignore[return-value]
    result = _scan(text)
    with _memo_lock:
        if text not in _MEMO and len(text) < _MEMO_CHARS:
            _MEMO[text] = result
            _memo_size += len(text)
            while _memo_size > _MEMO_CHARS:
                old, _ = _MEMO.popitem(last=False)
                _memo_size -= len(old)
    return result


def _scan(text: str) -> Volatile | None:
    candidates: list[Volatile] = []
    digits = any(d in text for d in "0123456789")
    if digits:
        for pattern in (_DIGITS, _HEX):
            m = pattern.search(text)
            if m is not None and m.lastgroup is not None:
                candidates.append(Volatile(_KINDS[m.lastgroup], m.group(0)[:60], m.start()))
    low = text.lower()
    for kind, words, pattern in _WORDY:
        start = min((i for w in words if (i := low.find(w)) >= 0), default=-1)
        while start >= 0:
            if start == 0 or not (low[start - 1].isalnum() or low[start - 1] == "_"):
                m = pattern.match(text, start)
                if m is not None:
                    candidates.append(Volatile(kind, m.group(0)[:60], m.start()))
                    break
            start = min((i for w in words if (i := low.find(w, start + 1)) >= 0), default=-1)
    if candidates:
        return min(candidates, key=lambda v: (v.start, _rank(v.kind)))
    if not digits and low == text:
        return None
    for word in text.split():
        if len(word) >= 24:
            for token in _TOKEN.finditer(word):
                if _high_entropy(token.group(0)):
                    return Volatile(
                        "high-entropy token", token.group(0)[:60], text.find(token.group(0))
                    )
    return None


def _rank(kind: str) -> int:
    return _PRIORITY.index(kind) if kind in _PRIORITY else len(_PRIORITY)


def _high_entropy(token: str) -> bool:
    """A random-looking token: mixed character classes and close to uniform characters."""
    classes = sum(
        (
            any(c.isdigit() for c in token),
            any(c.islower() for c in token),
            any(c.isupper() for c in token),
        )
    )
    if classes < 2 or token.isalpha():
        return False
    counts = Counter(token)
    entropy = -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())
    return entropy > 4.0
