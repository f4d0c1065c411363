"""Reading a Messages request: its bytes, its JSON, and the cache's view of it.

A cached request is the emulator's hot path, and the same request is often sent again and again
(a test's fixture, a batch's shared context, a workflow run on a schedule). So the JSON and the
parsed `Prompt` are remembered by the body's bytes (and the beta headers, which the parse folds
in): a request seen before costs reading its body, Python's own hash of it and a comparison
with the one remembered (half of what a SHA-256 of it took), and a lookup.
Both are immutable from here on, so sharing them between requests is safe. A request not seen
before is parsed on the event loop when every text in it has been counted (microseconds), and in
a worker thread otherwise, where counting new text cannot stall the other requests.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..errors import InvalidRequest, UnknownModel
from ..request import Prompt, parse_request
from ..tokens import NotCounted, default_tokenizer
from .api import ApiError, betas_of, parse_json, read_body

__all__ = ["RequestReader"]

_CACHED_ONLY = default_tokenizer().cached_only()


class RequestReader:
    """Reads requests into (body, Prompt), remembering the last `max_entries` distinct requests
    and at most about `max_bytes` of memory for them (least recently used first out).

    Args:
        max_entries: how many distinct requests are remembered: the hot path repeats a few.
        max_bytes: the memory they may hold, reckoned as `PARSED_PER_BYTE` per body byte.
    """

    # A parsed body and its Prompt hold about this many bytes per byte of JSON (Python objects,
    # hex digests per position), as measured on the benchmarks' requests, and the key its bytes.
    PARSED_PER_BYTE = 9

    def __init__(self, max_entries: int = 256, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._seen: OrderedDict[tuple[bytes, tuple[str, ...]], tuple[Any, Prompt, int]] = (
            OrderedDict()
        )
        self._size = 0  # touched on the event loop only: no lock

    async def read(self, request: Request, limit: int) -> tuple[Any, Prompt]:
        """The request's JSON body and its parse.

        Raises:
            ApiError: 413 past `limit` bytes; 400 for a body the API rejects (not JSON, or a
                shape the API refuses); 404 for a model the catalog does not know.
        """
        raw = await read_body(request, limit)
        return await self.parse(raw, tuple(betas_of(request)))

    async def parse(
        self, raw: bytes | bytearray, betas: tuple[str, ...] = ()
    ) -> tuple[Any, Prompt]:
        """A body's JSON and its parse, from its bytes (the beta headers are folded in).

        Raises:
            ApiError: as `read`, but for the size.
        """
        key = (bytes(raw), betas)  # bytes of bytes is the same object: no copy
        seen = self._seen.get(key)
        if seen is not None:
            self._seen.move_to_end(key)
            return seen[0], seen[1]
        body = parse_json(raw)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_request_error", "request body: Input should be an object")
        try:
            try:
                prompt = parse_request(body, betas=betas, tokenizer=_CACHED_ONLY)
            except NotCounted:
                prompt = await run_in_threadpool(parse_request, body, betas=betas)
        except UnknownModel as exc:
            raise ApiError(404, "not_found_error", f"model: {exc.model}") from None
        except InvalidRequest as exc:
            raise ApiError(exc.status, exc.error_type, exc.message) from None
        self._remember(key, body, prompt, len(raw) * self.PARSED_PER_BYTE)
        return body, prompt

    def _remember(
        self, key: tuple[bytes, tuple[str, ...]], body: Any, prompt: Prompt, size: int
    ) -> None:
        if size > self.max_bytes:
            return
        if key in self._seen:
            return
        self._seen[key] = (body, prompt, size)
        self._size += size
        while self._size > self.max_bytes or len(self._seen) > self.max_entries:
            _, (_, _, dropped) = self._seen.popitem(last=False)
            self._size -= dropped
