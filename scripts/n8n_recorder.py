"""A recording pass-through in front of the emulator, for the n8n end-to-end run.

It sits right before the emulator, so it sees every call that reaches it: in `--direct` mode that
is what n8n itself sends (the headers and bodies a proxy must pass through), behind the proxy it is
what the proxy sends upstream. Each call becomes one JSON line: method, path, headers (the API key
cut to its first characters), the body, the status and the usage the emulator answered, streamed or
not.

The emulator's stats are totals; the lines are what the end-to-end check groups by workflow (named
in the system prompt's first line) and by n8n instance (named in the question).
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx  # the HTTP client the anthropic SDK brings
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

WORKFLOW = re.compile(r"\[workflow: ([a-z]+)\]")
INSTANCE = re.compile(r"\bon (n8n-[a-z])\b")
# Hop-by-hop and length headers are the transport's business, not the call's.
DROP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}


def tags(body: Any) -> tuple[str | None, str | None]:
    """(workflow, instance) of a Messages body: the workflow from the system prompt, the instance
    from the first user message."""
    if not isinstance(body, dict):
        return None, None
    system = body.get("system")
    if isinstance(system, list):
        system = " ".join(b.get("text", "") for b in system if isinstance(b, dict))
    workflow = WORKFLOW.search(system) if isinstance(system, str) else None
    instance = None
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            content = " ".join(b.get("text", "") for b in content if isinstance(b, dict))
        if isinstance(content, str) and (found := INSTANCE.search(content)):
            instance = found.group(1)
            break
    return (workflow.group(1) if workflow else None), instance


def usage_of(raw: bytes, content_type: str) -> dict[str, Any] | None:
    """The usage of a reply: the JSON's, or the stream's message_start merged with its deltas."""
    try:
        if "text/event-stream" not in content_type:
            data = json.loads(raw)
            return data.get("usage") if isinstance(data, dict) else None
        usage: dict[str, Any] = {}
        for line in raw.decode("utf-8", "replace").splitlines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if event.get("type") == "message_start":
                usage.update(event["message"].get("usage") or {})
            elif event.get("type") == "message_delta":
                usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
        return usage or None
    except (ValueError, KeyError, AttributeError):
        return None


class Recorder:
    """Forwards to `upstream` and appends one line per call to `path`."""

    def __init__(self, upstream: str, path: Path) -> None:
        self.upstream = upstream.rstrip("/")
        self.path = path
        self.lock = threading.Lock()
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(600.0))
        self.app = Starlette(
            routes=[Route("/{rest:path}", self.forward, methods=["GET", "POST", "DELETE"])]
        )

    async def forward(self, request: Request) -> Response:
        raw = await request.body()
        sent = {k: v for k, v in request.headers.items() if k.lower() not in DROP}
        url = f"{self.upstream}{request.url.path}"
        if request.url.query:
            url += f"?{request.url.query}"
        started = time.time()
        upstream_request = self.client.build_request(request.method, url, headers=sent, content=raw)
        reply = await self.client.send(upstream_request, stream=True)
        chunks: list[bytes] = []

        async def relay() -> Any:
            async for chunk in reply.aiter_raw():
                chunks.append(chunk)
                yield chunk

        def done() -> None:
            body = b"".join(chunks)
            self.write(request, sent, raw, reply, body, started)

        async def close() -> None:
            await reply.aclose()
            done()

        back = {k: v for k, v in reply.headers.items() if k.lower() not in DROP}
        return StreamingResponse(
            relay(), reply.status_code, headers=back, background=BackgroundTask(close)
        )

    def write(
        self,
        request: Request,
        sent: dict[str, str],
        raw: bytes,
        reply: httpx.Response,
        body: bytes,
        started: float,
    ) -> None:
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode("utf-8", "replace")
        workflow, instance = tags(parsed)
        headers = dict(sent)
        for secret in ("x-api-key", "authorization"):
            if secret in headers:
                headers[secret] = headers[secret][:6] + "…"
        line = {
            "t": round(started, 3),
            "seconds": round(time.time() - started, 3),
            "method": request.method,
            "path": request.url.path,
            "workflow": workflow,
            "instance": instance,
            "headers": headers,
            "body": parsed,
            "status": reply.status_code,
            "usage": usage_of(body, reply.headers.get("content-type", "")),
        }
        with self.lock, self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


def serve(upstream: str, path: Path, port: int) -> uvicorn.Server:
    """The recorder on 127.0.0.1:`port` in a daemon thread; `.should_exit = True` stops it."""
    recorder = Recorder(upstream, path)
    server = uvicorn.Server(
        uvicorn.Config(recorder.app, host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    return server


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
