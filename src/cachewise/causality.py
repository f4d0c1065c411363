"""Causality in traces: a request that carries an earlier request's answer came after it.

A request whose messages are an earlier request's followed by an assistant turn carries that
request's answer, so it was sent after the answer arrived, whatever the timestamps say: a ledger
of a fast sequential client has rows a few milliseconds apart, in an order clock jitter may even
swap. When the earlier row has its `ttft_ms`, the later one starts no sooner than that first
byte; when it has none, its first byte is taken no later than the later row's start (instead of
the default). So a conversation replays the same whatever the jitter of its timestamps.

Messages are compared without their markers (a library moves its breakpoint every turn), a
string content as its text block, within the same workspace and system prompt.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .body import text_blocks

if TYPE_CHECKING:
    from .trace import Row

__all__ = ["causal_times"]


def causal_times(
    rows: Sequence[Row], given: Sequence[float]
) -> tuple[list[float], list[float], list[int]]:
    """The rows' start times (from `given`) and first-byte times, ordered by the answers they
    carry, and each row's depth in its chain of answers (0: it carries none)."""
    starts = list(given)
    before = _predecessors(rows, starts)
    depth = [0] * len(rows)
    # A predecessor has fewer messages: in that order, each row's is settled before it.
    for j in sorted(range(len(rows)), key=lambda i: _message_count(rows[i])):
        i = before[j]
        if i is not None:
            first_byte = rows[i].ttft_s if rows[i].ttft_ms is not None else 0.0
            starts[j] = max(starts[j], starts[i] + first_byte)
            depth[j] = depth[i] + 1
    ready = [start + row.ttft_s for start, row in zip(starts, rows, strict=True)]
    for j, i in enumerate(before):
        if i is not None and rows[i].ttft_ms is None:
            ready[i] = max(starts[i], min(ready[i], starts[j]))
    return starts, ready, depth


def _message_count(row: Row) -> int:
    messages = row.request.get("messages")
    return len(messages) if isinstance(messages, list) else 0


def _predecessors(rows: Sequence[Row], starts: Sequence[float]) -> list[int | None]:
    """For each row, the row whose answer it carries: the one with the longest list of messages
    that this row's messages begin with, followed by an assistant turn (in the same workspace,
    with the same system prompt; markers aside). Among identical requests, the latest that
    started before this one."""
    whole: dict[bytes, list[int]] = {}
    prefixes: list[list[bytes]] = []
    for index, row in enumerate(rows):
        keys = _prefix_keys(row)
        prefixes.append(keys)
        if keys:
            whole.setdefault(keys[-1], []).append(index)
    out: list[int | None] = []
    for j, row in enumerate(rows):
        messages = row.request.get("messages")
        found = None
        if isinstance(messages, list):
            for k in range(len(messages) - 1, 0, -1):
                turn = messages[k]
                if not (isinstance(turn, dict) and turn.get("role") == "assistant"):
                    continue
                same = [i for i in whole.get(prefixes[j][k], []) if i != j]
                if same:
                    earlier = [i for i in same if starts[i] <= starts[j]]
                    found = (
                        max(earlier, key=lambda i: (starts[i], i))
                        if earlier
                        else min(same, key=lambda i: (starts[i], i))
                    )
                    break
        out.append(found)
    return out


def _prefix_keys(row: Row) -> list[bytes]:
    """Digests of the row's conversation so far: entry k stands for the workspace, the system
    prompt and the first k messages, without markers (a string is its text block)."""
    messages = row.request.get("messages")
    if not isinstance(messages, list):
        return []
    digest = hashlib.blake2b(digest_size=16)
    digest.update(_canonical([row.workspace or "", text_blocks(row.request.get("system"))]))
    keys = [digest.digest()]
    for message in messages:
        digest.update(_canonical(message))
        keys.append(digest.digest())
    return keys


def _canonical(value: Any) -> bytes:
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        value = {**value, "content": text_blocks(value["content"])}  # as the API renders it
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    if '"cache_control"' in text:  # rare in a message: only then the slower copy without them
        text = json.dumps(_unmarked(value), sort_keys=True, separators=(",", ":"))
    return text.encode()


def _unmarked(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _unmarked(v) for k, v in value.items() if k != "cache_control"}
        if "role" in out:  # a message: a string is its text block, as the API renders it
            out["content"] = text_blocks(out.get("content"))
        return out
    if isinstance(value, list):
        return [_unmarked(v) for v in value]
    return value
