"""examples/n8n stays what its generator writes, cacheable on every model, and recognisable in a
recorded call (the real n8n run is `make n8n-e2e`, outside the test suite)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cachewise.catalog import catalog
from cachewise.request import parse_request
from cachewise.server.replies import encode_event, sse_events

SCRIPTS = Path(__file__).parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

import n8n_examples  # noqa: E402
import n8n_recorder  # noqa: E402


def test_checked_in_files_are_what_the_generator_writes(tmp_path: Path) -> None:
    for written in n8n_examples.write(tmp_path):
        checked_in = n8n_examples.OUT / written.name
        assert checked_in.read_text() == written.read_text(), (
            f"{checked_in.name} is stale: run python scripts/n8n_examples.py"
        )


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "claude-haiku-4-5"])
def test_the_system_prompt_is_over_every_cache_minimum(model: str) -> None:
    body = {
        "model": model,
        "max_tokens": 10,
        "system": n8n_examples.system_prompt("native"),
        "messages": [{"role": "user", "content": "hi"}],
    }
    prompt = parse_request(body)
    assert prompt.total_tokens > max(catalog().get(model).min_cacheable_tokens or 0, 4096)


@pytest.mark.parametrize("kind", n8n_examples.KINDS)
def test_each_workflow_starts_at_its_webhook_and_uses_the_credential(kind: str) -> None:
    flow = n8n_examples.workflow(kind)
    assert len(flow["id"]) == 16  # n8n's id length
    hook = flow["nodes"][0]
    assert hook["parameters"]["path"] == f"cachewise-{kind}"
    assert hook["parameters"]["httpMethod"] == "POST"
    creds = [n["credentials"]["anthropicApi"] for n in flow["nodes"] if "credentials" in n]
    assert creds and all(c["id"] == n8n_examples.CREDENTIAL["id"] for c in creds)
    text = json.dumps(flow)
    assert f"[workflow: {kind}]" in text
    if kind in ("chain", "agent"):
        assert '"promptCaching": "5m"' in text


def test_the_recorder_tags_a_call_by_workflow_and_instance() -> None:
    body = {
        "system": [{"type": "text", "text": n8n_examples.system_prompt("agent")}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Run 2 on n8n-b: hi"}]}],
    }
    assert n8n_recorder.tags(body) == ("agent", "n8n-b")
    assert n8n_recorder.tags({"system": "plain", "messages": []}) == (None, None)


def test_the_recorder_reads_usage_from_json_and_from_a_stream() -> None:
    usage = {
        "input_tokens": 5,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 6000,
        "output_tokens": 0,
    }
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    as_json = json.dumps(message).encode()
    assert n8n_recorder.usage_of(as_json, "application/json") == message["usage"]
    stream = b"".join(encode_event(event, data) for event, data in sse_events(message))
    streamed = n8n_recorder.usage_of(stream, "text/event-stream")
    assert streamed is not None
    assert streamed["cache_read_input_tokens"] == 6000
    assert streamed["output_tokens"] == 1
