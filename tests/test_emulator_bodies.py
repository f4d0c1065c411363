"""Request bodies on the emulator's one reader: linear in their size, and every hostile body a 400
in the API's shape, on each route that reads one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx2
import pytest

from cachewise.server.app import create_app
from cachewise.testing import TEST_CONFIG, Emulator
from conftest import asgi_post

ROUTES = ("/v1/messages", "/v1/messages/count_tokens", "/v1/messages/batches")
HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01", "content-type": "application/json"}
REQUEST = (
    b'"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": [{"role": "user", "content": '
)

# Each body, and a word its error names: JSON the API's parser refuses, though Python's accepts
# the constants and the lone surrogates, and would fail on the nesting with a RecursionError.
HOSTILE = {
    "nested 10,000 deep": (b"{" + REQUEST + b"[" * 10_000 + b"]" * 10_000 + b"}]}", "nested"),
    "NaN": (b"{" + REQUEST + b'"hi"}], "temperature": NaN}', "NaN"),
    "Infinity": (b"{" + REQUEST + b'"hi"}], "top_p": Infinity}', "Infinity"),
    "-Infinity": (b"{" + REQUEST + b'"hi"}], "top_k": -Infinity}', "Infinity"),
    "a lone high surrogate": (b"{" + REQUEST + b'"\\ud800"}]}', "surrogate"),
    "a lone low surrogate": (b"{" + REQUEST + b'"a \\uDC00 b"}]}', "surrogate"),
    "a high surrogate then no low one": (b"{" + REQUEST + b'"\\ud83d\\u0041"}]}', "surrogate"),
    "a lone surrogate in a key": (b"{" + REQUEST + b'"hi"}], "\\udfff": 1}', "surrogate"),
    "a surrogate as raw bytes": (b"{" + REQUEST + b'"\xed\xa0\x80"}]}', "utf-8"),
}


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator() as e:
        yield e


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_body_is_a_400_in_the_api_shape(emu: Emulator, route: str, name: str) -> None:
    body, word = HOSTILE[name]
    r = httpx2.post(emu.base_url + route, content=body, headers=HEADERS)
    assert r.status_code == 400, r.text
    answer = r.json()
    assert set(answer) == {"type", "error", "request_id"} and answer["type"] == "error"
    assert answer["error"]["type"] == "invalid_request_error"
    assert word in answer["error"]["message"], answer
    assert r.headers["request-id"] == answer["request_id"]


def test_a_surrogate_pair_is_one_character(emu: Emulator) -> None:
    """Escaped pairs are how JSON writes characters beyond the BMP: only lone halves are refused."""
    body = b"{" + REQUEST + b'"\\ud83d\\ude00 and \\\\ud800, a backslash and text"}]}'
    r = httpx2.post(emu.base_url + "/v1/messages/count_tokens", content=body, headers=HEADERS)
    assert r.status_code == 200, r.text


def test_a_body_at_the_32_mb_limit_is_read_in_linear_time() -> None:
    """A body arrives in many chunks (64 KB here, as a server passes them on); gathering them takes
    time in proportion to its size, and it is parsed once. It was quadratic: 32 MB took seconds,
    the event loop busy copying."""
    app = create_app(TEST_CONFIG)

    def seconds(megabytes: int) -> float:
        body = b'["' + b"x" * (megabytes * 1024 * 1024 - 4) + b'"]'
        start = time.perf_counter()
        status, answer = asyncio.run(asgi_post(app, "/v1/messages/count_tokens", body))
        assert status == 400 and "Input should be an object" in answer["error"]["message"]
        return time.perf_counter() - start

    small, large = min(seconds(8) for _ in range(2)), min(seconds(32) for _ in range(2))
    assert large < 8 * small  # four times the size: about four times the time, not sixteen


def test_a_body_over_the_limit_is_a_413_whether_or_not_it_says_its_length() -> None:
    with Emulator(max_body_bytes=1000) as emu:
        url = emu.base_url + "/v1/messages"
        said = httpx2.post(url, content=b"x" * 1001, headers=HEADERS)
        streamed = httpx2.post(url, content=iter([b"x" * 600, b"x" * 401]), headers=HEADERS)
        for r in (said, streamed):
            assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"
        assert "content-length" not in streamed.request.headers
