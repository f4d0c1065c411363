"""The proxy, with the official SDK as its client and the emulator as its upstream."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cachewise.ledger import CallRecord, Ledger, key_workspace
from cachewise.report import report
from cachewise.testing import Emulator, Proxy
from conftest import CC, block, text

MODEL = "claude-sonnet-4-6"
SYSTEM = (
    "You answer questions about order 4471-B, placed 2026-11-03 by account 88213 "
    "(invoice INV-2026-0457, total $1,284.50). " + text(2500, "support")
)


def ask(client: Any, question: str, **extra: Any) -> Any:
    return client.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=16,
        system=SYSTEM,
        messages=[{"role": "user", "content": question}],
        **extra,
    )


def rows_of(path: Path) -> list[CallRecord]:
    with Ledger(path) as ledger:
        return ledger.calls()


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


def test_a_request_without_markers_is_planned_and_the_next_one_reads(
    emulator: Emulator, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.db"
    with Proxy(emulator.base_url, ledger=str(ledger)) as proxy:
        client = proxy.client()
        first = ask(client, "Where is my order?")
        second = ask(client, "Can I change the address?")
    assert first.headers["x-cachewise-plan"] == "planned"
    assert first.headers["x-cachewise-breakpoints"] == "/system/0=5m"
    assert first.headers["x-cachewise-gate"] == "scout"
    assert first.parse().usage.cache_creation_input_tokens > 2000
    assert second.parse().usage.cache_read_input_tokens == (
        first.parse().usage.cache_creation_input_tokens
    )
    rows = rows_of(ledger)
    assert [r.source for r in rows] == ["proxy", "proxy"]
    assert [r.wire for r in rows] == ["ok", "ok"]
    assert rows[0].intended_breakpoints == [{"path": "/system/0", "ttl": "5m", "tokens": 2529}] or (
        rows[0].intended_breakpoints and rows[0].intended_breakpoints[0]["path"] == "/system/0"
    )
    assert rows[1].cause == "hit" and rows[1].prefix_hash == rows[0].prefix_hash
    assert rows[0].workspace == key_workspace("sk-emulator-test")


def test_client_markers_are_kept_and_plan_off_sends_the_body_unchanged(
    emulator: Emulator,
) -> None:
    with Proxy(emulator.base_url, plan="off") as proxy:
        plain = ask(proxy.client(), "Hello")
    assert plain.headers["x-cachewise-plan"] == "as-sent"
    assert plain.parse().usage.cache_creation_input_tokens == 0
    with Proxy(emulator.base_url) as proxy:
        marked = proxy.client().messages.with_raw_response.create(
            model=MODEL,
            max_tokens=16,
            system=[block(SYSTEM, {"type": "ephemeral", "ttl": "1h"})],
            messages=[{"role": "user", "content": "Hello"}],
        )
    assert marked.headers["x-cachewise-plan"] == "as-sent"
    assert marked.headers["x-cachewise-breakpoints"] == "/system/0=1h"
    assert marked.parse().usage.cache_creation.ephemeral_1h_input_tokens > 2000


@pytest.mark.parametrize("ttl", ["5m", "1h"])
def test_a_request_level_marker_is_planned_and_keeps_its_ttl(emulator: Emulator, ttl: str) -> None:
    """What n8n's Chat Model sends with "Prompt Caching: 1 Hour": only the automatic marker,
    which lands after the question that changes every run; the plan marks the system prompt,
    for as long as the client asked."""
    with Proxy(emulator.base_url) as proxy:
        client = proxy.client()
        answers = [
            ask(
                client,
                f"question {i}",
                extra_body={"cache_control": {"type": "ephemeral", "ttl": ttl}},
            )
            for i in range(2)
        ]
    assert answers[0].headers["x-cachewise-plan"] == "planned"
    assert f"/system/0={ttl}" in answers[0].headers["x-cachewise-breakpoints"]
    first, second = (a.parse().usage for a in answers)
    written = (
        first.cache_creation.ephemeral_1h_input_tokens
        if ttl == "1h"
        else (first.cache_creation.ephemeral_5m_input_tokens)
    )
    assert written > 2000
    assert second.cache_read_input_tokens > 2000  # the system prompt; the question is new


def test_a_stream_arrives_intact_and_as_it_is_made(tmp_path: Path) -> None:
    """Events pass event by event: the first arrives long before the last (the emulator streams
    at 50 tokens/s), and the client sees the same events as from the emulator directly."""
    with Emulator(output_tokens_per_s=50.0) as emu:
        direct = _stream_events(emu.client())
        with Proxy(emu.base_url, ledger=str(tmp_path / "l.db")) as proxy:
            through = _stream_events(proxy.client())
    assert [kind for kind, _ in through] == [kind for kind, _ in direct]
    spread = through[-1][1] - through[0][1]
    assert spread > 0.3  # about 28 output tokens at 50/s: not buffered to the end
    assert spread > 0.7 * (direct[-1][1] - direct[0][1])
    row = rows_of(tmp_path / "l.db")[-1]
    assert row.status == "ok" and row.usage.output_tokens > 0
    assert row.usage.prompt_tokens > 2000


def _stream_events(client: Any) -> list[tuple[str, float]]:
    seen: list[tuple[str, float]] = []
    with client.messages.stream(
        model=MODEL,
        max_tokens=40,
        system=SYSTEM,
        messages=[{"role": "user", "content": "Tell me about my order"}],
    ) as stream:
        for event in stream:
            seen.append((event.type, time.monotonic()))
    return seen


def test_strict_lint_answers_what_the_api_would_reject_and_sends_nothing(
    emulator: Emulator, tmp_path: Path
) -> None:
    five = [block(text(300, f"part {i}"), CC) for i in range(5)]
    with (
        Proxy(emulator.base_url, lint="strict", ledger=str(tmp_path / "l.db")) as proxy,
        pytest.raises(anthropic.BadRequestError) as caught,
    ):
        proxy.client(max_retries=0).messages.create(
            model=MODEL, max_tokens=16, system=five, messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.status_code == 400
    assert "A maximum of 4 blocks with cache_control may be provided. Found 5." in str(caught.value)
    assert emulator.stats()["requests"] == 0
    row = rows_of(tmp_path / "l.db")[0]
    assert (row.status, row.http_status, row.error_type) == ("error", 400, "invalid_request_error")


def test_warn_lint_names_findings_in_a_header(emulator: Emulator) -> None:
    volatile = SYSTEM + " Today is 2026-12-02 14:03:11 UTC, request id 7f3a9c2e."
    with Proxy(emulator.base_url, lint="warn") as proxy:
        answer = proxy.client().messages.with_raw_response.create(
            model=MODEL,
            max_tokens=16,
            system=[block(volatile, CC)],
            messages=[{"role": "user", "content": "x"}],
        )
    assert "CW" in answer.headers["x-cachewise-findings"]


def test_concurrent_cold_calls_write_once(tmp_path: Path) -> None:
    """16 calls at once on a cold prefix: the gate sends one, the rest wait for its first byte
    (the emulator takes 300 ms to it) and read."""
    with (
        Emulator(ttft_ms=300.0, clock="real") as emu,
        Proxy(emu.base_url, ledger=str(tmp_path / "l.db")) as proxy,
    ):
        client = proxy.client()
        usages: list[Any] = []
        barrier = threading.Barrier(16)

        def one(i: int) -> None:
            barrier.wait()
            usages.append(ask(client, f"question {i}").parse().usage)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sum(u.cache_creation_input_tokens > 0 for u in usages) == 1
    assert sum(u.cache_read_input_tokens > 0 for u in usages) == 15
    roles = sorted(r.gate_role or "" for r in rows_of(tmp_path / "l.db"))
    assert roles.count("scout") == 1


def test_metrics_totals_equal_the_report(emulator: Emulator, tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    with Proxy(emulator.base_url, ledger=str(ledger)) as proxy:
        client = proxy.client(max_retries=0)
        for i in range(4):
            ask(client, f"q{i}")
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(
                model="claude-nonexistent-1",
                max_tokens=5,
                messages=[{"role": "user", "content": "x"}],
            )
        metrics = _parse_metrics(proxy.metrics())
    with Ledger(ledger) as led:
        total = report(led, include_emulated=True)
    assert metrics["cachewise_calls_total"] == total["calls"] == 5
    assert metrics["cachewise_call_errors_total"] == total["errors"] == 1
    for kind, field in [
        ("input", "input_tokens"),
        ("cache_read", "cache_read_input_tokens"),
        ("output", "output_tokens"),
    ]:
        assert metrics[f"cachewise_tokens_total/{kind}"] == total["usage"][field]
    assert metrics["cachewise_cost_usd_total"] == pytest.approx(total["cost_usd"], abs=1e-9)


def _parse_metrics(page: str) -> dict[str, float]:
    sums: dict[str, float] = {}
    for line in page.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name_labels, value = line.rsplit(" ", 1)
        name = name_labels.split("{")[0]
        if 'kind="' in name_labels:
            name += "/" + name_labels.split('kind="')[1].split('"')[0]
        sums[name] = sums.get(name, 0.0) + float(value)
    return sums


def test_the_key_never_reaches_the_disk(emulator: Emulator, tmp_path: Path) -> None:
    key = "sk-ant-api03-SECRETSECRETSECRET-4471"
    with Proxy(emulator.base_url, ledger=str(tmp_path / "l.db"), store_prompts=True) as proxy:
        ask(proxy.client(api_key=key), "Where is my order?")
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert b"SECRETSECRETSECRET" not in written
    assert key_workspace(key) in {r.workspace for r in rows_of(tmp_path / "l.db")}


def test_other_paths_pass_through(emulator: Emulator) -> None:
    with Proxy(emulator.base_url) as proxy:
        client = proxy.client()
        count = client.messages.count_tokens(
            model=MODEL, system=SYSTEM, messages=[{"role": "user", "content": "x"}]
        )
        models = client.models.list()
    assert count.input_tokens > 2000
    assert any(m.id == MODEL for m in models.data)


# -- what a hostile or careless client meets ------------------------------------------------


async def _send(app: Any, method: str, path: str, **kwargs: Any) -> httpx2.Response:
    try:
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1"
        ) as client:
            return await client.request(method, path, **kwargs)
    finally:
        await app.state.proxy.aclose()


HEADERS = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"model": 5}',
        b'{"model": "claude-sonnet-4-6", "max_tokens": NaN, "messages": []}',
        b'{"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": '
        + b"[" * 5000
        + b"]" * 5000
        + b"}",
        b'{"model": "claude-sonnet-4-6", "max_tokens": 5, "system": "\\ud800", "messages": []}',
    ],
)
def test_a_body_that_does_not_parse_goes_as_it_came_and_the_api_answers(
    emulator: Emulator, body: bytes
) -> None:
    with Proxy(emulator.base_url) as proxy:
        answer = asyncio.run(
            _send(proxy.app, "POST", "/v1/messages", content=body, headers=HEADERS)
        )
    assert 400 <= answer.status_code < 500
    assert answer.json()["type"] == "error"


def test_a_body_past_the_limit_is_the_apis_413(emulator: Emulator) -> None:
    with Proxy(emulator.base_url, max_body_bytes=1000) as proxy:
        answer = asyncio.run(
            _send(proxy.app, "POST", "/v1/messages", content=b"x" * 2000, headers=HEADERS)
        )
    assert answer.status_code == 413
    assert answer.json()["error"]["type"] == "request_too_large"
    assert emulator.stats()["requests"] == 0


def test_an_unreachable_upstream_is_a_502_in_the_apis_shape(tmp_path: Path) -> None:
    from cachewise.server.net import listen

    sock = listen("127.0.0.1", 0)
    dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()  # nothing listens there now
    with (
        Proxy(dead, ledger=str(tmp_path / "l.db")) as proxy,
        pytest.raises(anthropic.InternalServerError) as caught,
    ):
        ask(proxy.client(max_retries=0), "hello")
    assert caught.value.status_code == 502
    row = rows_of(tmp_path / "l.db")[0]
    assert row.status == "error" and row.error_type == "upstream_ConnectError"


class Capture:
    """An upstream that keeps what it was sent and answers a fixed message."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        self.targets: list[bytes] = []  # each request's path and query as they came on the wire

    async def handle(self, request: Request) -> JSONResponse:
        self.seen.append((request.url.path, dict(request.headers), await request.body()))
        self.targets.append(request.scope["raw_path"] + b"?" + request.scope["query_string"])
        return JSONResponse(
            {
                "id": "msg_capture",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [{"type": "text", "text": "ok"}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 3, "output_tokens": 1},
            },
            headers={"request-id": "req_capture"},
        )

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=["GET", "POST"])])


