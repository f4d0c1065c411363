"""Traces: reading request files and JSONL sequences, and replaying them through the engine.

A trace row is `{"started_at": seconds, "request": {...}, "workspace"?: str, "ttft_ms"?: number,
"usage"?: {...observed usage...}}`; a bare Messages API body, and a Message Batches line
`{"custom_id", "params"}`, are accepted wherever a row is. A file holds one JSON document (a body
or a row) or JSON Lines. `-` reads standard input. Rows without times run one after another, a
second apart, except Message Batches lines, which start together: a batch is one burst.
A request that carries an earlier request's answer replays after that answer (`schedule`).

Bad input stops with an `InputError` naming the file, the line and the field; nothing is guessed.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .catalog import get_model
from .causality import causal_times
from .engine import Account, Engine
from .errors import InputError, InvalidRequest, UnknownModel
from .request import Prompt, parse_request

if TYPE_CHECKING:
    from .ledger import Ledger

__all__ = [
    "DEFAULT_TTFT_MS",
    "Row",
    "Step",
    "check_models",
    "ledger_rows",
    "read_rows",
    "replay",
    "rows_from",
    "schedule",
]

# When a trace does not say how long a response took to begin, this is assumed; it decides
# whether near-simultaneous requests race for the same cold prefix.
DEFAULT_TTFT_MS = 500.0
# Rows without times are taken as sequential: each starts this long after the previous one.
SEQUENTIAL_GAP_S = 1.0


@dataclass(frozen=True)
class Row:
    """One request of a trace, with where it came from."""

    request: dict[str, Any]
    started_at: float | None = None
    workspace: str | None = None
    ttft_ms: float | None = None
    usage: dict[str, Any] | None = None
    file: str = "<memory>"
    line: int = 1
    custom_id: str | None = None  # a Message Batches line's id
    # The request already parsed, when the caller has it: replays that show a planner the same
    # history again and again would otherwise parse it again and again.
    prompt: Prompt | None = field(default=None, repr=False, compare=False)

    @property
    def output_tokens(self) -> int:
        """The output its recorded usage shows (0 when it has none): every strategy pays it."""
        return int((self.usage or {}).get("output_tokens") or 0)

    @property
    def ttft_s(self) -> float:
        """Seconds from the start to the response's first byte, when its entries turn readable."""
        return (self.ttft_ms if self.ttft_ms is not None else DEFAULT_TTFT_MS) / 1000


@dataclass(frozen=True)
class Step:
    """A row replayed: its parsed prompt, when it ran, and what the engine expects it to cost."""

    index: int
    row: Row
    prompt: Prompt
    start: float
    ready: float
    workspace: str
    account: Account | None
    error: InvalidRequest | None = None


def read_rows(path: str | Path) -> list[Row]:
    """Rows from a JSON file, a JSONL file, or `-` (standard input).

    JSON Lines are read a line at a time, so a big trace holds its rows in memory and not its
    text as well; a file whose first line is not JSON is read whole, as one JSON document (a body
    or a row written over several lines).

    Raises:
        InputError: the file cannot be read, or a line is not a request or a trace row.
    """
    name = str(path)
    rows: list[Row] = []
    lines = _lines(path)
    for number, line in lines:
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            if not rows:  # perhaps one document over several lines
                return [_row(_document(number, line, lines, exc, name), name, number)]
            raise InputError(
                f"not JSON: {exc.msg} (column {exc.colno})", file=name, line=number
            ) from None
        except RecursionError:  # Python's reader stops some hundreds of levels down
            raise InputError(
                "not JSON we read: nested too deeply", file=name, line=number
            ) from None
        rows.append(_row(data, name, number))
    if not rows:
        raise InputError("empty: expected a request body, a trace row, or JSON Lines", file=name)
    return rows


def _document(
    number: int, first: str, rest: Iterable[tuple[int, str]], error: json.JSONDecodeError, name: str
) -> Any:
    """The file read whole from its line `number` (its first that is not blank), as one JSON
    document, when that line is not JSON on its own.

    Raises:
        InputError: neither reading is JSON; the error is the one of the reading that got
            further (a body written over several lines breaks where the document does, a broken
            first line of JSON Lines where that line does), on the file's own line number.
    """
    text = first + "".join(t for _, t in rest)
    try:
        return json.loads(text)
    except RecursionError:
        raise InputError("not JSON we read: nested too deeply", file=name, line=number) from None
    except json.JSONDecodeError as whole:
        if whole.pos > len(first.rstrip()):
            error = whole
        raise InputError(
            f"not JSON: {error.msg} (column {error.colno})",
            file=name,
            line=number + error.lineno - 1,
        ) from None


