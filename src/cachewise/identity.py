"""A position's identity: the sha256 of its level and of the block as the prompt renders it.

Two requests share a prefix exactly when their positions' identities (and counts) agree, so an
identity must hold everything that is rendered and nothing that is not: the block without its
markers, its top-level keys in a fixed order (their order is not rendered), nested values in the
order given (inside a schema or an input it is), and equivalent forms (a tool result's string
content, or one text block holding it) made the same.

Hashing is most of what parsing a big prompt costs, and an agent sends the same blocks call after
call. The commonest blocks, plain text and plain-text tool results, are therefore identified from
their strings themselves through a bounded memo: a block met before costs a dictionary lookup
(Python keeps a string's hash on the string, and the same string object compares by identity), not
a sha256 of its text. The digests are the same either way; only the work differs.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from .body import block_holders, compact_encoder, copy_json

__all__ = [
    "DigestMemo",
    "Plain",
    "canon",
    "chain",
    "digest",
    "envelope",
    "plain",
    "plain_digest",
    "render",
    "tool_digest",
    "tool_use",
]


# Every identity's JSON: compact, Unicode as is. A value that contains itself is refused as too
# deep before anything is encoded (`validate`), and a parse turns a RecursionError into that.
canon = compact_encoder(allow_nan=True)

PLAIN_TEXT_KEYS = frozenset({"type", "text", "cache_control"})
PLAIN_RESULT_KEYS = frozenset({"type", "tool_use_id", "content", "is_error", "cache_control"})

# ("text", role, text) or ("tool_result", role, tool_use_id, is_error, texts)
Plain = tuple[Any, ...]


def digest(level: str, canonical: str) -> str:
    """A position's identity: its level and its rendered content. Strict UTF-8: an unpaired
    surrogate is not text, and the API rejects it too."""
    return hashlib.sha256(f"{level}\x00{canonical}".encode()).hexdigest()


def strip(block: Any) -> Any:
    """A block or tool as its identity sees it: without its markers (see `marker_holders`),
    keeping key order; string tool_result content becomes one text block, and a text content
    block (the block itself, or an inner block of a tool result or document) keeps only what is
    rendered, because the prompt does not tell those forms apart. Anything else nested (a
    schema, an input, a document's source data) is content and stays as given."""
    out = copy_json(block)
    if out.get("type") == "tool_result" and isinstance(out.get("content"), str):
        out["content"] = [{"type": "text", "text": out["content"]}]
    for holder in block_holders(out):
        holder.pop("cache_control", None)
        if holder.get("type") == "text":  # in a fixed order: it is not rendered
            kept: dict[str, Any] = {
                k: holder[k] for k in ("type", "text", "citations") if k in holder
            }
            holder.clear()
            holder.update(kept)
    return out


def envelope(block: dict[str, Any]) -> dict[str, Any]:
    """A block or tool as rendered: its own keys in a fixed order, nested values as given."""
    stripped = strip(block)
    return {k: stripped[k] for k in sorted(stripped)}


def plain(block: dict[str, Any], role: str | None) -> Plain | None:
    """What the identity of a plain text block or plain-text tool result is made of (the strings
    as given, nothing copied), or None for any other block: it takes the general form."""
    kind = block.get("type")
    if kind == "text" and block.keys() <= PLAIN_TEXT_KEYS:
        return ("text", _value(role or ""), _value(block["text"]))
    if kind != "tool_result" or not block.keys() <= PLAIN_RESULT_KEYS:
        return None
    use_id = block.get("tool_use_id")
    content = block.get("content")
    if not isinstance(use_id, str):
        return None
    if content is None:
        texts: tuple[str, ...] = ()
    elif isinstance(content, str):
        texts = (_value(content),)
    elif isinstance(content, list) and all(
        isinstance(b, dict)
        and b.get("type") == "text"
        and isinstance(b.get("text"), str)
        and b.keys() <= PLAIN_TEXT_KEYS
        for b in content
    ):
        texts = tuple(_value(b["text"]) for b in content)
    else:
        return None
    error = bool(block.get("is_error"))
    return ("tool_result", _value(role or ""), _value(use_id), error, texts)


def _value(text: str) -> str:
    """A string as JSON sends it: a `str` subclass (a str-valued Enum) by its value, as the key
    and the rendering must both hold it (its `format` may say something else: `E.A`)."""
    return text if type(text) is str else str.__str__(text)


def tool_use(role: str | None, use_id: Any, name: str, args: str) -> Plain:
    """What a plain tool call's identity is made of: its id, name and input's canonical JSON."""
    use_id = _value(use_id) if isinstance(use_id, str) else str(use_id)
    return ("tool_use", _value(role or ""), use_id, _value(name), args)


def render(parts: Plain) -> str:
    """A plain block's canonical form, without JSON-encoding its text (most of a big prompt's
    bytes). A string and a list of text blocks holding it render alike, so they match."""
    kind, role = parts[0], parts[1]
    if kind == "text":
        return f"\x01{role}\x00text\x00{parts[2]}"
    if kind == "tool_use":
        return f"\x01{role}\x00tool_use\x00{parts[2]}\x00{parts[3]}\x00{parts[4]}"
    body = "".join(f"{len(t)}:{t}" for t in parts[4])
    return f"\x01{role}\x00tool_result\x00{parts[2]}\x00{parts[3]}\x00{body}"


def _chars(parts: Plain) -> int:
    """The characters an entry keeps alive: its strings, and the texts of a tool result."""
    return sum(len(p) if isinstance(p, str) else _chars(p) if isinstance(p, tuple) else 0
               for p in parts)  # fmt: skip


class DigestMemo:
    """Digests by what they digest; thread-safe. Each entry is charged its size in characters
    (a plain block's texts are held by reference, not copied); past `max_chars` the oldest entry
    goes first. Oldest, not least recently used: a hit then costs one dict lookup, and a block
    that is still in use when it goes is digested once more and kept again."""

    ENTRY_OVERHEAD = 400  # the key's tuples, the digest and the ordered dict's slot, in chars

    def __init__(self, max_chars: int = 32 * 1024 * 1024) -> None:
        self.max_chars = max_chars
        self.chars = 0
        self._digests: OrderedDict[Hashable, tuple[str, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> str | None:
        found = self._digests.get(key)
        return None if found is None else found[0]

    def put(self, key: Hashable, value: str, chars: int = 0) -> None:
        size = self.ENTRY_OVERHEAD + chars
        with self._lock:
            if key in self._digests:
                return
            self._digests[key] = (value, size)
            self.chars += size
            while self.chars > self.max_chars and self._digests:
                _, (_, evicted) = self._digests.popitem(last=False)
                self.chars -= evicted

    def digest(self, level: str, parts: Plain, suffix: str = "") -> str:
        """`digest(level, render(parts) + suffix)`, computed once."""
        key = (level, suffix, parts)
        found = self._digests.get(key)  # (`get`, written out: this runs for every block)
        if found is not None:
            return found[0]
        value = digest(level, render(parts) + suffix)
        self.put(key, value, _chars(parts[2:]))  # the kind and role are shared
        return value

    def chain(self, prefix: str, digest: str, tokens: int) -> str:
        """The prefix hash after `prefix` of a position with this identity and count."""
        key = (prefix, digest, tokens)
        found = self._digests.get(key)
        if found is not None:
            return found[0]
        value = hashlib.sha256(f"{prefix}{digest}\x00{tokens}".encode()).hexdigest()
        self.put(key, value)
        return value

    def __len__(self) -> int:
        return len(self._digests)


_PLAIN = DigestMemo()
# A prefix hash is small, and its entry is charged its overhead alone: this keeps the newest
# 4,096, a few agent conversations' worth, and stays flat under traffic that is all new.
_CHAINS = DigestMemo(max_chars=4096 * DigestMemo.ENTRY_OVERHEAD)


# `digest(level, render(parts) + suffix)`, from the process's memo when it has it.
plain_digest = _PLAIN.digest


def tool_digest(tool: dict[str, Any]) -> str:
    """A tool definition's digest, `digest("tools", canon(envelope(tool)))`, from the process's
    memo by the tool's own JSON (which decides its envelope) when it has it."""
    raw = canon(tool)
    key = ("tools", raw)
    found = _PLAIN.get(key)
    if found is None:
        found = digest("tools", canon(envelope(tool)))
        _PLAIN.put(key, found, len(raw))
    return found


# The prefix hash that follows a prefix with a position of this digest and count (the count is
# part of it: equal prefix hashes mean equal token counts), from the process's memo.
chain = _CHAINS.chain