def test_the_token_is_required_and_never_forwarded() -> None:
    capture = Capture()
    upstream = _serve(capture.app())
    try:
        with Proxy(upstream.base_url, auth_token="tok-123") as proxy:
            refused = proxy.client(max_retries=0)
            with pytest.raises(anthropic.AuthenticationError):
                ask(refused, "hello")
            allowed = proxy.client(default_headers={"x-cachewise-token": "tok-123"})
            ask(allowed, "hello")
    finally:
        upstream.stop()
    assert len(capture.seen) == 1
    path, headers, _ = capture.seen[0]
    assert path == "/v1/messages"
    assert "x-cachewise-token" not in headers
    # The client's key goes upstream as it came (this SDK sends it as a bearer token).
    assert "sk-emulator-test" in (headers.get("x-api-key") or headers["authorization"])


def test_no_request_can_point_the_proxy_elsewhere() -> None:
    capture = Capture()
    upstream = _serve(capture.app())
    try:
        with Proxy(upstream.base_url) as proxy:
            for path in ["//evil.example/v1/models", "/@evil.example/v1/models"]:
                assert asyncio.run(_raw_get(proxy.app, path)) == 200
    finally:
        upstream.stop()
    assert [p for p, _, _ in capture.seen] == [
        "//evil.example/v1/models",
        "/@evil.example/v1/models",
    ]


