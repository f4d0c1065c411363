"""`cachewise.wrap`: one line turns an SDK client into one that places breakpoints, never races
itself on a cold prefix, and records what every call cost.

    client = cachewise.wrap(anthropic.Anthropic())
    message = client.messages.create(...)     # the SDK's own Message, unchanged

What the wrapper adds, in order: plan breakpoints for a request that has none (`plan="auto"`),
lint it (`lint="warn"|"error"|"off"`), hold it at the warm gate while another call writes the same
cold prefix (`gate="local"`), send it with the SDK, and commit a ledger row before returning.
Everything it does not wrap passes through to the SDK client.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .errors import CachewiseWarning, InputError, LintError
from .gate import Gate, Ticket, open_gate
from .ledger import Ledger, key_workspace, open_ledger
from .pipeline import Call, Pipeline, PlanOption
from .spool import Recorder

__all__ = ["wrap"]


LintOption = Literal["warn", "error", "off"]
GateOption = Literal["local", "off"]  # or a redis:// URL, or a Gate

# Arguments of `messages.create` that are the SDK's, not the request body's.
_SDK_OPTIONS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})


def wrap(
    client: Any,
    *,
    ledger: str | Path | Ledger | Literal[False] | None = None,
    plan: PlanOption = "auto",
    lint: LintOption = "warn",
    gate: GateOption | str | Gate = "local",
    tags: Any = None,
    store_prompts: bool = False,
    gate_timeout: float = 60.0,
    source: str = "wrap",
) -> Any:
    """Wrap an `anthropic.Anthropic` or `anthropic.AsyncAnthropic` client.

    Args:
        client: the SDK client (or a `with_options` copy).
        ledger: a path or `postgresql://` URL, a `Ledger`, None for the default ledger, or False
            to record nothing.
        plan: "auto" places breakpoints on requests that have none, learned from the requests
            this client sent before, and turns a request-level automatic marker into a plan that
            keeps it; "off" leaves markers alone. Markers you placed are always kept.
        lint: "warn" turns findings into `CachewiseWarning`s, "error" raises `LintError` before
            sending a request with an error-level finding, "off" skips it.
        gate: "local" (threads and tasks of this process), "off", a `redis://` URL (one scout
            per prefix across every process sharing that server: see `cachewise.fleet`), or
            a `Gate`.
        tags: JSON-serializable labels stored with every row (group by them in the report).
        store_prompts: also store each request body, in the ledger's `prompts` table.
        gate_timeout: the longest a call waits for the scout of its prefix.
    """
    import anthropic

    for name, value, allowed in (
        ("plan", plan, PlanOption),
        ("lint", lint, LintOption),
    ):
        choices = allowed.__args__  # type: ignore[attr-defined]
        if (isinstance(value, str) and value not in choices) or value is None:
            raise InputError(f"{value!r} is not one of {', '.join(map(repr, choices))}", field=name)
    chosen_gate = open_gate(gate, timeout=gate_timeout)  # before the ledger opens: it may refuse
    pipeline = Pipeline(
        recorder=None if ledger is False else Recorder(open_ledger(ledger)),
        plan=plan,
        lint=lint != "off",
        source=source,
        tags=tags,
        store_prompts=store_prompts,
    )
    state = _State(
        pipeline=pipeline,
        lint=lint,
        gate=chosen_gate,
        workspace=key_workspace(getattr(client, "api_key", None)),
    )
    if isinstance(client, anthropic.AsyncAnthropic):
        return _AsyncClient(client, state)
    return _Client(client, state)


@dataclass
class _State:
    pipeline: Pipeline
    lint: str
    gate: Gate
    workspace: str | None

    def prepare(self, kwargs: dict[str, Any]) -> tuple[Call, dict[str, Any]]:
        """The call, and the SDK's arguments for it (its options, and the body as planned)."""
        options = {k: v for k, v in kwargs.items() if k in _SDK_OPTIONS}
        body = {k: v for k, v in kwargs.items() if k not in _SDK_OPTIONS}
        for name in ("messages", "system", "tools"):
            if _holds_objects(body.get(name)):
                body[name] = _plain(body[name])
        call = self.pipeline.prepare(body, workspace=self.workspace)
        if self.lint != "off" and call.prompt is not None:
            findings = [f for f in call.findings if f.severity != "info"]
            errors = [f for f in findings if f.severity == "error"]
            if errors and self.lint == "error":
                raise LintError(errors)
            for f in findings:
                warnings.warn(
                    f"{f.rule} {f.path}: {f.message}. {f.suggestion}",
                    CachewiseWarning,
                    stacklevel=4,
                )
        return call, {**call.body, **options}

    @contextlib.contextmanager
    def failing(self, call: Call, ticket: Ticket, sent: dict[str, Any]) -> Iterator[None]:
        """A send that raises still releases its gate ticket and is recorded, then re-raises."""
        try:
            yield
        except BaseException as exc:
            self.gate.release(ticket, ok=False)
            self.record(call, sent, error=exc)
            raise

    def record(
        self,
        call: Call,
        sent: dict[str, Any],
        *,
        message: Any = None,
        usage: Any = None,
        error: BaseException | None = None,
        message_id: str | None = None,
    ) -> None:
        """Commit the call's row (and explain it) before the caller gets the result."""
        body = getattr(error, "body", None)
        inner = body.get("error") if isinstance(body, dict) else None
        kind = inner.get("type") if isinstance(inner, dict) else type(error).__name__
        self.pipeline.record(
            call,
            usage=usage if usage is not None else getattr(message, "usage", None),
            message_id=message_id or getattr(message, "id", None),
            request_id=getattr(message, "_request_id", None) or getattr(error, "request_id", None),
            error=kind if error is not None else None,
            http_status=getattr(error, "status_code", None),
            sent=_as_sent(sent),
        )


