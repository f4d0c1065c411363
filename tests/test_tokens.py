"""Token counts: ctok offline, memoized once per text; image sizes; the count_tokens seam."""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anthropic
import httpx2

from cachewise import get_model
from cachewise.tokens import (
    ApiTokenizer,
    CountMemo,
    CtokTokenizer,
    DiskCounts,
    MemoTokenizer,
    base64_image_tokens,
    image_size,
    image_tokens,
)


def test_ctok_content_count_excludes_the_message_frame() -> None:
    import ctok

    t = CtokTokenizer()
    assert t.count("Hello there", "3.0") == ctok.token_count("Hello there", "3.0") - 7
    assert t.count("Hello there", "4.8") == ctok.token_count("Hello there", "4.8") - 6
    assert t.count("", "3.0") == 0


def test_families_count_differently() -> None:
    """The 4.7+ tokenizer produces more tokens for the same text."""
    t = CtokTokenizer()
    sample = "Prompt caching references the entire prompt up to the breakpoint. " * 20
    assert t.count(sample, "4.7") > t.count(sample, "3.0")


def test_memo_counts_each_distinct_text_once() -> None:
    calls: list[str] = []

    class Counting:
        def count(self, text: str, version: str, slot: str = "user") -> int:
            calls.append(text)
            return len(text)

    memo = CountMemo()
    tok = MemoTokenizer(Counting(), memo)
    for _ in range(3):
        assert tok.count("abc", "3.0") == 3
    assert tok.count("abc", "4.8") == 3
    assert calls == ["abc", "abc"] and memo.hits == 2 and len(memo) == 2


class Lengths:
    """Counts a text as its length, and keeps what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def count(self, text: str, version: str, slot: str = "user") -> int:
        self.asked.append(text)
        return len(text)


def test_the_memo_is_bounded_in_bytes_and_forgets_the_least_recently_used() -> None:
    memo = CountMemo(max_bytes=100 * CountMemo.ENTRY_BYTES)
    inner = Lengths()
    for i in range(1000):
        memo.get("4.8", f"text {i}", inner)
        memo.get("4.8", "system prompt", inner)  # used on every request: never the oldest
    assert len(memo) == 100 and memo.nbytes == memo.max_bytes
    inner.asked.clear()
    memo.get("4.8", "system prompt", inner)
    memo.get("4.8", "text 999", inner)
    memo.get("4.8", "text 0", inner)
    assert inner.asked == ["text 0"]


def test_the_memos_bytes_are_the_memory_it_holds() -> None:
    """`nbytes` bounds what tracemalloc sees the memo keep, so `max_bytes` bounds the memory."""
    inner, memo = Lengths(), CountMemo()
    texts = [f"a text of some length, number {i}" for i in range(5_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for t in texts:
            memo.get("3.0", t, inner)
        inner.asked.clear()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held <= memo.nbytes


def test_the_memo_is_consistent_across_threads() -> None:
    memo = CountMemo(max_bytes=50 * CountMemo.ENTRY_BYTES)
    inner = Lengths()

    def work(offset: int) -> None:
        for i in range(2000):
            text = f"t{(i * 7 + offset) % 120}"
            assert memo.get("3.0", text, inner) == len(text)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(memo) == 50 and memo.misses >= 120


def _png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


def test_image_sizes_from_headers() -> None:
    assert image_size(_png(640, 480)) == (640, 480)
    assert image_size(b"GIF89a" + struct.pack("<HH", 20, 10)) == (20, 10)
    jpeg = (
        b"\xff\xd8"
        + b"\xff\xe0\x00\x04\x00\x00"
        + b"\xff\xc0\x00\x11\x08"
        + struct.pack(">HH", 300, 400)
    )
    assert image_size(jpeg + b"\x00" * 16) == (400, 300)


def test_image_tokens_follow_the_documented_formula() -> None:
    assert image_tokens(1000, 1000) == 1334  # ceil(1e6 / 750)
    assert image_tokens(200, 200) == 54
    assert image_tokens(4000, 4000) <= 1534  # downscaled to about 1.15 megapixels
    data = base64.b64encode(_png(750, 100)).decode()
    assert base64_image_tokens(data) == 100


def test_api_tokenizer_subtracts_the_model_frame() -> None:
    """Through the real SDK, against a stand-in for the count_tokens endpoint."""
    seen: list[dict[str, object]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        seen.append(body)
        return httpx2.Response(200, json={"input_tokens": 7 + len(body["messages"][0]["content"])})

    client = anthropic.Anthropic(
        api_key="test",
        base_url="http://127.0.0.1:9",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    tok = ApiTokenizer(client, get_model("claude-sonnet-4-6"))
    assert tok.count("abcd", "3.0") == 4
    assert seen[0]["model"] == "claude-sonnet-4-6"


class _Slow:
    """A tokenizer that counts slowly, and says how often it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    def count(self, text: str, version: str, slot: str = "user") -> int:
        self.calls += 1
        time.sleep(0.05)
        return len(text.split())


def test_a_text_counted_by_several_threads_at_once_is_counted_once() -> None:
    slow = _Slow()
    memo = MemoTokenizer(slow)
    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(lambda _: memo.count("one two three", "4.7"), range(8)))
    assert counts == [3] * 8 and slow.calls == 1


def test_a_count_on_disk_spares_a_new_process_the_tokenizer(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from cachewise import parse_request\n"
        "body = {'model': 'claude-sonnet-4-6', 'max_tokens': 5,\n"
        "        'messages': [{'role': 'user', 'content': 'A text counted once, then read.'}]}\n"
        "print(parse_request(body).total_tokens, 'ctok' in sys.modules)\n"
    )
    env = {**os.environ, "CACHEWISE_HOME": str(tmp_path)}
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    total, loaded = first.stdout.split()
    assert loaded == "True", first.stderr
    assert second.stdout.split() == [total, "False"], second.stderr
    assert (tmp_path / "counts.db").exists()


def test_a_folder_that_cannot_hold_the_disk_cache_changes_nothing(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    disk = DiskCounts(_Slow(), path=blocked / "counts.db")
    assert disk.count("one two", "4.7") == 2 and disk.count("one two", "4.7") == 2
