"""The dashboard: its JSON is the report's, and in a real headless Chromium the page renders the
same totals as `cachewise report --format json` (a screenshot is kept as a test artifact)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from cachewise.cli import main
from cachewise.dashboard import dashboard_app, summary
from cachewise.ledger import CallRecord, Ledger
from cachewise.report import report
from cachewise.usage import Usage
from conftest import require_or_skip

T0 = 1_763_769_600.0  # 2025-11-22 00:00 UTC
SCREENSHOTS = "CACHEWISE_TEST_ARTIFACTS"  # a folder to copy the screenshot to, when set


def call(t: float, **kw: object) -> CallRecord:
    base: dict[str, object] = {
        "started_at": t,
        "model": "claude-sonnet-4-6",
        "workspace": "key_a",
        "usage": Usage(input_tokens=40, output_tokens=200),
        "cost_usd": Decimal("0.0042"),
        "cost_without_cache_usd": Decimal("0.0190"),
        "prefix_hash": "pfx_support",
        "wire": "ok",
    }
    base.update(kw)
    return CallRecord(**base)  # type: ignore[arg-type]


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """Five days of a support bot: writes, reads, a few misses, gate waits, a lost marker."""
    with Ledger(tmp_path / "ledger.db") as led:
        for day in range(5):
            t = T0 + day * 86_400
            led.record(
                call(
                    t,
                    usage=Usage(input_tokens=40, ephemeral_5m_input_tokens=6000, output_tokens=200),
                    cost_usd=Decimal("0.0285"),
                    cost_without_cache_usd=Decimal("0.0220"),
                    prefix_hashes=["pfx_support"],
                    cause="cold_start",
                    gate_role="scout",
                )
            )
            for n in range(1, 8 + day):
                led.record(
                    call(
                        t + n * 60,
                        usage=Usage(
                            input_tokens=40, cache_read_input_tokens=6000, output_tokens=200
                        ),
                        read_hash="pfx_support",
                        cause="hit",
                        gate_role="follower",
                        gate_wait_s=0.4 + n / 10,
                    )
                )
            led.record(
                call(
                    t + 3600 * 5,
                    model="claude-opus-4-8",
                    prefix_hash="pfx_research",
                    cost_usd=Decimal("0.31"),
                    cost_without_cache_usd=Decimal("0.31"),
                    cause="prefix_changed",
                    wire="lost" if day == 3 else "changed" if day == 4 else "ok",
                )
            )
        led.record(call(T0 + 86_400 * 2 + 50, cause="likely_server_side"))
        yield led


def report_json(ledger: Ledger) -> dict[str, object]:
    out = CliRunner().invoke(main, ["report", "--ledger", ledger.target, "--format", "json"])
    assert out.exit_code == 0, out.output
    data: dict[str, object] = json.loads(out.output)
    return data


def test_the_summary_is_the_report(ledger: Ledger) -> None:
    data = summary(ledger)
    assert data["totals"] == report_json(ledger)
    assert data["series"]["by"] == "day" and len(data["series"]["points"]) == 5
    by_day = report(ledger, by="day")["groups"]  # the hours folded into days: the same sums
    assert [
        (p["at"], p["cost_usd"], p["cost_without_cache_usd"]) for p in data["series"]["points"]
    ] == [(g["group"], g["cost_usd"], g["cost_without_cache_usd"]) for g in by_day]
    assert data["causes"] == [
        {"cause": g.pop("group"), **g} for g in report(ledger, by="cause")["groups"]
    ]
    assert [p["group"] for p in data["prefixes"]] == ["pfx_research", "pfx_support"]
    totals = data["totals"]
    assert totals["markers_lost"] == 1 and totals["markers_changed"] == 1
    assert totals["predicted_reads_not_served"] == 1
    assert totals["gate_waits"]["follower"]["waited"] == sum(range(7, 12))
    saved = totals["cost_without_cache_usd"] - totals["cost_usd"]
    assert data["saved_usd"] == pytest.approx(saved, abs=1e-12)


def test_the_api_and_the_page_over_http(ledger: Ledger, tmp_path: Path) -> None:
    client = TestClient(dashboard_app(ledger.target))
    page = client.get("/")
    assert page.status_code == 200 and "<svg" in page.text
    assert "'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.replace("http://www.w3.org/2000/svg", "")  # nothing fetched
    assert client.get("/api/summary").json()["totals"] == report_json(ledger)
    missing = TestClient(dashboard_app(tmp_path / "none.db")).get("/api/summary")
    assert missing.status_code == 503 and "no ledger" in missing.json()["error"]
    assert not (tmp_path / "none.db").exists()  # reading never creates a ledger


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(ledger: Ledger) -> Iterator[str]:
    """The dashboard on a loopback port, in a uvicorn server on a thread; stopped afterwards."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        dashboard_app(ledger.target), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        threading.Event().wait(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(10)


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require_or_skip("playwright is not installed (pip install 'cachewise[dev]')")
    if path is None:
        require_or_skip("no chromium on PATH (Debian: apt-get install chromium)")
    assert path is not None
    return path


def test_the_page_in_headless_chromium(ledger: Ledger, served: str, tmp_path: Path) -> None:
    executable = chromium()
    from playwright.sync_api import sync_playwright

    expected = report_json(ledger)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda r: errors.append(r.url) if served not in r.url else None)
            page.goto(served)
            page.wait_for_selector("body[data-ready='1']", timeout=15_000)

            def value(test_id: str) -> float:
                return float(page.get_by_test_id(test_id).get_attribute("data-value") or "nan")

            assert value("calls") == expected["calls"]
            assert value("cost") == expected["cost_usd"]
            assert value("hit-rate") == expected["cache_hit_rate"]
            assert value("markers-lost") == expected["markers_lost"]
            saved = expected["cost_without_cache_usd"] - expected["cost_usd"]  # type: ignore[operator]
            assert value("saved") == pytest.approx(saved, abs=1e-12)
            assert page.get_by_test_id("calls").inner_text() == f"{expected['calls']:,}"
            assert page.locator("#series path").count() == 3  # saved area, two lines
            assert page.locator("#causes rect").count() == len(expected["misses_by_cause"])  # type: ignore[arg-type]
            assert page.locator("#prefixes rect").count() == 2
            assert page.locator("#gate tbody tr").count() == 2
            assert errors == []  # no script error, no request anywhere else
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if os.environ.get(SCREENSHOTS):
        folder = Path(os.environ[SCREENSHOTS])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, folder / "dashboard.png")


def test_the_command_serves_on_loopback(ledger: Ledger, tmp_path: Path) -> None:
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cachewise",
            "dashboard",
            "--ledger",
            ledger.target,
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/summary") as answer:
                    data = json.load(answer)
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "it never answered"
                time.sleep(0.2)
        assert data["totals"]["calls"] == report_json(ledger)["calls"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert f"http://127.0.0.1:{port}/" in out.decode()