def _holds_objects(value: Any) -> bool:
    """Whether a list argument holds anything but JSON objects, at the two levels where an SDK
    object goes (a message, or a block of its content): the common request, all dicts, is not
    copied."""
    if not isinstance(value, list | tuple):
        return False
    for item in value:
        if not isinstance(item, dict):
            return True
        content = item.get("content")
        if isinstance(content, list | tuple) and not all(isinstance(b, dict) for b in content):
            return True
    return False


def _plain(value: Any) -> Any:
    """The JSON the SDK sends for an argument. Agent loops send a reply's content back as it came
    (`{"role": "assistant", "content": reply.content}`): SDK objects, which the parser does not
    read, so such a request was sent unplanned. They are dumped as the SDK dumps them."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "model_dump"):
        exclude = getattr(value, "__api_exclude__", None)
        dumped = value.model_dump(exclude_unset=True, mode="json", by_alias=True, exclude=exclude)
        return _plain(dumped)
    return value


def _as_sent(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The body the SDK sends for these arguments: `extra_body` is merged over it."""
    body = {k: v for k, v in kwargs.items() if k not in _SDK_OPTIONS}
    extra = kwargs.get("extra_body")
    return {**body, **extra} if isinstance(extra, dict) else body


def _ticket(st: _State, call: Call) -> Ticket:
    ticket = st.gate.acquire(call.key, call.ttl_seconds) if call.key else Ticket(None, "ungated")
    call.ticket = ticket
    return ticket


async def _ticket_async(st: _State, call: Call) -> Ticket:
    if call.key:
        ticket = await st.gate.acquire_async(call.key, call.ttl_seconds)
    else:
        ticket = Ticket(None, "ungated")
    call.ticket = ticket
    return ticket


# -- sync ----------------------------------------------------------------------------------------


class _Client:
    def __init__(self, client: Any, state: _State) -> None:
        self._client = client
        self._state = state
        self.messages = _Messages(client.messages, state)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def with_options(self, **kwargs: Any) -> _Client:
        return _Client(self._client.with_options(**kwargs), self._state)