def test_a_path_and_query_go_upstream_as_the_client_encoded_them() -> None:
    capture = Capture()
    upstream = _serve(capture.app())
    try:
        with Proxy(upstream.base_url) as proxy:
            target = "/v1/files/file%2F01%20a?after_id=x%2By&limit=2"
            assert asyncio.run(_raw_get(proxy.app, target)) == 200
    finally:
        upstream.stop()
    assert capture.targets == [b"/v1/files/file%2F01%20a?after_id=x%2By&limit=2"]


def test_a_foreign_host_name_is_refused_on_loopback(emulator: Emulator) -> None:
    with Proxy(emulator.base_url) as proxy:
        answer = asyncio.run(
            _send(proxy.app, "GET", "/metrics", headers={"host": "rebound.attacker.example"})
        )
    assert answer.status_code == 403


async def _raw_get(app: Any, target: str) -> int:
    """A GET with exactly this path and query (an HTTP client would read `//host/...` as a
    new host)."""
    from urllib.parse import unquote

    raw_path, _, query = target.partition("?")
    sent: list[Any] = []
    incoming = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop()
        await asyncio.Event().wait()  # the client stays until the answer is complete
        raise AssertionError("unreachable")

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "headers": [(b"host", b"127.0.0.1"), (b"x-api-key", b"sk-test")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "scheme": "http",
    }
    try:
        await app(scope, receive, send)
    finally:
        await app.state.proxy.aclose()
    return int(sent[0]["status"])