def _lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """A file's lines (`-`: standard input), numbered from 1, decoded as UTF-8.

    Raises:
        InputError: it cannot be read, or a line is not UTF-8 (with the byte of the first bad one).
    """
    name = str(path)
    try:
        if name != "-":
            with Path(path).open("rb") as f:
                yield from _decoded(f, name)
        elif hasattr(sys.stdin, "buffer"):
            yield from _decoded(sys.stdin.buffer, name)
        else:  # already text (a test, or an embedding program)
            yield from enumerate(sys.stdin, 1)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=name) from None


def _decoded(f: Iterable[bytes], name: str) -> Iterator[tuple[int, str]]:
    offset = 0
    for number, raw in enumerate(f, 1):
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"not UTF-8 text (byte {offset + exc.start})", file=name, line=number
            ) from None
        offset += len(raw)


def rows_from(items: Iterable[Mapping[str, Any] | Row]) -> list[Row]:
    """Rows from bodies or row dicts already in memory (the Python API's input)."""
    out = []
    for i, item in enumerate(items, 1):
        out.append(item if isinstance(item, Row) else _row(dict(item), "<memory>", i))
    return out


def _row(data: Any, file: str, line: int) -> Row:
    if not isinstance(data, dict):
        raise InputError(
            "expected a JSON object (a request body or a trace row)", file=file, line=line
        )
    if "custom_id" in data or "params" in data:
        row = _batch_row(data, file, line)
    elif "request" in data:
        request = data["request"]
        if not isinstance(request, dict):
            raise InputError("must be an object", file=file, line=line, field="request")
        started = _number(data, "started_at", file, line)
        ttft = _number(data, "ttft_ms", file, line)
        workspace = data.get("workspace")
        if workspace is not None and not isinstance(workspace, str):
            raise InputError("must be a string", file=file, line=line, field="workspace")
        usage = data.get("usage")
        if usage is not None and not isinstance(usage, dict):
            raise InputError("must be an object", file=file, line=line, field="usage")
        row = Row(request, started, workspace, ttft, usage, file, line)
    else:
        row = Row(data, file=file, line=line)
    for key in ("model", "messages"):
        if key not in row.request:
            outer = "params." if "params" in data else "request." if "request" in data else ""
            where = outer + key
            raise InputError("a required field is missing", file=file, line=line, field=where)
    return row


def _batch_row(data: dict[str, Any], file: str, line: int) -> Row:
    custom_id, params = data.get("custom_id"), data.get("params")
    if custom_id is not None and not isinstance(custom_id, str):
        raise InputError("must be a string", file=file, line=line, field="custom_id")
    if not isinstance(params, dict):
        raise InputError("must be a Messages request object", file=file, line=line, field="params")
    return Row(
        params, _number(data, "started_at", file, line), file=file, line=line, custom_id=custom_id
    )


def _number(data: Mapping[str, Any], key: str, file: str, line: int) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InputError("must be a non-negative number", file=file, line=line, field=key)
    return float(value)


def parse_row(row: Row, model: str | None = None) -> Prompt:
    """The row's request, parsed (with `model` overriding the body's).

    Raises:
        InputError: the body is malformed or names an unknown model, located by file and line.
        UnknownModel: `model` is not in the catalog (the caller's mistake, not the row's).
    """
    if row.prompt is not None and model is None:
        return row.prompt
    body = {**row.request, "model": model} if model else row.request
    try:
        return parse_request(body)
    except InvalidRequest as exc:
        field = (exc.path or "").lstrip("/").replace("/", ".") or None
        raise InputError(exc.message, file=row.file, line=row.line, field=field) from None
    except UnknownModel as exc:
        if model:
            raise
        raise _located(exc, row) from None


def check_models(rows: Iterable[Row], model: str | None = None) -> None:
    """Stop before any work when a model is not in the catalog: `model`, which stands for every
    row's, or else each row's own. A replay would take a typo for requests the API rejects and
    bill them nothing.

    Raises:
        UnknownModel: `model` is not in the catalog.
        InputError: a row's model is not, located by file and line, with the closest names.
    """
    if model is not None:
        get_model(model)
        return
    for row in rows:
        name = row.request["model"]
        if isinstance(name, str):  # any other value is the parser's 400, not a lookup
            try:
                get_model(name)
            except UnknownModel as exc:
                raise _located(exc, row) from None