class _Messages:
    def __init__(self, inner: Any, state: _State) -> None:
        self._inner = inner
        self._state = state

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def create(self, **kwargs: Any) -> Any:
        st = self._state
        call, sent = st.prepare(kwargs)
        ticket = _ticket(st, call)
        if sent.get("stream"):
            return self._create_stream(call, ticket, sent)
        with st.failing(call, ticket, sent):
            if ticket.role == "scout":  # run as a stream, to let the others go at its first byte
                with self._inner.stream(**_no_stream(sent)) as stream:
                    call.first_byte = time.time()
                    st.gate.release(ticket, ok=True)
                    message = _with_request_id(stream.get_final_message(), stream)
            else:
                message = self._inner.create(**sent)
        st.record(call, sent, message=message)
        return message

    def _create_stream(self, call: Call, ticket: Ticket, sent: dict[str, Any]) -> Any:
        st = self._state
        with st.failing(call, ticket, sent):
            raw = self._inner.create(**sent)
        call.first_byte = time.time()
        st.gate.release(ticket, ok=True)
        return _RecordedStream(raw, _recording(st, call, sent))

    def stream(self, **kwargs: Any) -> _StreamManager:
        return _StreamManager(self._inner, self._state, kwargs)


def _with_request_id(message: Any, stream: Any) -> Any:
    """A scout runs as a stream, whose final message lacks the `_request_id` that `create`
    returns carry; the caller asked for `create`, so give it one."""
    if getattr(message, "_request_id", None) is None:
        message._request_id = stream.request_id
    return message


def _no_stream(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k != "stream"}


class _StreamManager:
    """`with client.messages.stream(...) as stream:` gives the SDK's own MessageStream; the
    wrapper gates before it opens and records when it closes."""

    def __init__(self, inner: Any, state: _State, kwargs: dict[str, Any]) -> None:
        self._inner, self._state, self._kwargs = inner, state, kwargs
        self._call: Call | None = None

    def __enter__(self) -> Any:
        st = self._state
        self._call, self._sent = call, sent = st.prepare(self._kwargs)
        self._ticket = _ticket(st, call)
        self._manager = self._inner.stream(**sent)
        with st.failing(call, self._ticket, sent):
            self._stream = self._manager.__enter__()
        call.first_byte = time.time()
        st.gate.release(self._ticket, ok=True)
        return self._stream

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        assert self._call is not None
        error = exc
        usage = message_id = None
        try:
            if exc is None:
                self._stream.until_done()
            usage, message_id = _snapshot(self._stream)
        except Exception as problem:  # a broken stream is still a call to record
            error = error or problem
        self._state.record(self._call, self._sent, usage=usage, error=error, message_id=message_id)
        return self._manager.__exit__(exc_type, exc, tb)


def _snapshot(stream: Any) -> tuple[Any, str | None]:
    """The usage and id of the message a stream has assembled so far."""
    try:
        message = stream.current_message_snapshot
    except AssertionError:
        return None, None
    return message.usage, message.id


def _recording(
    st: _State, call: Call, sent: dict[str, Any]
) -> Callable[[Any, BaseException | None, str | None], None]:
    def done(usage: Any, error: BaseException | None, message_id: str | None) -> None:
        st.record(call, sent, usage=usage, error=error, message_id=message_id)

    return done


