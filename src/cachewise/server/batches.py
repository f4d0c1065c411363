"""Message Batches in the emulator: created, processed in the background in arrival order, at
batch prices, with the batch's own cache behaviour.

Caching inside a batch is best effort on the real API, because requests run concurrently and in
any order. The emulator makes that concrete and reproducible: requests run in arrival order in
waves of `batch_concurrency` that start together (so the first wave over a cold prefix all pay the
write), and by default batches keep a cache apart from the Messages API's
(`batch_cache="separate"`), because a batch does not reliably read what the Messages API wrote.
Prime a batch with a batch.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..catalog import catalog
from ..engine import Account
from ..errors import InvalidRequest, UnknownModel
from ..request import parse_request
from ..tokens import default_tokenizer
from .api import ApiError, api_error_response, check_version, headers, read_json
from .replies import build_reply, message
from .state import EmulatorState

__all__ = ["BatchStore", "routes"]

NOT_IN_BATCHES = ("stream", "speed")


def _iso(t: datetime | None) -> str | None:
    return t.isoformat().replace("+00:00", "Z") if t else None


@dataclass
class Batch:
    id: str
    workspace: str
    requests: list[dict[str, Any]]
    created_at: datetime
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    ended_at: datetime | None = None
    cancel_initiated_at: datetime | None = None
    results_url: str | None = None

    @property
    def status(self) -> str:
        if self.ended_at:
            return "ended"
        return "canceling" if self.cancel_initiated_at else "in_progress"

    def to_json(self) -> dict[str, Any]:
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if self.ended_at:
            for r in self.results.values():
                counts[r["result"]["type"]] += 1
        else:
            counts["processing"] = len(self.requests)
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.status,
            "request_counts": counts,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.created_at + timedelta(hours=24)),
            "ended_at": _iso(self.ended_at),
            "cancel_initiated_at": _iso(self.cancel_initiated_at),
            "archived_at": None,
            "results_url": self.results_url if self.ended_at else None,
        }


class BatchStore:
    """The batches of one emulator, over its state (`app.state.batches`)."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.batches: dict[str, Batch] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def create(self, workspace: str, requests: list[dict[str, Any]], base_url: str) -> Batch:
        batch = Batch(self.state.next_id("msgbatch"), workspace, requests, datetime.now(UTC))
        batch.results_url = f"{base_url}v1/messages/batches/{batch.id}/results"
        self.batches[batch.id] = batch
        task = asyncio.get_running_loop().create_task(self._process(batch))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return batch

    async def _process(self, batch: Batch) -> None:
        st = self.state
        wave = max(1, st.config.batch_concurrency)
        namespace = (
            batch.workspace if st.config.batch_cache == "shared" else batch.workspace + "/batch"
        )
        for start in range(0, len(batch.requests), wave):
            await asyncio.sleep(0)  # let cancel and retrieve in between waves
            if batch.cancel_initiated_at:
                break
            now = st.clock.now()
            # One wave starts together, and its results begin together when it ends: nobody in
            # it can read what another in it writes, and the next wave reads it all.
            accounts = []
            for item in batch.requests[start : start + wave]:
                result, account = self._run(item, namespace, now)
                batch.results[item["custom_id"]] = result
                if account is not None:
                    accounts.append(account)
            await asyncio.sleep(st.ttft(0))
            for account in accounts:
                st.engine.begin(account, st.clock.now())
        for item in batch.requests:
            batch.results.setdefault(
                item["custom_id"], {"custom_id": item["custom_id"], "result": {"type": "canceled"}}
            )
        batch.ended_at = datetime.now(UTC)

    def _run(
        self, item: dict[str, Any], namespace: str, now: float
    ) -> tuple[dict[str, Any], Account | None]:
        """The request's result line, and its account if it succeeded (its entries pending)."""
        st = self.state
        params = item["params"]
        custom_id = item["custom_id"]
        try:
            for name in NOT_IN_BATCHES:
                if params.get(name):
                    raise InvalidRequest(f"{name}: not supported in Message Batches")
            if params.get("max_tokens") == 0:
                raise InvalidRequest(
                    "max_tokens: 0 (cache pre-warming) is not supported in Message Batches"
                )
            prompt = parse_request(params)
            reply = build_reply(params, prompt, default_tokenizer())
            account = st.engine.account(
                prompt,
                now=now,
                workspace=namespace,
                ready_at=math.inf,
                output_tokens=reply.output_tokens,
            )
        except UnknownModel as exc:
            return _errored(custom_id, "not_found_error", f"model: {exc.model}"), None
        except InvalidRequest as exc:
            return _errored(custom_id, exc.error_type, exc.message), None
        except Exception as exc:  # one broken request must not stall the whole batch
            return _errored(custom_id, "api_error", f"internal error: {type(exc).__name__}"), None
        st.stats.record(200, account.usage)
        msg = message(st.next_id("msg"), prompt.model.id, reply, account, service_tier="batch")
        return {"custom_id": custom_id, "result": {"type": "succeeded", "message": msg}}, account

    def get(self, batch_id: str, workspace: str) -> Batch:
        batch = self.batches.get(batch_id)
        if batch is None or batch.workspace != workspace:
            raise ApiError(404, "not_found_error", f"message batch {batch_id} not found")
        return batch