def _located(exc: UnknownModel, row: Row) -> InputError:
    field = "params.model" if row.custom_id is not None else "model"
    return InputError(str(exc), file=row.file, line=row.line, field=field)


def ledger_rows(
    ledger: Ledger, since: float | None = None, *, include_emulated: bool = False
) -> tuple[list[dict[str, Any]], int]:
    """Trace rows from the calls of a ledger that kept their prompts, oldest first, and how many
    calls had none (prompts are stored only when asked: `wrap(..., store_prompts=True)`).

    A row's `ttft_ms` is the call's time to first byte where the ledger knows it (streams and
    scouts; a plain call's first byte is not seen, and simulate assumes its default); `usage` is
    what the API reported; the workspace is the ledger's (a one-way hash of the key), which
    keeps workspaces apart. Failed calls are left out, and so are the emulator's unless
    `include_emulated`."""
    prompts = ledger.prompts(since, include_emulated=include_emulated)
    rows, missing = [], 0
    for call in ledger.calls(since, include_emulated=include_emulated):
        request = prompts.get(call.id or -1)
        if call.status != "ok":
            continue
        if request is None:
            missing += 1
            continue
        row: dict[str, Any] = {"started_at": call.started_at, "request": request}
        if call.workspace:
            row["workspace"] = call.workspace
        if call.first_byte_at is not None:
            row["ttft_ms"] = round((call.first_byte_at - call.started_at) * 1000, 3)
        if call.raw_usage:
            row["usage"] = call.raw_usage
        rows.append(row)
    return rows, missing


def start_times(rows: Sequence[Row]) -> list[float]:
    """When each row starts: its `started_at`, else a second after the row before it (with the
    row before it, for a Message Batches line)."""
    starts: list[float] = []
    for row in rows:
        if row.started_at is not None:
            starts.append(row.started_at)
        elif not starts:
            starts.append(0.0)
        else:  # a batch's lines start together; other rows one after another
            starts.append(starts[-1] + (0.0 if row.custom_id is not None else SEQUENTIAL_GAP_S))
    return starts


def schedule(rows: Sequence[Row]) -> list[tuple[float, float]]:
    """When each row starts, and when its response's first byte makes its entries readable: a
    request that carries an earlier request's answer comes after that answer (`causality`)."""
    starts, ready, _ = causal_times(rows, start_times(rows))
    return list(zip(starts, ready, strict=True))


def timeline(rows: Sequence[Row]) -> list[tuple[float, float, Row]]:
    """The rows with their start and first-byte times (`schedule`), in the order the API would
    see them: by start, a request after the one whose answer it carries."""
    return [(start, ready, rows[i]) for i, start, ready in _ordered(rows)]


def _ordered(rows: Sequence[Row]) -> list[tuple[int, float, float]]:
    starts, ready, depth = causal_times(rows, start_times(rows))
    order = sorted(range(len(rows)), key=lambda i: (starts[i], depth[i], i))
    return [(i, starts[i], ready[i]) for i in order]


def replay(
    rows: Sequence[Row],
    *,
    engine: Engine | None = None,
    model: str | None = None,
    prompts: Sequence[Prompt] | None = None,
) -> list[Step]:
    """Run rows through the engine in time order, as the API would see them.

    Rows without `started_at` follow the previous row by a second; a response begins
    `ttft_ms` (default DEFAULT_TTFT_MS) after its request starts, and a request that carries an
    earlier one's answer comes after it (`schedule`). Requests the API would reject
    are kept, with their error and no account. The default engine forgets nothing: the rows are
    all held anyway, and an entry that expired hours before a row still explains its miss.
    """
    engine = engine or Engine(retain_expired=math.inf)
    parsed = list(prompts) if prompts is not None else [parse_row(r, model) for r in rows]
    steps: dict[int, Step] = {}
    for i, start, ready in _ordered(rows):
        row, prompt = rows[i], parsed[i]
        workspace = row.workspace or "default"
        try:
            account = engine.account(prompt, now=start, workspace=workspace, ready_at=ready)
            steps[i] = Step(i, row, prompt, start, ready, workspace, account)
        except InvalidRequest as exc:
            steps[i] = Step(i, row, prompt, start, ready, workspace, None, exc)
    return [steps[i] for i in range(len(rows))]
