"""What one call of `cachewise run` does, whichever engine runs it: wait its turn, go through the
warm gate, send with the SDK (which retries what can be retried), and come back with the line for
the results file and the call's ledger row.

The local engine calls `Sender.send` from its threads; a Celery worker calls it from its task.
Neither records the row inside the call: the engine records it where it records the result, so
that a worker can carry both to the driver together (`cachewise.distributed`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from .gate import Gate
from .ledger import CallRecord

__all__ = ["Outcome", "Pacer", "Sender", "Stop", "error_line"]


class Stop(Protocol):
    """What tells a call not to start: a `threading.Event`, or a run's flag in Redis."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class Pacer:
    """At most `rate` call starts per second across workers; and a pause until a reset time when
    the API's `anthropic-ratelimit-requests-remaining` says 0."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def wait(self, stop: Stop | None = None) -> bool:
        """Wait for this call's turn; False if `stop` was set meanwhile (do not send)."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next, self._paused_until)
            self._next = start + self.interval
        if start > now:
            if stop is None:
                time.sleep(start - now)
            elif stop.wait(start - now):
                return False
        return True

    def observe(self, headers: Any) -> None:
        at = reset_time(headers)
        if at is not None:
            with self._lock:
                self._paused_until = max(
                    self._paused_until, time.monotonic() + max(0.0, at - time.time())
                )


def reset_time(headers: Any) -> float | None:
    """The unix time new calls may start again, when a response says no request is left in the
    current window (`anthropic-ratelimit-requests-remaining: 0`); else None."""
    remaining = headers.get("anthropic-ratelimit-requests-remaining")
    reset = headers.get("anthropic-ratelimit-requests-reset")
    if remaining != "0" or not reset:
        return None
    try:
        return datetime.fromisoformat(reset.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class PacerLike(Protocol):
    def wait(self, stop: Stop | None = None) -> bool: ...


@dataclass
class Outcome:
    """A call that was sent: its results line, the usage and model to count it by, and its
    ledger row (None only when the row could not be made; a warning said why)."""

    line: dict[str, Any]
    usage: Any
    model: str
    row: CallRecord | None

    @property
    def custom_id(self) -> str:
        return str(self.line["custom_id"])


class _Capture:
    """Stands where the wrapped client's recorder would, and keeps the row of each thread's call
    for the engine to record with the call's result."""

    def __init__(self) -> None:
        self._local = threading.local()

    def record(self, call: CallRecord, *, prompt: dict[str, Any] | None = None) -> None:
        self._local.row = call

    def take(self) -> CallRecord | None:
        row: CallRecord | None = getattr(self._local, "row", None)
        self._local.row = None
        return row


class Sender:
    """Sends the calls of a run through `cachewise.wrap` (planning and linting already done by
    the run, so both are off here).

    Args:
        client: an `anthropic.Anthropic` client.
        gate: where each prefix's scout is elected ("local", a Redis URL, a `Gate`); "off" sends
            every call at once.
        retries: the SDK's retries per call.
    """

    def __init__(self, client: Any, *, gate: str | Gate, retries: int) -> None:
        from .client import wrap

        self._capture = _Capture()
        self._wrapped = wrap(
            client.with_options(max_retries=retries),
            ledger=False,
            plan="off",
            lint="off",
            gate=gate,
            source="run",
        )
        # The row comes back to the engine instead of being written inside the call.
        self._wrapped._state.pipeline.recorder = self._capture

    def send(self, item: dict[str, Any], pacer: PacerLike, stop: Stop) -> Outcome | None:
        """Send one `{"custom_id", "params"}` item when the pacer lets it; None when `stop` was
        set first (it is not sent: a resumed run sends it). Never raises for the API's errors:
        a call that still fails after the SDK's retries comes back as an `errored` line."""
        if stop.is_set() or not pacer.wait(stop):
            return None
        params = item["params"]
        self._capture.take()
        try:
            message = self._wrapped.messages.create(**params)
        except Exception as exc:  # the SDK has retried what can be retried
            line = error_line(item["custom_id"], exc)
            return Outcome(line, None, str(params.get("model")), self._capture.take())
        line = {
            "custom_id": item["custom_id"],
            "result": {"type": "succeeded", "message": message.model_dump(mode="json")},
        }
        return Outcome(line, message.usage, message.model, self._capture.take())


def error_line(custom_id: str, exc: BaseException) -> dict[str, Any]:
    """The results line of a call that failed: the API's own error when it sent one."""
    body = getattr(exc, "body", None)
    inner = body.get("error") if isinstance(body, dict) else None
    error = inner if isinstance(inner, dict) else {"type": "api_error", "message": str(exc)}
    return {
        "custom_id": custom_id,
        "result": {"type": "errored", "error": {"type": "error", "error": error}},
    }