def _errored(custom_id: str, error_type: str, text: str) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "result": {
            "type": "errored",
            "error": {"type": "error", "error": {"type": error_type, "message": text}},
        },
    }


def _validate(body: Any) -> list[dict[str, Any]]:
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        raise ApiError(400, "invalid_request_error", "requests: Field required (a non-empty list)")
    limits = catalog().batches
    if len(requests) > limits.max_requests:
        raise ApiError(
            400,
            "invalid_request_error",
            f"requests: at most {limits.max_requests} requests per batch",
        )
    seen: set[str] = set()
    for i, item in enumerate(requests):
        if not isinstance(item, dict):
            raise ApiError(400, "invalid_request_error", f"requests.{i}: Input should be an object")
        cid = item.get("custom_id")
        if not isinstance(cid, str) or not limits.custom_id.fullmatch(cid):
            raise ApiError(
                400,
                "invalid_request_error",
                f"requests.{i}.custom_id: must match {limits.custom_id.pattern}",
            )
        if cid in seen:
            raise ApiError(
                400, "invalid_request_error", f"requests.{i}.custom_id: duplicate {cid!r}"
            )
        seen.add(cid)
        if not isinstance(item.get("params"), dict):
            raise ApiError(400, "invalid_request_error", f"requests.{i}.params: Field required")
    return requests


async def _create(request: Request) -> Response:
    st: EmulatorState = request.app.state.emulator
    rid = st.next_id("req")
    workspace = None
    try:
        workspace = st.workspace(request)
        check_version(request)
        requests = _validate(await read_json(request, catalog().batches.max_bytes))
    except ApiError as err:
        return api_error_response(err, rid, workspace)
    store: BatchStore = request.app.state.batches
    batch = store.create(workspace, requests, str(request.base_url))
    return JSONResponse(batch.to_json(), headers=headers(rid, workspace))


async def _one(request: Request) -> Response:
    st: EmulatorState = request.app.state.emulator
    rid = st.next_id("req")
    workspace = None
    try:
        workspace = st.workspace(request)
        store: BatchStore = request.app.state.batches
        batch = store.get(request.path_params["batch_id"], workspace)
        action = request.path_params.get("action")
        if request.method == "DELETE":
            if not batch.ended_at:
                raise ApiError(
                    400, "invalid_request_error", "a batch can be deleted only once it has ended"
                )
            del store.batches[batch.id]
            return JSONResponse(
                {"id": batch.id, "type": "message_batch_deleted"}, headers=headers(rid, workspace)
            )
        if action == "cancel":
            if not batch.ended_at and not batch.cancel_initiated_at:
                batch.cancel_initiated_at = datetime.now(UTC)
            return JSONResponse(batch.to_json(), headers=headers(rid, workspace))
        if action == "results":
            if not batch.ended_at:
                raise ApiError(
                    400,
                    "invalid_request_error",
                    f"message batch {batch.id} has not ended; results are not ready",
                )
            lines = [json.dumps(batch.results[item["custom_id"]]) for item in batch.requests]
            return Response(
                "\n".join(lines) + "\n",
                media_type="application/x-jsonl",
                headers=headers(rid, workspace),
            )
        return JSONResponse(batch.to_json(), headers=headers(rid, workspace))
    except ApiError as err:
        return api_error_response(err, rid, workspace)


async def _list(request: Request) -> Response:
    st: EmulatorState = request.app.state.emulator
    rid = st.next_id("req")
    try:
        workspace = st.workspace(request)
    except ApiError as err:
        return api_error_response(err, rid)
    store: BatchStore = request.app.state.batches
    mine = [b.to_json() for b in reversed(store.batches.values()) if b.workspace == workspace]
    return JSONResponse(
        {
            "data": mine,
            "has_more": False,
            "first_id": mine[0]["id"] if mine else None,
            "last_id": mine[-1]["id"] if mine else None,
        },
        headers=headers(rid, workspace),
    )


def routes() -> list[Route]:
    return [
        Route("/v1/messages/batches", _create, methods=["POST"]),
        Route("/v1/messages/batches", _list, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", _one, methods=["GET", "DELETE"]),
        Route("/v1/messages/batches/{batch_id}/{action}", _one, methods=["GET", "POST"]),
    ]
