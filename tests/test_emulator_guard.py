"""Who may call the emulator: its control API answers this machine only, and no web page the
user opens can drive it (cross-site requests) or read it (DNS rebinding)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx2
import pytest

from cachewise.server.app import create_app
from cachewise.testing import TEST_CONFIG, Emulator

API = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
HELLO = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 5,
    "messages": [{"role": "user", "content": "x"}],
}


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator() as e:
        yield e


def test_a_text_plain_post_is_refused_and_changes_nothing(emu: Emulator) -> None:
    """A page can POST text/plain anywhere without asking; application/json needs a CORS
    preflight, which the emulator never grants."""
    emu.reset()
    httpx2.post(emu.base_url + "/v1/messages", json=HELLO, headers=API)
    for action, body in (("clock", b'{"advance_seconds": 400}'), ("reset", b"{}")):
        for kind in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"content-type": kind} if kind else {}
            r = httpx2.post(f"{emu.base_url}/_emulator/{action}", content=body, headers=headers)
            assert r.status_code == 415, (action, kind)
            assert r.json()["error"]["type"] == "invalid_request_error"
    assert emu.now() == 0 and emu.stats()["requests"] == 1
    json_utf8 = {"content-type": "Application/JSON; charset=utf-8"}
    r = httpx2.post(
        emu.base_url + "/_emulator/clock", content=b'{"advance_seconds": 5}', headers=json_utf8
    )
    assert r.status_code == 200 and emu.now() == 5


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://127.0.0.1.evil.example", "file://"]
)
def test_a_foreign_origin_is_refused_on_the_control_api(emu: Emulator, origin: str) -> None:
    emu.reset()
    headers = {"origin": origin}
    assert httpx2.get(emu.base_url + "/_emulator/cache", headers=headers).status_code == 403
    r = httpx2.post(emu.base_url + "/_emulator/clock", json={"advance_seconds": 9}, headers=headers)
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
    assert emu.now() == 0


@pytest.mark.parametrize(
    "origin",
    ["http://localhost:3000", "http://127.0.0.1:8787", "https://[::1]", "http://127.9.9.9"],
)
def test_a_loopback_origin_is_accepted(emu: Emulator, origin: str) -> None:
    r = httpx2.get(emu.base_url + "/_emulator/stats", headers={"origin": origin})
    assert r.status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8787", "127.0.0.1.nip.io", "[::2]"])
def test_a_foreign_host_is_refused_when_bound_to_loopback(emu: Emulator, host: str) -> None:
    """DNS rebinding: a name the attacker points at 127.0.0.1 lets their page read the answers,
    but the browser still sends that name as the Host."""
    api = {**API, "host": host}
    for r in (
        httpx2.get(emu.base_url + "/_emulator/cache", headers={"host": host}),
        httpx2.post(emu.base_url + "/v1/messages", json=HELLO, headers=api),
        httpx2.get(emu.base_url + "/v1/models", headers=api),
        httpx2.get(emu.base_url + "/v1/messages/batches", headers=api),
    ):
        assert r.status_code == 403, r.url
        assert r.json()["error"]["type"] == "permission_error"


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST:1", "127.0.0.1", "127.1.2.3:80", "[::1]:8787"]
)
def test_loopback_host_names_are_accepted(emu: Emulator, host: str) -> None:
    assert httpx2.get(emu.base_url + "/_emulator/stats", headers={"host": host}).status_code == 200
    r = httpx2.post(emu.base_url + "/v1/messages", json=HELLO, headers={**API, "host": host})
    assert r.status_code == 200


def test_bound_wider_the_api_takes_any_host_and_the_control_api_still_does_not() -> None:
    """Bound to 0.0.0.0 the emulator is meant to be reached by other names (n8n in Docker uses
    host.docker.internal); its control API stays this machine's, by name too."""
    with Emulator(loopback=False) as emu:
        headers = {**API, "host": "host.docker.internal:8787"}
        assert (
            httpx2.post(emu.base_url + "/v1/messages", json=HELLO, headers=headers).status_code
            == 200
        )
        assert httpx2.get(emu.base_url + "/v1/models", headers=headers).status_code == 200
        r = httpx2.get(emu.base_url + "/_emulator/stats", headers={"host": "host.docker.internal"})
        assert r.status_code == 403


def call(client: tuple[str, int], path: str, headers: dict[str, str]) -> httpx2.Response:
    """One request to the app in process, from a peer of our choosing."""

    async def go() -> httpx2.Response:
        transport = httpx2.ASGITransport(create_app(TEST_CONFIG), client=client)
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8787") as c:
            return await c.get(path, headers=headers)

    return asyncio.run(go())


def test_the_control_api_refuses_a_remote_peer_whatever_it_forwards() -> None:
    forged = {
        "x-forwarded-for": "127.0.0.1",
        "forwarded": "for=127.0.0.1",
        "x-real-ip": "127.0.0.1",
        "origin": "http://127.0.0.1:8787",
    }
    refused = call(("10.1.2.3", 50000), "/_emulator/stats", forged)
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
    assert call(("10.1.2.3", 50000), "/v1/models", API).status_code == 200
    assert call(("::ffff:127.0.0.1", 50000), "/_emulator/stats", {}).status_code == 200
