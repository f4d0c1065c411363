"""Reading a Messages stream as it passes: whole events, and the usage they report.

The proxy forwards a stream event by event, as each arrives, and reads three kinds on the way:
`message_start` (the message id and the prompt's usage), `message_delta` (the output's usage,
and in later API versions the prompt's again) and `error` (a stream that broke after it began:
its prompt was still billed). Every other event (the many `content_block_delta`s) is only
looked at for its name.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["EventSplitter", "StreamUsage"]

_ENDS = (b"\n\n", b"\r\n\r\n")


class EventSplitter:
    """Cuts a byte stream into whole server-sent events (each with its blank line), however the
    network chunked it."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        events: list[bytes] = []
        while True:
            cut = min(
                ((i, len(end)) for end in _ENDS if (i := self._buffer.find(end)) >= 0),
                default=None,
            )
            if cut is None:
                return events
            at = cut[0] + cut[1]
            events.append(self._buffer[:at])
            self._buffer = self._buffer[at:]

    def rest(self) -> bytes:
        """What came after the last whole event (a stream cut short)."""
        rest, self._buffer = self._buffer, b""
        return rest


class StreamUsage:
    """What a stream has said so far about its message: id, usage, and error."""

    def __init__(self) -> None:
        self.message_id: str | None = None
        self.usage: dict[str, Any] | None = None
        self.error: str | None = None
        self.stopped = False

    def see(self, event: bytes) -> str:
        """Read one whole event; return its name."""
        name, data = _parse(event)
        if name == "message_start":
            message = _loads(data).get("message")
            if isinstance(message, dict):
                self.message_id = message.get("id") if isinstance(message.get("id"), str) else None
                if isinstance(message.get("usage"), dict):
                    self.usage = dict(message["usage"])
        elif name == "message_delta":
            delta = _loads(data).get("usage")
            if isinstance(delta, dict):  # a later count of a field replaces the earlier one
                self.usage = {
                    **(self.usage or {}),
                    **{k: v for k, v in delta.items() if v is not None},
                }
        elif name == "error":
            error = _loads(data).get("error")
            kind = error.get("type") if isinstance(error, dict) else None
            self.error = kind if isinstance(kind, str) else "api_error"
        elif name == "message_stop":
            self.stopped = True
        return name


def _parse(event: bytes) -> tuple[str, bytes]:
    name, data = "", b""
    for line in event.splitlines():
        if line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
        elif line.startswith(b"data:"):
            data += line[5:].strip()
    if not name and data:  # a stream without event lines still says its type in the data
        kind = _loads(data).get("type")
        name = kind if isinstance(kind, str) else ""
    return name, data


def _loads(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
