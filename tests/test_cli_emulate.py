"""`cachewise emulate` as a user runs it: a real process on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anthropic
import httpx2
import pytest
from click.testing import CliRunner

from cachewise.cli import main
from conftest import CC, block, text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(
    *flags: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`cachewise emulate` on a free port with these flags (and variables), until the block ends."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cachewise", "emulate", "--port", str(port), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx2.get(url + "/v1/models", headers={"x-api-key": "k"}, timeout=1)
            break
        except httpx2.TransportError:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "emulator did not start"
            time.sleep(0.1)
    try:
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture
def server() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    with serve("--ttft-ms", "0", "--prefill-ms-per-1k", "0", "--output-tokens-per-s", "0") as s:
        yield s


def test_emulate_serves_the_sdk_and_prints_its_url(
    server: tuple[str, subprocess.Popen[str]],
) -> None:
    url, proc = server
    client = anthropic.Anthropic(api_key="sk-local", base_url=url)
    kw = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 20,
        "system": [block(text(1500, "cli"), CC)],
        "messages": [{"role": "user", "content": "Hi"}],
    }
    with client:
        first, second = client.messages.create(**kw), client.messages.create(**kw)
    assert (first.usage.cache_creation_input_tokens or 0) > 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    assert url in out and "sk-local" not in out


def test_emulate_on_the_virtual_clock_serves_a_read_on_a_sequential_repeat() -> None:
    kw = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 20,
        "system": [block(text(1500, "virtual"), CC)],
        "messages": [{"role": "user", "content": "Hi"}],
    }
    with (
        serve("--clock", "virtual", "--ttft-ms", "200", "--output-tokens-per-s", "0") as (url, _),
        anthropic.Anthropic(api_key="sk-local", base_url=url) as client,
    ):
        first, second = client.messages.create(**kw), client.messages.create(**kw)
    assert (first.usage.cache_creation_input_tokens or 0) > 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens


def test_bad_workspaces_file_names_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "ws.json"
    bad.write_text('{\n  "sk-a": "wrkspc_a",\n  "sk-b": \n}\n')
    result = CliRunner().invoke(main, ["emulate", "--workspaces", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:4" in result.output and "Traceback" not in result.output


def test_bad_fault_spec_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["emulate", "--faults", "teapot:0.5"])
    assert result.exit_code == 2 and "--faults" in result.output


def test_a_port_in_use_is_said_before_any_banner() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["emulate", "--port", str(port)])
    assert result.exit_code == 2 and "port" in result.output and "in use" in result.output
    assert "cachewise emulator on" not in result.output


def test_an_ipv6_host_is_bracketed_and_a_wide_bind_is_warned_about() -> None:
    docker = {"x-api-key": "k", "host": "host.docker.internal"}
    with serve("--host", "::") as (url, proc):
        assert proc.stdout is not None
        banner = proc.stdout.readline() + proc.stdout.readline() + proc.stdout.readline()
        assert httpx2.get(url + "/v1/models", headers=docker).status_code == 200
    assert "export ANTHROPIC_BASE_URL=http://[::1]:" in banner
    assert "not loopback only" in banner


def test_the_control_api_judges_the_socket_peer_not_forwarding_headers() -> None:
    """Containers often set FORWARDED_ALLOW_IPS=*, with which uvicorn would take the client's
    address from X-Forwarded-For: a remote caller could claim 127.0.0.1, and a loopback one
    (this test) would be refused for claiming anything else."""
    with serve(env={"FORWARDED_ALLOW_IPS": "*"}) as (url, _):
        r = httpx2.get(url + "/_emulator/stats", headers={"x-forwarded-for": "10.1.2.3"})
        foreign = httpx2.get(url + "/v1/models", headers={"x-api-key": "k", "host": "evil.example"})
    assert r.status_code == 200 and r.json()["requests"] == 0
    assert foreign.status_code == 403  # bound to loopback: loopback Host names only


def test_loopback_is_loopback_however_it_is_written() -> None:
    from cachewise.server.net import is_loopback

    for host in ("127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "[::1]", "localhost"):
        assert is_loopback(host), host
    for host in ("10.0.0.2", "::ffff:10.0.0.2", "2001:db8::1", "example.com", "testclient", ""):
        assert not is_loopback(host), host
