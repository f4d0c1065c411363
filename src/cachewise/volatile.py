"""Volatile content: text that is likely different on every request, and so poisons the cache
prefix it sits in (timestamps, dates, UUIDs, request and session ids, random tokens, counters).

These are heuristics about content, not caching rules: a finding is a warning with the exact
place, and a trace with several requests settles the question by showing whether the block
actually changed.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

__all__ = ["Volatile", "find_volatile"]

_PATTERNS: list[tuple[str, str]] = [
    (
        "timestamp",
        r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?\b",
    ),
    ("time of day", r"\b(?:[01]?\d|2[0-3]):[0-5]\d:[0-5]\d\b"),
    ("date", r"\b(?:\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{4})\b"),
    ("date", r"\b(?:today is|current date|the date is|now is)\b[^\n]{0,40}"),
    ("uuid", r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
    (
        "request or session id",
        r"\b(?:req|request|sess|session|trace|run|conv|conversation)[_-]?(?:id)?"
        r"[=:_ -]+[A-Za-z0-9_-]{6,}",
    ),
    ("unix timestamp", r"\b1[5-9]\d{8}(?:\d{3})?\b"),
    ("hex token", r"\b[0-9a-f]{16,}\b"),
    ("counter", r"\b(?:turn|attempt|iteration|request|call|retry)\s*(?:#|no\.?|number)?\s*\d+\b"),
]
_ANY = re.compile(
    "|".join(f"(?P<p{i}>{pattern})" for i, (_, pattern) in enumerate(_PATTERNS)), re.IGNORECASE
)
_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{24,}")


@dataclass(frozen=True)
class Volatile:
    """A span of text that looks like it changes per request."""

    kind: str
    text: str
    start: int


# Every pattern needs a digit or one of these words, and a random token needs a digit or mixed
# case: checking for those first (substring searches, in C) keeps a long clean prompt cheap.
_KEYWORDS = (
    "today is",
    "current date",
    "the date is",
    "now is",
    "req",
    "sess",
    "trace",
    "run_id",
    "run-id",
    "conv",
)


def find_volatile(text: str) -> Volatile | None:
    """The first volatile-looking span in `text`, or None."""
    low = text.lower()
    digits = any(d in text for d in "0123456789")
    if digits or any(k in low for k in _KEYWORDS):
        m = _ANY.search(text)
        if m is not None:
            kind = _PATTERNS[int(m.lastgroup[1:])][0] if m.lastgroup else "volatile"
            return Volatile(kind, m.group(0)[:60], m.start())
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