class _RecordedStream:
    """The SDK's event stream from `create(stream=True)`, passed through event by event; the
    usage of message_start and message_delta is recorded when it ends."""

    def __init__(self, raw: Any, done: Callable[[Any, BaseException | None, str | None], None]):
        self._raw = raw
        self._done = done
        self._usage: dict[str, Any] = {}
        self._id: str | None = None
        self._recorded = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def __iter__(self) -> Iterator[Any]:
        try:
            for event in self._raw:
                self._collect(event)
                yield event
        except BaseException as exc:
            self._finish(exc)
            raise
        self._finish(None)

    def __enter__(self) -> _RecordedStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._raw.close()
        self._finish(None)

    def _collect(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind == "message_start":
            self._usage = event.message.usage.model_dump(mode="json")
            self._id = event.message.id
        elif kind == "message_delta" and event.usage is not None:
            for k, v in event.usage.model_dump(mode="json").items():
                if v is not None:  # cumulative; the last non-null value is the answer
                    self._usage[k] = v

    def _finish(self, error: BaseException | None) -> None:
        if not self._recorded:
            self._recorded = True
            self._done(self._usage or None, error, self._id)


class _AsyncRecordedStream(_RecordedStream):
    """The async twin: `async for event in stream` passes the SDK's events through."""

    def __aiter__(self) -> Any:
        return self._events()

    async def _events(self) -> Any:
        try:
            async for event in self._raw:
                self._collect(event)
                yield event
        except BaseException as exc:
            self._finish(exc)
            raise
        self._finish(None)

    async def __aenter__(self) -> _AsyncRecordedStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._raw.close()
        self._finish(None)


# -- async ---------------------------------------------------------------------------------------


class _AsyncClient:
    def __init__(self, client: Any, state: _State) -> None:
        self._client = client
        self._state = state
        self.messages = _AsyncMessages(client.messages, state)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def with_options(self, **kwargs: Any) -> _AsyncClient:
        return _AsyncClient(self._client.with_options(**kwargs), self._state)


class _AsyncMessages:
    def __init__(self, inner: Any, state: _State) -> None:
        self._inner = inner
        self._state = state

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def create(self, **kwargs: Any) -> Any:
        st = self._state
        call, sent = st.prepare(kwargs)
        ticket = await _ticket_async(st, call)
        if sent.get("stream"):
            return await self._create_stream(call, ticket, sent)
        with st.failing(call, ticket, sent):
            if ticket.role == "scout":
                async with self._inner.stream(**_no_stream(sent)) as stream:
                    call.first_byte = time.time()
                    await st.gate.release_async(ticket, ok=True)
                    message = _with_request_id(await stream.get_final_message(), stream)
            else:
                message = await self._inner.create(**sent)
        st.record(call, sent, message=message)
        return message

    async def _create_stream(self, call: Call, ticket: Ticket, sent: dict[str, Any]) -> Any:
        st = self._state
        with st.failing(call, ticket, sent):
            raw = await self._inner.create(**sent)
        call.first_byte = time.time()
        await st.gate.release_async(ticket, ok=True)
        return _AsyncRecordedStream(raw, _recording(st, call, sent))

    def stream(self, **kwargs: Any) -> _AsyncStreamManager:
        return _AsyncStreamManager(self._inner, self._state, kwargs)


class _AsyncStreamManager:
    def __init__(self, inner: Any, state: _State, kwargs: dict[str, Any]) -> None:
        self._inner, self._state, self._kwargs = inner, state, kwargs
        self._call: Call | None = None

    async def __aenter__(self) -> Any:
        st = self._state
        self._call, self._sent = call, sent = st.prepare(self._kwargs)
        self._ticket = await _ticket_async(st, call)
        self._manager = self._inner.stream(**sent)
        with st.failing(call, self._ticket, sent):
            self._stream = await self._manager.__aenter__()
        call.first_byte = time.time()
        await st.gate.release_async(self._ticket, ok=True)
        return self._stream

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        assert self._call is not None
        error, usage, message_id = exc, None, None
        try:
            if exc is None:
                await self._stream.until_done()
            usage, message_id = _snapshot(self._stream)
        except Exception as problem:
            error = error or problem
        self._state.record(self._call, self._sent, usage=usage, error=error, message_id=message_id)
        return await self._manager.__aexit__(exc_type, exc, tb)
