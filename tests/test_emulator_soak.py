"""The emulator under endless unique traffic: its memory and its cache table stay flat.

The soak runs in a fresh interpreter (this file, run as a script) so that its resident memory is
the emulator's own, not whatever earlier tests left behind.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cachewise.server.app import create_app
from cachewise.testing import TEST_CONFIG
from conftest import asgi_post, require_or_skip

REQUESTS = 5_000
BREAKPOINTS = 4  # each request writes four new prefixes: 20,000 in all
STEP = 4.0  # virtual seconds between requests
KEPT = 300 + 3600  # a 5m entry is kept its TTL and an hour
STATM = Path("/proc/self/statm")


def resident() -> int:
    """Resident memory now, in bytes (not the peak, which a child inherits from its parent)."""
    return int(STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def image(n: int) -> dict[str, Any]:
    """A 1000x1000 PNG header, unique per `n`: 1,334 tokens by formula, so no text is counted and
    the soak measures the emulator, not the tokenizer's vocabularies."""
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", 1000, 1000) + b"\x08\x02"
    data = base64.b64encode(header + struct.pack(">Q", n)).decode()
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": data},
        "cache_control": {"type": "ephemeral"},
    }


async def soak() -> dict[str, Any]:
    app = create_app(TEST_CONFIG)
    state = app.state.emulator
    sizes, most = [], 0
    for i in range(REQUESTS):
        content = [image(i * BREAKPOINTS + k) for k in range(BREAKPOINTS)]
        body = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 0,  # a pre-warm: it writes, and there is no reply to count
            "messages": [{"role": "user", "content": content}],
        }
        status, reply = await asgi_post(app, "/v1/messages", json.dumps(body).encode())
        assert status == 200 and reply["usage"]["cache_read_input_tokens"] == 0, reply
        state.clock.advance(STEP)
        most = max(most, len(state.engine.entries))
        if (i + 1) % (REQUESTS // 4) == 0:
            sizes.append(resident())
    return {"resident": sizes, "most": most}


@pytest.mark.soak
def test_the_emulator_stays_flat_over_20000_unique_prefixes() -> None:
    """20,000 prefixes written on a virtual clock, each expiring 5 minutes later: once the first
    quarter has filled the last TTL and hour, the resident memory grows by less than 10%
    over the other three, and the engine's table never holds more than the last TTL and hour."""
    if not STATM.exists():
        require_or_skip("no /proc/self/statm to read resident memory from")
    run = subprocess.run(
        [sys.executable, __file__], capture_output=True, text=True, timeout=120, check=True
    )
    result = json.loads(run.stdout)
    first, *_, last = result["resident"]
    assert last <= 1.10 * first, result
    assert result["most"] <= BREAKPOINTS * KEPT / STEP, result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(soak())))
