"""The results file of `cachewise run`: Message Batches results JSONL, a line per finished call.

A line is appended, flushed and synced as each call finishes, so a run killed at any point leaves
every answered call in the file, and a run started again skips those. Three rules keep the file
safe to trust:
- it is never the input file, nor a file that is not recognisably a results file: a cut last line
  is repaired only in a file whose every line is a result;
- one run at a time: the run holds an exclusive lock (`RESULTS.lock`, which says who holds it);
- a line that cannot be written (a full disk) is never dropped: it is held, written when the
  file takes it, else to a file beside the system's temporary files, else to standard error.
Message Batches that were submitted but not collected are listed in `RESULTS.batches`, so that a
resumed run collects what was paid for instead of sending it again.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, the other rules still hold
    fcntl = None  # type: ignore[assignment]

__all__ = ["ResultsFile", "completed_ids"]

_OURS = b'{"custom_id":'  # how every line this module writes begins


class ResultsFile:
    """A results file, opened for one run.

    Args:
        path: the results file (created if missing).
        inputs: files the run reads, which the results must not overwrite.

    Raises:
        InputError: the path is an input, is not a results file, or another run holds it.
    """

    def __init__(self, path: str | Path, *, inputs: Iterable[str | Path] = ()) -> None:
        self.path = Path(path)
        for given in inputs:
            if given != "-" and _same_file(self.path, Path(given)):
                raise InputError(
                    "is also the requests file: give --out a file of its own", file=str(path)
                )
        self.held: list[bytes] = []
        self.error: OSError | None = None
        self._lock = threading.Lock()
        self._lock_fd = self._take_lock()
        try:
            self.done = self._repair_and_read()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except BaseException:
            self._release_lock()
            raise

    # -- the lock ----------------------------------------------------------------------------------

    @property
    def _lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def _take_lock(self) -> int | None:
        if fcntl is None:  # pragma: no cover
            return None
        while True:
            try:
                fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise InputError(
                    f"cannot create its lock file: {exc.strerror}", file=str(self.path)
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
                os.close(fd)
                raise InputError(
                    f"is being written by another cachewise run ({holder}); wait for it to "
                    "finish, or give --out another file",
                    file=str(self.path),
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self._lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a lock file a finishing run unlinked while we waited for it
                os.ftruncate(fd, 0)
                since = time.strftime("%Y-%m-%d %H:%M:%S")
                os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {since}".encode())
                return fd
            os.close(fd)

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            self._lock_path.unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- reading -----------------------------------------------------------------------------------

    def _repair_and_read(self) -> set[str]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return set()
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", file=str(self.path)) from None
        cut = data.rfind(b"\n") + 1
        whole, tail = data[:cut], data[cut:]
        done: set[str] = set()
        for number, line in enumerate(whole.splitlines(), 1):
            if not line.strip():
                continue
            custom_id = _result_id(line)
            if custom_id is None:
                raise InputError(
                    "is not a cachewise results file (this line is not a "
                    '{"custom_id", "result"} object): refusing to append to it; give --out a '
                    "results file or a new path",
                    file=str(self.path),
                    line=number,
                )
            done.add(custom_id)
        if tail and _result_id(tail) is not None:
            with self.path.open("ab") as f:  # a whole result that only lacks its newline
                f.write(b"\n")
            done.add(str(_result_id(tail)))
        elif tail and tail.startswith(_OURS):
            with self.path.open("r+b") as f:  # cut off by a crash mid-write: the call is redone
                f.truncate(cut)
        elif tail:
            raise InputError(
                "is not a cachewise results file (its last line is not a result): refusing to "
                "append to it; give --out a results file or a new path",
                file=str(self.path),
            )
        return done

    # -- writing -----------------------------------------------------------------------------------

    def write(self, line: dict[str, Any]) -> None:
        """Append one result durably; never raise. A line the file refuses is held (`error`
        says why) and every later one after it, to keep their order."""
        data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self.held or not self._append(data):
                self.held.append(data)

    def _append(self, data: bytes) -> bool:
        size = os.fstat(self._fd).st_size
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(28, "short write")
            os.fsync(self._fd)
        except OSError as exc:
            self.error = exc
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)  # no half line left behind
            return False
        return True

    def close(self) -> str | None:
        """Write what was held if the file takes it now, else put it somewhere safe; release the
        lock. Returns a note for the user when held lines had to go elsewhere."""
        with self._lock:
            while self.held and self._append(self.held[0]):
                self.held.pop(0)
            note = self._rescue() if self.held else None
            os.close(self._fd)
        self._release_lock()
        return note

    def _rescue(self) -> str:
        why = self.error.strerror if self.error is not None else "write failed"
        count = len(self.held)
        name = f"cachewise-results-{self.path.stem}-{os.getpid()}.jsonl"
        rescue = Path(tempfile.gettempdir()) / name
        try:
            fd = os.open(rescue, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(b"".join(self.held))
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            sys.stderr.buffer.write(b"".join(self.held))
            sys.stderr.flush()
            return (
                f"{count} result(s) could not be written to {self.path} ({why}) nor to "
                f"{rescue}: they were printed to standard error above; add them to "
                f"{self.path} before you resume, or they are sent (and paid for) again"
            )
        self.held.clear()
        return (
            f"{count} result(s) could not be written to {self.path} ({why}); they are in "
            f"{rescue}: append them to {self.path} (cat {rescue} >> {self.path}) before you "
            "resume, or they are sent (and paid for) again"
        )

    # -- batches submitted and not yet collected ---------------------------------------------------

    @property
    def _batches_path(self) -> Path:
        return self.path.with_name(self.path.name + ".batches")

    def pending_batches(self) -> list[dict[str, Any]]:
        """The batches a run submitted and did not collect: `{"batch_id", "custom_ids"}`."""
        try:
            lines = self._batches_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and isinstance(item.get("batch_id"), str):
                out.append(item)
        return out

    def batch_submitted(self, batch_id: str, custom_ids: list[str]) -> None:
        item = json.dumps({"batch_id": batch_id, "custom_ids": custom_ids}) + "\n"
        fd = os.open(self._batches_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(item)
            f.flush()
            os.fsync(f.fileno())

    def batch_collected(self, batch_id: str) -> None:
        rest = [b for b in self.pending_batches() if b["batch_id"] != batch_id]
        if rest:
            text = "".join(json.dumps(b) + "\n" for b in rest)
            self._batches_path.write_text(text, encoding="utf-8")
        else:
            self._batches_path.unlink(missing_ok=True)


def completed_ids(path: str | Path) -> set[str]:
    """The custom_ids already in a results file (read only)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return set()
    return {cid for line in data.splitlines() if (cid := _result_id(line)) is not None}


def _result_id(line: bytes) -> str | None:
    try:
        item = json.loads(line)
    except ValueError:
        return None
    if (
        isinstance(item, dict)
        and isinstance(item.get("custom_id"), str)
        and isinstance(item.get("result"), dict)
    ):
        return str(item["custom_id"])
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()
