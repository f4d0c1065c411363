"""The ledger's writer for a server: one thread, many rows per commit.

A server answers many calls at once, and each answer waits until its call's row is durable (so
a call a client was answered for is never missing from the ledger). One commit per row would make
every answer wait its turn for a disk sync; here each row joins whatever batch the writer thread
takes next, so N calls finishing together wait for one sync. The thread writes through a
`Recorder`: a ledger that refuses the batch sends it to the spool, and the answers still go.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import warnings
from typing import Any

from ..errors import CachewiseWarning
from ..ledger import CallRecord
from ..spool import Recorder

__all__ = ["LedgerWriter"]

_Item = tuple[CallRecord, dict[str, Any] | None, asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class LedgerWriter:
    """Writes rows on a thread of its own, batching what is waiting.

    Args:
        recorder: where rows go (the ledger, or its spool).
        max_batch: the most rows one commit takes.
    """

    def __init__(self, recorder: Recorder, *, max_batch: int = 256) -> None:
        self.recorder = recorder
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="cachewise-ledger", daemon=True)
        self._thread.start()

    def submit(self, rec: CallRecord, prompt: dict[str, Any] | None = None) -> asyncio.Future[None]:
        """Queue a row; the future is done when it is committed (or spooled). Not awaiting it is
        fine: the row is written all the same (a client that went away still paid)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put((rec, prompt, loop, future))
        return future

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)
        self.recorder.flush()

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            try:
                self.recorder.record_many([(rec, prompt) for rec, prompt, _, _ in batch])
            except Exception as exc:  # never the thread's end: the next rows still need it
                warnings.warn(
                    f"cachewise could not record {len(batch)} call(s) ({type(exc).__name__}: "
                    f"{exc}); the calls themselves are unaffected",
                    CachewiseWarning,
                    stacklevel=1,
                )
            finally:  # the answers go whatever happened to their rows
                for _, _, loop, future in batch:
                    # A loop that has closed has nobody waiting on it.
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(_done, future)


def _done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