def _serve(app: Any) -> Any:
    from cachewise.testing import _Served

    served = _Served(app)
    served._serve()
    return served


def test_planned_bodies_change_only_cache_control() -> None:
    capture = Capture()
    upstream = _serve(capture.app())
    body = {
        "model": MODEL,
        "max_tokens": 16,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": "Grüße — naïve café ✓"}],
    }
    try:
        with Proxy(upstream.base_url) as proxy:
            asyncio.run(_send(proxy.app, "POST", "/v1/messages", json=body, headers=HEADERS))
    finally:
        upstream.stop()
    sent = json.loads(capture.seen[0][2])
    assert sent["system"] == [{"type": "text", "text": SYSTEM, "cache_control": CC}]
    assert {k: v for k, v in sent.items() if k != "system"} == {
        k: v for k, v in body.items() if k != "system"
    }


def test_the_dashboard_at_the_root_shows_the_reports_totals_in_chromium(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The proxy's own page: after calls through it, a real headless Chromium reads the same
    calls, dollars and hit rate as `report` and `/metrics`."""
    from test_dashboard import chromium

    executable = chromium()
    from playwright.sync_api import sync_playwright

    ledger = tmp_path / "l.db"
    with Proxy(emulator.base_url, ledger=str(ledger), include_emulated=True) as proxy:
        client = proxy.client()
        for i in range(3):
            ask(client, f"Where is order {4471 + i}?")
        metrics = _parse_metrics(proxy.metrics())
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, headless=True)
            try:
                page = browser.new_page()
                page.goto(proxy.base_url + "/")
                page.wait_for_selector("body[data-ready='1']", timeout=15_000)

                def value(test_id: str) -> float:
                    return float(page.get_by_test_id(test_id).get_attribute("data-value") or "nan")

                shown = {k: value(k) for k in ("calls", "cost", "hit-rate")}
                page.screenshot(path=str(tmp_path / "proxy-dashboard.png"), full_page=True)
            finally:
                browser.close()
    with Ledger(ledger) as led:
        total = report(led, include_emulated=True)
    assert shown["calls"] == total["calls"] == metrics["cachewise_calls_total"] == 3
    assert shown["cost"] == total["cost_usd"]
    assert metrics["cachewise_cost_usd_total"] == pytest.approx(total["cost_usd"], abs=1e-12)
    assert shown["hit-rate"] == total["cache_hit_rate"]
