"""The dashboard picture in docs/n8n.md: the requests n8n sent in the end-to-end run
(examples/n8n/sent-by-n8n.json, one per workflow), replayed through `cachewise proxy` to the
emulator with new questions, then the proxy's `/` in headless Chromium.

    python scripts/dashboard_screenshot.py [docs/images/dashboard-n8n.png]

Needs Chromium (Debian's package) and Playwright (the `dev` extra).
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import tempfile
from pathlib import Path

import httpx2

from cachewise.testing import Emulator, Proxy

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "Where is shipment LK-2026-11873, booked on 2026-11-28?",
    "Can invoice INV-40417 ($2,318.40) be split across two cost centres?",
    "What is the cut-off for same-day dispatch from dock 7?",
    "Order 55102 arrived damaged on 2026-12-01: how do I file a claim?",
    "Which customs code applies to 40 pallets of ceramic tiles to Rotterdam?",
    "Can I move delivery of PO-88213 from 2026-12-04 to 2026-12-09?",
]


def _asked(body: dict, question: str) -> dict:
    """The same request with another question in its last user turn."""
    body = copy.deepcopy(body)
    last = body["messages"][-1]
    if isinstance(last["content"], str):
        last["content"] = question
    else:
        texts = [b for b in last["content"] if b.get("type") == "text"]
        texts[-1]["text"] = question
    return body


def main(out: Path) -> None:
    sent = json.loads((ROOT / "examples/n8n/sent-by-n8n.json").read_text())
    folder = Path(tempfile.mkdtemp(prefix="cachewise-shot-"))
    try:
        with (
            Emulator(clock="real", ttft_ms=150.0) as emu,
            Proxy(emu.base_url, ledger=str(folder / "ledger.db"), include_emulated=True) as proxy,
            httpx2.Client(base_url=proxy.base_url, timeout=60) as client,
        ):
            for question in QUESTIONS:
                for call in sent:
                    headers = {
                        k: v
                        for k, v in call["headers"].items()
                        if k not in ("x-api-key", "accept-encoding", "content-length", "host")
                    }
                    headers["x-api-key"] = "sk-n8n-demo"
                    answer = client.post(
                        call["path"], json=_asked(call["body"], question), headers=headers
                    )
                    answer.raise_for_status()
            _screenshot(proxy.base_url + "/", out)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"wrote {out}")


def _screenshot(page_url: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        sys.exit("needs chromium (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(page_url)
            page.wait_for_selector("body[data-ready='1']", timeout=15_000)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs/images/dashboard-n8n.png")
