"""The spool: ledger rows kept on disk while the ledger cannot take them, and recorded later.

A call the API answered is never made to fail by its bookkeeping. When the ledger refuses a row
(a full disk, a lock held too long, a database that went away), `Recorder` appends the row to this
process's spool file, flushed and synced before the call returns, warns once, and records the
spooled rows the next time the ledger takes a row (and whenever a ledger is opened for writing).
Every row carries a uid that the ledger keeps once, so a row recorded twice (a crash between the
insert and the spool's cleanup) counts once. `cachewise report` counts spooled rows that are not
in the ledger yet.

Layout: `<home>/spool/<ledger key>/<pid>-<random>.jsonl`, a line per row, `{"row": {columns},
"prompt": body or null}`; the folders are private (0700) and the files 0600. The ledger key is a
hash of the target, because a PostgreSQL URL may hold a password. A row is appended under a lock
on its file, and a file is drained under the same lock, so any process may drain any file.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import threading
import uuid
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import CachewiseWarning, LedgerError
from .home import default_home
from .ledger import CallRecord, Ledger

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: only a process's own files are drained
    fcntl = None  # type: ignore[assignment]

__all__ = ["Recorder", "Spool"]

Item = tuple[CallRecord, dict[str, Any] | None]


class Spool:
    """The spooled rows of one ledger, on this machine.

    Args:
        target: the ledger's path or URL (only its hash is written anywhere).
        directory: the spool's root; default `<home>/spool`.
    """

    def __init__(self, target: str, directory: Path | None = None) -> None:
        key = hashlib.sha256(target.encode()).hexdigest()[:16]
        self.directory = (directory or default_home() / "spool") / key
        self._path = self.directory / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self._lock = threading.Lock()

    def write(self, call: CallRecord, prompt: dict[str, Any] | None) -> None:
        """Append a row durably (synced) before returning.

        Raises:
            OSError: the spool cannot be written either (the caller keeps the row in memory).
        """
        line = json.dumps({"row": call.to_row(), "prompt": prompt}, separators=(",", ":")) + "\n"
        with self._lock:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            while not self._append(line.encode()):
                pass  # a drainer removed the file between our open and our lock: write anew

    def _append(self, data: bytes) -> bool:
        # Opened, locked and closed per row: rows are rare (the ledger refused them), and a file
        # nobody holds open can be drained by any process at any time.
        fd = os.open(self._path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_ino != os.stat(self._path).st_ino:
                    return False
            except FileNotFoundError:
                return False
            size = os.fstat(fd).st_size
            try:
                os.write(fd, data)
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, size)  # no half row left for a drainer to trip on
                raise
            return True
        finally:
            os.close(fd)

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("*.jsonl")) if self.directory.is_dir() else []

    def pending(self) -> list[Item]:
        """Every row in the spool (read only, nothing locked: for reports)."""
        return [item for path in self.files() for item in _read(path)]

    def drain(self, ledger: Ledger) -> int:
        """Record the spooled rows the ledger takes; return how many. Files another live process
        is writing are left to it.

        Raises:
            LedgerError: the ledger refused a row (the rest stay spooled).
        """
        recorded = 0
        with self._lock:
            for path in self.files():
                recorded += self._drain_file(path, ledger)
        return recorded

    def _drain_file(self, path: Path, ledger: Ledger) -> int:
        try:
            handle = path.open("r", encoding="utf-8")
        except FileNotFoundError:
            return 0  # another process drained it a moment ago
        with handle:
            if fcntl is not None:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    return 0  # a row is being written to it this moment
            elif not path.name.startswith(f"{os.getpid()}-"):
                return 0
            items = list(_read(path))
            for call, prompt in items:
                ledger.record(call, prompt=prompt)
            path.unlink(missing_ok=True)
        return len(items)


def _read(path: Path) -> Iterator[Item]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return
    for line in lines:
        try:
            data = json.loads(line)
            yield CallRecord.from_row(data["row"]), data.get("prompt")
        except (ValueError, KeyError, TypeError):
            continue  # cut off by a crash mid-write: that call had not returned yet


class Recorder:
    """Records calls in a ledger and never raises: a row the ledger refuses is spooled (or, when
    the spool cannot be written either, kept in memory and retried), with one warning.

    Args:
        ledger: where rows go.
        spool: where refused rows wait; default the ledger's spool under `<home>/spool`.
    """

    def __init__(self, ledger: Ledger, spool: Spool | None = None) -> None:
        self.ledger = ledger
        self.spool = spool or Spool(ledger.target)
        self._memory: list[Item] = []
        self._lock = threading.Lock()
        self._warned = False
        self.spooled = 0
        self._backlog = bool(self.spool.files())  # rows an earlier process left
        if self._backlog:
            self._catch_up()
        _LIVE.add(self)

    def record(self, call: CallRecord, *, prompt: dict[str, Any] | None = None) -> None:
        """Write the row to the ledger, or keep it for later; never raise."""
        self.record_many([(call, prompt)])

    def record_many(self, items: list[Item]) -> None:
        """Write rows to the ledger in one transaction, or keep them all for later; never raise."""
        try:
            self.ledger.record_many(items)
        except LedgerError as exc:
            for call, prompt in items:
                self._keep(call, prompt, exc)
            return
        if self._backlog or self._memory:
            self._catch_up()

    def _keep(self, call: CallRecord, prompt: dict[str, Any] | None, why: Exception) -> None:
        try:
            self.spool.write(call, prompt)
            where = f"kept in {self.spool.directory}"
        except OSError as exc:
            with self._lock:
                self._memory.append((call, prompt))
            where = f"kept in memory (the spool cannot be written either: {exc.strerror})"
        with self._lock:
            self.spooled += 1
            self._backlog = True
            first = not self._warned
            self._warned = True
        if first:
            warnings.warn(
                f"the ledger refused a row ({why}); it is {where} and recorded when the ledger "
                "takes rows again (`cachewise report` counts spooled rows meanwhile). The call "
                "itself succeeded.",
                CachewiseWarning,
                stacklevel=5,
            )

    def _catch_up(self) -> None:
        with self._lock:
            memory, self._memory = self._memory, []
        try:
            while memory:
                call, prompt = memory[0]
                self.ledger.record(call, prompt=prompt)
                memory.pop(0)
            self.spool.drain(self.ledger)
            self._backlog = False
        except (LedgerError, OSError):
            pass  # still refused: they wait for the next row that goes through
        finally:
            with self._lock:
                self._memory[:0] = memory

    def flush(self) -> None:
        """At exit: rows still in memory go to the ledger or the spool, or are reported lost."""
        if not self._memory:
            return
        self._catch_up()
        for call, prompt in list(self._memory):
            try:
                self.spool.write(call, prompt)
                self._memory.remove((call, prompt))
            except OSError:
                break
        if self._memory:
            warnings.warn(
                f"{len(self._memory)} ledger row(s) could be written neither to the ledger nor to "
                "the spool and are lost (the calls themselves succeeded)",
                CachewiseWarning,
                stacklevel=1,
            )


_LIVE: weakref.WeakSet[Recorder] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for recorder in list(_LIVE):
        recorder.flush()
