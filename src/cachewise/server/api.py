"""The HTTP plumbing the emulator's routes share: API-shaped errors, headers, body checks."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, NoReturn

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..body import compact_encoder
from ..validate import NOT_JSON, TOO_DEEP, UNPAIRED_SURROGATE

__all__ = [
    "ApiError",
    "JsonAnswer",
    "api_error_response",
    "betas_of",
    "check_body",
    "check_version",
    "error_body",
    "headers",
    "parse_json",
    "read_body",
    "read_json",
]

API_VERSIONS = ("2023-06-01", "2026-10-21")
ORGANIZATION_ID = "00000000-0000-4000-8000-00000000c0de"
REMOVED_IN_2026_10_21 = ("temperature", "top_p", "top_k")


class ApiError(Exception):
    """An error response in the API's shape."""

    def __init__(
        self, status: int, error_type: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message
        self.headers = dict(headers or {})


def error_body(status: int, error_type: str, message_text: str, rid: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message_text},
        "request_id": rid,
    }


def headers(
    rid: str, workspace: str | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    h = {"request-id": rid, "anthropic-organization-id": ORGANIZATION_ID}
    if workspace:
        h["anthropic-workspace-id"] = workspace
    h.update(extra or {})
    return h


# One encoder for every answer: `json.dumps` with arguments (as JSONResponse calls it) builds a
# new encoder per call, a few microseconds of the emulator's hot path.
_encode = compact_encoder(allow_nan=False)


class JsonAnswer(JSONResponse):
    """The same bytes as Starlette's JSONResponse, encoded by one shared encoder."""

    def render(self, content: Any) -> bytes:
        return _encode(content).encode()


class ErrorResponse(JSONResponse):
    """JSON with non-ASCII escaped: an error may quote what the caller sent, and what it sent may
    not be valid Unicode (an unpaired surrogate), which must still make a valid answer."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode()


def api_error_response(err: ApiError, rid: str, workspace: str | None = None) -> JSONResponse:
    return ErrorResponse(
        error_body(err.status, err.error_type, err.message, rid),
        err.status,
        headers=headers(rid, workspace, err.headers),
    )


def check_version(request: Request) -> str:
    version = request.headers.get("anthropic-version")
    if not version:
        raise ApiError(400, "invalid_request_error", "anthropic-version: header is required")
    if version not in API_VERSIONS:
        raise ApiError(
            400,
            "invalid_request_error",
            f"anthropic-version: unknown version {version!r}; supported: {', '.join(API_VERSIONS)}",
        )
    return version


async def read_json(request: Request, limit: int) -> Any:
    """The request's JSON body, as the API reads it: 413 past `limit` bytes (said or streamed),
    400 for a body the API's JSON parser refuses (`parse_json`)."""
    return parse_json(await read_body(request, limit))


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body bytes: 413 past `limit` bytes, said or streamed."""
    length = request.headers.get("content-length")
    if length and length.isascii() and length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    # Joined once (a body in one chunk is that chunk): `bytes +=` would copy the body so far
    # for every chunk; and bytes, unlike a bytearray, can be a dict key (`RequestReader`).
    return b"".join(chunks)


def parse_json(raw: bytes | bytearray) -> Any:
    """JSON as the API accepts it: UTF-8, and strictly JSON. Python's parser also takes `NaN` and
    `Infinity`, strings holding half of a surrogate pair (valid JSON text, but not Unicode), and
    fails on deep nesting with a RecursionError; each of those is a 400 here (our wording: the
    API's is not published)."""
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_not_json)
        # Only a body that escapes a surrogate can hold a lone one; then the full check.
        if _SURROGATE_ESCAPE.search(raw) and _lone_surrogate(body):
            raise ApiError(400, "invalid_request_error", UNPAIRED_SURROGATE)
    except RecursionError:
        raise ApiError(400, "invalid_request_error", TOO_DEEP) from None
    except ValueError as exc:  # malformed JSON, invalid UTF-8, and NaN or Infinity
        raise ApiError(400, "invalid_request_error", NOT_JSON + str(exc)) from None
    return body


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _not_json(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not a JSON value")


def _lone_surrogate(body: Any) -> bool:
    # A parsed pair is one character; a lone half is the one thing UTF-8 cannot encode.
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "request_too_large", f"Request exceeds the maximum size of {limit} bytes")


def check_body(body: Any, version: str, *, need_max_tokens: bool = True) -> None:
    """What the parser cannot know: which route needs `max_tokens`, and what the API version
    removed. Every field's shape is the parser's (`cachewise.validate`)."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request_error", "request body: Input should be an object")
    if need_max_tokens and body.get("max_tokens") is None:
        raise ApiError(400, "invalid_request_error", "max_tokens: Field required")
    if version == "2026-10-21":
        for name in REMOVED_IN_2026_10_21:
            if name in body:
                raise ApiError(
                    400,
                    "invalid_request_error",
                    f"{name}: Extra inputs are not permitted (removed in API version 2026-10-21)",
                )


def betas_of(request: Request) -> list[str]:
    if "anthropic-beta" not in request.headers:  # the usual case, without `get`'s KeyError
        return []
    return [b.strip() for b in request.headers["anthropic-beta"].split(",") if b.strip()]
