"""The HTTP plumbing the emulator's routes share: API-shaped errors, headers, body checks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

__all__ = [
    "ApiError",
    "api_error_response",
    "betas_of",
    "check_body",
    "check_version",
    "error_body",
    "headers",
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
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise ApiError(
            413, "request_too_large", f"Request exceeds the maximum size of {limit} bytes"
        )
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise ApiError(
                413, "request_too_large", f"Request exceeds the maximum size of {limit} bytes"
            )
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(
            400,
            "invalid_request_error",
            f"There was an error parsing the body of your request: {exc}",
        ) from None


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
    return [b.strip() for b in request.headers.get("anthropic-beta", "").split(",") if b.strip()]
