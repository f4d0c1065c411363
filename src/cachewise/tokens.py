"""Token counts: offline with ctok, or through the count_tokens API, memoized by content hash.

A `Tokenizer` answers one question: how many tokens does this text cost as content, in one
tokenizer family, without the message frame? The frame is catalog data (`Framing`), added by the
request model, so offline and API counts compose the same way.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import sqlite3
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from _hashlib import HASH

    from .catalog import Model

__all__ = [
    "ApiTokenizer",
    "CountMemo",
    "CtokTokenizer",
    "DiskCounts",
    "NotCounted",
    "Tokenizer",
    "default_tokenizer",
    "image_tokens",
]


Slot = Literal["user", "system"]

MEMO_BYTES = 32 * 1024 * 1024


class Tokenizer(Protocol):
    """Counts the content tokens of a text in a tokenizer family ("3.0", "4.7", "4.8").

    `slot` says where the text sits: a system prompt does not pay for the word-start marker that
    a user turn hands to a text beginning with a non-word character (a newline, say), which
    recorded calls show as one token less.
    """

    def count(self, text: str, version: str, slot: Slot = "user") -> int: ...


class CtokTokenizer:
    """Offline counts from ctok's reconstruction of Claude's tokenizers."""

    def __init__(self) -> None:
        self._frames: dict[str, int] = {}

    def count(self, text: str, version: str, slot: Slot = "user") -> int:
        if not text:
            return 0
        tokens = _ctok().tokenize(text, version)
        frame = self._frame(version)
        lone_word_start = slot == "system" and len(tokens) > frame and tokens[frame] == "⟨bow⟩"
        return len(tokens) - frame - int(lone_word_start)

    def _frame(self, version: str) -> int:
        # ctok counts a whole one-message request; its frame is the run of leading pad tokens.
        if version not in self._frames:
            pieces = _ctok().tokenize("a", version)
            self._frames[version] = sum(1 for p in pieces if p == "⟨pad⟩")
        return self._frames[version]


def _ctok() -> Any:
    # Deferred: a process that never counts never loads the vocabularies (a few hundred ms,
    # or a snapshot's tens of ms: see `vocab`).
    import ctok

    from .vocab import install

    install()
    return ctok


class ApiTokenizer:
    """Counts through `client.messages.count_tokens`, for callers who hold a real client.

    Each text is sent as a one-message request to `model`, and the model family's frame is
    subtracted. The text leaves the machine: use it only where that is intended.
    """

    def __init__(self, client: Any, model: Model) -> None:
        self.client = client
        self.model = model

    def count(self, text: str, version: str, slot: Slot = "user") -> int:
        if not text:
            return 0
        f = self.model.framing
        frame = f.start + f.messages_start + f.tail
        result = self.client.messages.count_tokens(
            model=self.model.id, messages=[{"role": "user", "content": text}]
        )
        return int(result.input_tokens) - frame


# A hash of "family/slot:" to copy per text: cheaper than hashing the prefix again.
_SEEDS: dict[tuple[str, str], HASH] = {}


def count_key(version: str, text: str, slot: Slot = "user") -> bytes:
    """The key a text's count is kept under, in memory and on disk: a sha256, not the text."""
    seed = _SEEDS.get((version, slot))
    if seed is None:
        seed = _SEEDS[version, slot] = hashlib.sha256(f"{version}/{slot}:".encode())
    digest = seed.copy()
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.digest()


