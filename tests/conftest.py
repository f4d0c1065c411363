"""Shared helpers: request bodies built from our own texts, and a clean environment per test."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from starlette.types import ASGIApp, Message

CC: dict[str, Any] = {"type": "ephemeral"}
CC_1H: dict[str, Any] = {"type": "ephemeral", "ttl": "1h"}

_WORDS = [
    "cache",
    "prefix",
    "token",
    "window",
    "breakpoint",
    "system",
    "tool",
    "message",
    "engine",
    "ledger",
    "worker",
    "scout",
    "batch",
    "lookback",
    "entry",
    "expiry",
    "refresh",
    "budget",
    "invoice",
    "harbor",
    "lantern",
    "meadow",
    "orchard",
]


# Property tests run `examples(n)` cases: half their nominal count by default, so that the
# suite stays fast; CACHEWISE_PROPERTY_SCALE=20 (`make properties`) runs a long campaign.
PROPERTY_SCALE = float(os.environ.get("CACHEWISE_PROPERTY_SCALE", "0.5"))


def examples(n: int) -> int:
    """How many examples a property test with a nominal `n` runs under the current scale."""
    return max(10, round(n * PROPERTY_SCALE))


def text(n: int, salt: str = "") -> str:
    """About `n` words of deterministic prose; `salt` makes a different text of the same size."""
    words = [_WORDS[(i * 7 + len(salt) * 3 + sum(map(ord, salt))) % len(_WORDS)] for i in range(n)]
    return f"{salt} " + " ".join(words) + "."


def block(body: str, cc: dict[str, Any] | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {"type": "text", "text": body}
    if cc is not None:
        b["cache_control"] = cc
    return b


def request(
    *,
    model: str = "claude-sonnet-4-6",
    system: Any = None,
    messages: list[dict[str, Any]] | None = None,
    tools: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "max_tokens": 64}
    if tools is not None:
        body["tools"] = tools
    if system is not None:
        body["system"] = system
    body["messages"] = messages if messages is not None else [{"role": "user", "content": "Hi"}]
    body.update(extra)
    return body


def tool(name: str, cc: dict[str, Any] | None = None) -> dict[str, Any]:
    t: dict[str, Any] = {
        "name": name,
        "description": f"Look up {name} records. " + text(40, name),
        "input_schema": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
        },
    }
    if cc is not None:
        t["cache_control"] = cc
    return t


async def asgi_post(app: ASGIApp, path: str, body: bytes, chunk: int = 65536) -> tuple[int, Any]:
    """POST `body` straight into an ASGI app, in `chunk`-byte messages as a server passes it on;
    the status and the JSON answer. No HTTP client in front, whose cost would hide the app's."""
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    incoming: list[Message] = [
        {"type": "http.request", "body": part, "more_body": n < len(parts) - 1}
        for n, part in enumerate(parts)
    ][::-1]
    answer: dict[str, Any] = {"body": b""}

    async def receive() -> Message:
        return incoming.pop() if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        answer["status"] = message.get("status", answer.get("status"))
        answer["body"] += message.get("body", b"")

    headers = [
        (b"host", b"127.0.0.1"),
        (b"x-api-key", b"test"),
        (b"anthropic-version", b"2023-06-01"),
    ]
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    await app({**scope, "client": ("127.0.0.1", 1)}, receive, send)
    return answer["status"], json.loads(answer["body"])


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No test sees a real key or writes outside its own directory."""
    for name in list(os.environ):
        if name.startswith("ANTHROPIC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CACHEWISE_HOME", str(tmp_path / "cachewise-home"))


POSTGRES_URL = os.environ.get(
    "CACHEWISE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def postgres_url() -> Any:
    """A PostgreSQL ledger URL in a schema of its own, dropped afterwards. Skips when no server
    answers, unless CACHEWISE_REQUIRE_SERVICES=1 (CI), where that is a failure."""
    import uuid

    try:
        import psycopg

        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:
        require_or_skip(f"no PostgreSQL at {POSTGRES_URL} ({type(exc).__name__}: {exc})")
    schema = f"cw_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


REDIS_URL = os.environ.get("CACHEWISE_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_prefix() -> Any:
    """A Redis key prefix of this test's own, whose keys are deleted afterwards. Skips when no
    Redis answers, unless CACHEWISE_REQUIRE_SERVICES=1 (CI), where that is a failure."""
    import uuid

    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        require_or_skip(f"no Redis at {REDIS_URL} ({type(exc).__name__}: {exc})")
    name = f"cachewise-test:{uuid.uuid4().hex[:12]}:"
    try:
        yield name
    finally:
        for key in client.scan_iter(match=f"{name}*"):
            client.delete(key)
        client.close()


def require_or_skip(reason: str) -> None:
    """Skip, unless CACHEWISE_REQUIRE_SERVICES=1 (CI), where a missing facility is a failure."""
    if os.environ.get("CACHEWISE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required here: {reason}")
    pytest.skip(reason)


@pytest.fixture
def full_disk(tmp_path: Any) -> Any:
    """A folder on a 256 KB filesystem of its own (tmpfs), to fill up. Needs the right to mount
    (root); skips elsewhere, unless CACHEWISE_REQUIRE_SERVICES=1."""
    import subprocess

    folder = tmp_path / "full"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        require_or_skip(f"cannot mount a small tmpfs ({mounted.stderr.strip() or 'not root'})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