class CountMemo:
    """A thread-safe memo of counts keyed by the sha256 of (family, slot, text); share one freely.

    It holds at most `max_bytes`: past that, the least recently used count goes first. A count
    costs ctok up to milliseconds per kilobyte of text, an entry `ENTRY_BYTES`, so the default
    keeps some 140,000 counts. A text being counted is counted once: other threads asking for it
    meanwhile wait for that count rather than make their own.
    """

    # One entry: the 32-byte digest (65 bytes as an object), the count (28) and the ordered
    # dict's slot and links (up to 120), on CPython 3.12; a test checks it against tracemalloc.
    ENTRY_BYTES = 240

    def __init__(self, max_bytes: int = MEMO_BYTES) -> None:
        self.max_bytes = max_bytes
        self._capacity = max_bytes // self.ENTRY_BYTES
        self._counts: OrderedDict[Hashable, int] = OrderedDict()
        self._flights: dict[Hashable, _Flight] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, version: str, text: str, compute: Tokenizer, slot: Slot = "user") -> int:
        key = count_key(version, text, slot)
        return self.get_key(key, lambda: compute.count(text, version, slot))

    def peek(self, key: Hashable) -> int | None:
        """The count under `key`, or None: never counts, never waits."""
        found = self._counts.get(key)
        if found is not None:
            # Each dict call is atomic: no lock on the hit path, and a count evicted between
            # the two is still right (`contextlib.suppress` would cost more than the hit).
            try:  # noqa: SIM105
                self._counts.move_to_end(key)
            except KeyError:
                pass
            self.hits += 1
        return found

    def get_key(self, key: Hashable, compute: Callable[[], int]) -> int:
        """The count stored under `key`, or `compute()`'s, then stored: for callers that already
        hold a digest of what is counted (the parser's block digests)."""
        found = self._counts.get(key)  # `peek`, written out: this runs once per parsed block
        if found is not None:
            try:  # noqa: SIM105
                self._counts.move_to_end(key)
            except KeyError:
                pass
            self.hits += 1
            return found
        with self._lock:
            found = self._counts.get(key)
            if found is not None:
                return found
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.value is not None:
                return flight.value
            return compute()  # the leader failed: count for ourselves
        try:
            value = compute()
            self.put(key, value)
            flight.value = value
            return value
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()

    def put(self, key: Hashable, value: int) -> None:
        with self._lock:
            self.misses += 1
            self._counts[key] = value
            while len(self._counts) > self._capacity:
                self._counts.popitem(last=False)

    @property
    def nbytes(self) -> int:
        """The memory the counts hold, at most `max_bytes`."""
        return len(self) * self.ENTRY_BYTES

    def __len__(self) -> int:
        return len(self._counts)


class _Flight:
    """A count under way, that other threads wait for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: int | None = None


class DiskCounts:
    """Counts kept on disk (`counts.db` in the cachewise home), for a tokenizer below: a new
    process that meets a text an earlier one counted does not load the tokenizer (a second or
    so) to count it again. Keyed like `CountMemo`, by a sha256 of the text: no text is stored.
    It is a cache: a folder that cannot be written leaves it off, and nothing else changes.
    """

    MAX_ROWS = 2_000_000  # past this, the older half goes: some 100 MB at most

    def __init__(self, inner: Tokenizer, path: Path | None = None) -> None:
        self.inner = inner
        self._path = path
        self._db: sqlite3.Connection | None = None
        self._opened_for: Path | None = None
        self._off = False
        self._lock = threading.Lock()

    def count(self, text: str, version: str, slot: Slot = "user") -> int:
        if not text:
            return 0
        key = count_key(version, text, slot)
        found = self._read(key)
        if found is not None:
            return found
        value = self.inner.count(text, version, slot)
        self._write(key, value)
        return value

    def _connection(self) -> sqlite3.Connection | None:
        from .home import default_home

        path = self._path or default_home() / "counts.db"
        if self._off or (self._db is not None and self._opened_for == path):
            return self._db
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA busy_timeout=1000")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # a cache: a crash may lose the last few
            db.execute("CREATE TABLE IF NOT EXISTS counts (key BLOB PRIMARY KEY, n INTEGER)")
        except (sqlite3.Error, OSError):
            self._off = True
            return None
        self._db, self._opened_for = db, path
        return db

    def _read(self, key: bytes) -> int | None:
        with self._lock:
            db = self._connection()
            if db is None:
                return None
            try:
                row = db.execute("SELECT n FROM counts WHERE key = ?", (key,)).fetchone()
            except sqlite3.Error:
                return None
        return int(row[0]) if row is not None else None

    def _write(self, key: bytes, value: int) -> None:
        with self._lock:
            db = self._connection()
            if db is None:
                return
            try:
                cursor = db.execute("INSERT OR IGNORE INTO counts VALUES (?, ?)", (key, value))
                if (cursor.lastrowid or 0) % 50_000 == 0:
                    self._prune(db)
            except sqlite3.Error:
                pass  # a full disk, a lock held too long: the count is still right

    def _prune(self, db: sqlite3.Connection) -> None:
        (rows,) = db.execute("SELECT COUNT(*) FROM counts").fetchone()
        if rows > self.MAX_ROWS:
            db.execute(
                "DELETE FROM counts WHERE rowid <= (SELECT MAX(rowid) FROM counts) - ?",
                (self.MAX_ROWS // 2,),
            )


class MemoTokenizer:
    """A tokenizer whose counts are memoized in a `CountMemo`."""

    def __init__(self, inner: Tokenizer, memo: CountMemo | None = None) -> None:
        self.inner = inner
        self.memo = memo if memo is not None else CountMemo()
        # Whole blocks, by the parser's digest of what it renders: a block seen before is one
        # lookup, without hashing its text again or walking its parts.
        self.blocks = CountMemo(self.memo.max_bytes // 4)

    def count(self, text: str, version: str, slot: Slot = "user") -> int:
        if not text:
            return 0
        return self.memo.get(version, text, self.inner, slot)

    def count_block(self, key: Hashable, compute: Callable[[], int]) -> int:
        """A whole block's count, kept under the parser's `key` for it."""
        return self.blocks.get_key(key, compute)

    def cached_only(self) -> Tokenizer:
        """A tokenizer that answers from this memo and raises `NotCounted` rather than count
        (or wait for a count under way): a server parses a request whose texts it has seen on
        its event loop, in microseconds, and hands one with new text to a thread."""
        return _CachedOnly(self.memo, self.blocks)


class NotCounted(Exception):
    """A text `MemoTokenizer.cached_only` was asked about that the memo has not counted."""


class _CachedOnly:
    """The memo's answers, and `NotCounted` instead of counting (see `cached_only`)."""

    def __init__(self, memo: CountMemo, blocks: CountMemo) -> None:
        self.memo = memo
        self.blocks = blocks

    def count(self, text: str, version: str, slot: Slot = "user") -> int:
        if not text:
            return 0
        found = self.memo.peek(count_key(version, text, slot))
        if found is None:
            raise NotCounted
        return found

    def count_block(self, key: Hashable, compute: Callable[[], int]) -> int:
        found = self.blocks.peek(key)
        if found is None:
            found = compute()  # from counted texts, or NotCounted
            self.blocks.put(key, found)
        return found


_DEFAULT = MemoTokenizer(DiskCounts(CtokTokenizer()))


def default_tokenizer() -> MemoTokenizer:
    """The process-wide offline tokenizer, with its shared memo."""
    return _DEFAULT


# Images: tokens = width * height / 750 after the API's downscaling (long edge at most 1568 px
# and about 1.15 megapixels). Dimensions come from the base64 header; a URL or file reference
# has none, and is assumed to be a full-size image.
MAX_EDGE = 1568
MAX_PIXELS = 1_150_000
UNKNOWN_IMAGE_TOKENS = 1600


def image_tokens(width: int, height: int) -> int:
    """Tokens of an image of this size, as the documented formula gives them."""
    if width <= 0 or height <= 0:
        return 0
    scale = min(1.0, MAX_EDGE / max(width, height), math.sqrt(MAX_PIXELS / (width * height)))
    w, h = max(1, int(width * scale)), max(1, int(height * scale))
    return math.ceil(w * h / 750)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from a PNG, GIF, JPEG or WebP header, or None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return int(w), int(h)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        w, h = struct.unpack("<HH", data[26:30])
        return int(w) & 0x3FFF, int(h) & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(w), int(h)
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        i += 2 + int(length)
    return None


def base64_image_tokens(data: str) -> int:
    """Tokens of a base64 image; a header we cannot read counts as a full-size image."""
    try:
        head = base64.b64decode(data[:65536] + "=" * (-len(data[:65536]) % 4), validate=False)
    except ValueError:
        return UNKNOWN_IMAGE_TOKENS
    size = image_size(head)
    return image_tokens(*size) if size else UNKNOWN_IMAGE_TOKENS


# PDFs: each page is sent as text plus an image of the page. Without a PDF parser we count pages
# and charge each a documented flat estimate; docs/tokens.md says so.
PDF_PAGE_TOKENS = 2000
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?!s)")


def base64_pdf_tokens(data: str) -> int:
    """An estimate for a base64 PDF: PDF_PAGE_TOKENS per page found."""
    try:
        raw = base64.b64decode(data + "=" * (-len(data) % 4), validate=False)
    except ValueError:
        return PDF_PAGE_TOKENS
    return max(1, len(_PDF_PAGE.findall(raw))) * PDF_PAGE_TOKENS
