"""A request body's shape, checked the way the API checks it, before anything is read or counted.

The API validates a body against its schema and answers the first problem with a 400
`invalid_request_error` whose message names the field in pydantic's words, the block's type
standing in the path as a segment of its own (`messages.0.content.1.text.text: Input should be a
valid string`, `tools.3.custom.input_schema: Field required`). `check_request` walks the fields in
the order the API reports them and answers the same way, so that a malformed body is a clean
`InvalidRequest` in every front end (the emulator's 400, `wrap` sending it as it is, a file's
finding), never an exception from deep inside the counting. The texts are the API's where they
were seen (docs/emulator.md lists them with their sources) and in its style where they were not.

Lenient on purpose: unknown block and tool types pass (the API adds them often, per beta).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from .catalog import Model
from .errors import InvalidRequest

__all__ = [
    "MAX_DEPTH",
    "MAX_MESSAGES",
    "NOT_JSON",
    "TOO_DEEP",
    "UNPAIRED_SURROGATE",
    "Seen",
    "check_request",
    "unpaired_surrogate",
]

# The API prefixes what its JSON parser says with this; the two reasons after it are ours.
NOT_JSON = "The request body is not valid JSON: "
UNPAIRED_SURROGATE = (
    NOT_JSON + "no low surrogate in string (a string holds an unpaired \\ud800-\\udfff escape, "
    "which is not Unicode)"
)
TOO_DEEP = NOT_JSON + "nested too deeply (some hundreds of levels at most)"
# Deeper than this is refused before anything walks the body. Ours: the API's limit is not
# published. A fixed depth answers the same on every call, where Python's recursion limit would
# pass a body from a shallow stack and fail it (a RecursionError) from a deeper one; and every
# walker after the parse (copy, strip, plan, lint) then has room under that limit.
MAX_DEPTH = 128
MAX_MESSAGES = 100_000  # "There is a limit of 100,000 messages in a single request."
MAX_TOOL_NAME = 128
MAX_TOKENS_CEILING = 2**31 - 1  # no model's output limit is near; beyond it nothing is sane
SCHEMA_INVALID = (
    "JSON schema is invalid. It must match JSON Schema draft 2020-12 "
    "(https://json-schema.org/draft/2020-12). Learn more about tool use at "
    "https://platform.claude.com/docs/en/agents-and-tools/tool-use/overview."
)
_TOOL_RESULT_BLOCKS = ("document", "image", "search_result", "text")
_DOCUMENT_CONTENT_BLOCKS = ("image", "text")
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_GEOS = ("global", "us")


@dataclass(frozen=True)
class _Tag:
    """A union's tag: in the API's dotted path (`content.0.text.text`), not in the pointer."""

    name: str


Path = tuple[str | int | _Tag, ...]


@dataclass
class Seen:
    """What the walk saw that the parser needs before it reads the messages: whether any image,
    and any enabled citations, are in them (each changes a level's prefix)."""

    images: bool = False
    citations: bool = False


def check_request(body: Mapping[str, Any], model: Model) -> Seen:
    """Raise the API's 400 for the first field of `body` whose shape it rejects; else say what
    the walk saw.

    Raises:
        InvalidRequest: naming the field (`path` is its JSON pointer).
    """
    if _deeper_than(body, MAX_DEPTH):
        raise InvalidRequest(TOO_DEEP, path="/")
    seen = Seen()
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if choice is not None:
        _object(choice, ("tool_choice",))
        if choice.get("type") not in ("auto", "any", "tool", "none"):
            _fail(("tool_choice", "type"), "Input should be 'auto', 'any', 'tool' or 'none'")
        if choice.get("type") == "tool":
            _string(
                _required(choice, "name", ("tool_choice", _Tag("tool"))),
                ("tool_choice", _Tag("tool"), "name"),
            )
    if tools is not None:
        names: set[str] = set()
        for i, tool in enumerate(_array(tools, ("tools",))):
            _tool(tool, ("tools", i), names)
    messages = _required(body, "messages", ())
    messages = _array(messages, ("messages",))
    if not messages:
        _fail(("messages",), "at least one message is required")
    if len(messages) > MAX_MESSAGES:
        _fail(("messages",), f"at most {MAX_MESSAGES:,} messages are allowed in one request")
    system_role = model.system_messages is not False
    for m in range(len(messages)):
        _message(messages, m, system_role, seen)
    _system(body.get("system"))
    _scalars(body, model)
    _tool_choice(body)  # a rule of the conversation's shape: after every field's type
    return seen


def _scalars(body: Mapping[str, Any], model: Model) -> None:
    thinking = body.get("thinking")
    if thinking is not None:
        _object(thinking, ("thinking",))
        kind = thinking.get("type")
        if kind not in ("enabled", "disabled", "adaptive"):
            _fail(("thinking", "type"), "Input should be 'enabled', 'disabled' or 'adaptive'")
        if kind == "enabled":
            _integer(
                _required(thinking, "budget_tokens", ("thinking", _Tag("enabled"))),
                ("thinking", _Tag("enabled"), "budget_tokens"),
            )
    for key in ("output_config", "context_management"):
        if body.get(key) is not None:
            _object(body[key], (key,))
    max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        _integer(max_tokens, ("max_tokens",))
        if max_tokens < 0:
            _fail(("max_tokens",), "must be greater than or equal to 0")
        if max_tokens > MAX_TOKENS_CEILING:
            _fail(
                ("max_tokens",),
                f"{max_tokens} > {MAX_TOKENS_CEILING}, which is the maximum allowed number of "
                f"output tokens for {model.id}",
            )
    metadata = body.get("metadata")
    if metadata is not None:
        _object(metadata, ("metadata",))
        for key in metadata:
            if key != "user_id":
                _fail(("metadata", key), "Extra inputs are not permitted")
        if metadata.get("user_id") is not None:
            _string(metadata["user_id"], ("metadata", "user_id"))
    stops = body.get("stop_sequences")
    if stops is not None:
        for k, stop in enumerate(_array(stops, ("stop_sequences",))):
            _string(stop, ("stop_sequences", k))
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            _number(body[key], (key,))
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        _fail(("temperature",), "range: 0..1")
    if body.get("service_tier") is not None:
        _string(body["service_tier"], ("service_tier",))
    top_k = body.get("top_k")
    if top_k is not None:
        _integer(top_k, ("top_k",))
        if top_k < 0:
            _fail(("top_k",), "must be greater than or equal to 0")
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        _fail(("stream",), "Input should be a valid boolean")
    geo = body.get("inference_geo")
    if geo is not None:
        _string(geo, ("inference_geo",))
        if geo not in _GEOS:
            _fail(("inference_geo",), "must be one of ['global', 'us']")
    speed = body.get("speed")
    if speed is not None:
        if speed not in ("standard", "fast"):
            _fail(("speed",), "Input should be 'standard' or 'fast'")
        if speed == "fast" and model.fast_mode_rejected:
            # The API's text is not published; this says what happened.
            _fail(("speed",), f"fast mode is not available on {model.id}")


def _tool_choice(body: Mapping[str, Any]) -> None:
    choice = body.get("tool_choice")
    if choice is None:
        return
    kind = choice["type"]
    if kind == "tool":
        name = choice["name"]
        tools = body.get("tools")
        names = (
            {t.get("name") for t in tools if isinstance(t, dict)}
            if isinstance(tools, list)
            else set()
        )
        if name not in names:
            _fail((), f"Tool '{name}' not found in provided tools", at=("tool_choice", "name"))
    if kind == "any" and not body.get("tools"):
        _fail(("tool_choice", _Tag("any")), "may only be specified while providing tools")


def _tool(tool: Any, path: Path, names: set[str]) -> None:
    _object(tool, path)
    kind = tool.get("type", "custom")
    _string(kind, (*path, "type"))
    where = (*path, _Tag(kind))
    name = _required(tool, "name", where)
    _string(name, (*where, "name"))
    if not name:
        _fail((*where, "name"), "String should have at least 1 character")
    if len(name) > MAX_TOOL_NAME:
        _fail((*where, "name"), f"String should have at most {MAX_TOOL_NAME} characters")
    if name in names:
        _fail(("tools",), "Tool names must be unique.", at=(*path, "name"))
    names.add(name)
    if kind != "custom":
        return  # a server tool: its own fields, which the parser only hashes
    if tool.get("description") is not None:
        _string(tool["description"], (*where, "description"))
    schema = _required(tool, "input_schema", where)
    _object(schema, (*where, "input_schema"))
    required = schema.get("required")
    properties = schema.get("properties")
    if (
        schema.get("type") != "object"
        or (properties is not None and not isinstance(properties, dict))
        or (
            required is not None
            and (not isinstance(required, list) or not all(isinstance(r, str) for r in required))
        )
    ):
        _fail((*where, "input_schema"), SCHEMA_INVALID)


def _system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    for j, block in enumerate(_array(system, ("system",))):
        _object(block, ("system", j))
        if block.get("type") != "text":
            tag = block.get("type")
            _fail(("system", j), _tag_mismatch(tag, ("text",)))
        _block(block, ("system", j), Seen(), in_system=True)


def _message(messages: Sequence[Any], m: int, system_role: bool, seen: Seen) -> None:
    path: Path = ("messages", m)
    message = messages[m]
    _object(message, path)
    role = _required(message, "role", path)
    if role == "system" and not system_role:
        _fail(
            ("messages",),
            'Unexpected role "system". The Messages API accepts a top-level `system` '
            'parameter, not "system" as an input message role.',
            at=(*path, "role"),
        )
    if role not in ("user", "assistant", "system"):
        _fail(
            ("messages",),
            f'Unexpected role "{role}". Allowed roles are "user" or "assistant"',
            at=(*path, "role"),
        )
    if "cache_control" in message:
        _fail((*path, "cache_control"), "Extra inputs are not permitted")
    content = _required(message, "content", path)
    if content in ("", []) and not (m == len(messages) - 1 and role == "assistant"):
        _fail(
            path,
            "all messages must have non-empty content except for the optional final "
            "assistant message",
            at=(*path, "content"),
        )
    if isinstance(content, str):
        return
    for b, block in enumerate(_array(content, (*path, "content"))):
        if _plain(block):
            continue
        where = (*path, "content", b)
        _object(block, where)
        if block.get("type") in ("thinking", "redacted_thinking") and role != "assistant":
            # Not seen from the API; a thinking block is the model's, never the user's.
            _fail(where, f"`{block['type']}` blocks may only appear in assistant messages")
        _block(block, where, seen)


def _plain(block: Any) -> bool:
    """The commonest valid blocks, recognised without building a path for an error message:
    text, tool_use, and tool_result with text only (most of an agent's conversation)."""
    if type(block) is not dict:
        return False
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return type(text) is str and text != "" and block.get("citations") is None
    if kind == "tool_use":
        return (
            type(block.get("id")) is str
            and type(block.get("name")) is str
            and type(block.get("input")) is dict
        )
    if kind == "tool_result":
        content = block.get("content")
        return (
            type(block.get("tool_use_id")) is str
            and block.get("is_error") in (None, True, False)
            and (
                content is None
                or type(content) is str
                or (
                    type(content) is list
                    and all(_plain(b) and b.get("type") == "text" for b in content)
                )
            )
        )
    return False


def _block(
    block: Any, path: Path, seen: Seen, *, allowed: Sequence[str] = (), in_system: bool = False
) -> None:
    """One content block, and the blocks inside it."""
    _object(block, path)
    kind = _required(block, "type", path)
    _string(kind, (*path, "type"))
    if allowed and kind not in allowed:
        _fail(path, _tag_mismatch(kind, allowed))
    here = (*path, _Tag(kind))
    if kind == "text":
        text = _required(block, "text", here)
        _string(text, (*here, "text"))
        if block.get("citations") is not None:
            _array(block["citations"], (*here, "citations"))
        if text == "" and block.get("cache_control") is None:
            # With a marker the API says so first (the engine's 400 for markers).
            level = "system" if in_system else "messages"
            _fail((level,), "text content blocks must be non-empty", at=(*path, "text"))
    elif kind == "image":
        seen.images = True
        _image_source(_required(block, "source", here), (*here, "source"))
    elif kind == "document":
        _document(block, here, seen)
    elif kind == "tool_use":
        _string(_required(block, "id", here), (*here, "id"))
        _string(_required(block, "name", here), (*here, "name"))
        _object(_required(block, "input", here), (*here, "input"))
    elif kind == "tool_result":
        _string(_required(block, "tool_use_id", here), (*here, "tool_use_id"))
        content = block.get("content")
        if content is not None and not isinstance(content, str):
            for k, inner in enumerate(_array(content, (*here, "content"))):
                _block(inner, (*here, "content", k), seen, allowed=_TOOL_RESULT_BLOCKS)
        if block.get("is_error") is not None and not isinstance(block["is_error"], bool):
            _fail((*here, "is_error"), "Input should be a valid boolean")
    elif kind == "thinking":
        _string(_required(block, "thinking", here), (*here, "thinking"))
    elif kind == "redacted_thinking":
        _string(_required(block, "data", here), (*here, "data"))
    elif kind == "search_result":
        _string(_required(block, "source", here), (*here, "source"))
        _string(_required(block, "title", here), (*here, "title"))
        content = _array(_required(block, "content", here), (*here, "content"))
        for k, inner in enumerate(content):
            _block(inner, (*here, "content", k), seen, allowed=("text",))
        _citations(block, here, seen)


def _document(block: dict[str, Any], here: Path, seen: Seen) -> None:
    source = _required(block, "source", here)
    where = (*here, "source")
    _object(source, where)
    kind = source.get("type")
    if kind in ("base64", "text"):
        data = _required(source, "data", (*where, _Tag(kind)))
        _string(data, (*where, _Tag(kind), "data"))
        if kind == "base64":
            _base64(data, (*where, _Tag(kind), "data"))
    elif kind == "content":
        content = _required(source, "content", (*where, _Tag(kind)))
        if not isinstance(content, str):
            for k, inner in enumerate(_array(content, (*where, _Tag(kind), "content"))):
                where_k = (*where, _Tag(kind), "content", k)
                _block(inner, where_k, seen, allowed=_DOCUMENT_CONTENT_BLOCKS)
    elif kind == "url":
        _string(_required(source, "url", (*where, _Tag(kind))), (*where, _Tag(kind), "url"))
    elif kind == "file":
        _string(_required(source, "file_id", (*where, _Tag(kind))), (*where, _Tag(kind), "file_id"))
    else:
        _fail(where, "Input does not match the expected shape.")
    for key in ("title", "context"):
        if block.get(key) is not None:
            _string(block[key], (*here, key))
    _citations(block, here, seen)


def _citations(block: dict[str, Any], here: Path, seen: Seen) -> None:
    citations = block.get("citations")
    if citations is None:
        return
    _object(citations, (*here, "citations"))
    enabled = citations.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        _fail((*here, "citations", "enabled"), "Input should be a valid boolean")
    seen.citations = seen.citations or bool(enabled)


def _image_source(source: Any, where: Path) -> None:
    if not isinstance(source, dict):
        _fail(where, "Input does not match the expected shape.")
    kind = source.get("type")
    if kind == "base64":
        here = (*where, _Tag("base64"))
        if source.get("media_type") not in _IMAGE_TYPES:
            types = ", ".join(f"'{t}'" for t in _IMAGE_TYPES[:-1])
            _fail((*here, "media_type"), f"Input should be {types} or '{_IMAGE_TYPES[-1]}'")
        data = _required(source, "data", here)
        _string(data, (*here, "data"))
        _base64(data, (*here, "data"))
    elif kind == "url":
        _string(_required(source, "url", (*where, _Tag(kind))), (*where, _Tag(kind), "url"))
    elif kind == "file":
        _string(_required(source, "file_id", (*where, _Tag(kind))), (*where, _Tag(kind), "file_id"))
    else:
        _fail(where, "Input does not match the expected shape.")


def _tag_mismatch(tag: Any, allowed: Sequence[str]) -> str:
    tags = ", ".join(f"'{a}'" for a in allowed)
    return f"Input tag '{tag}' found using 'type' does not match any of the expected tags: {tags}"


def _base64(data: str, path: Path) -> None:
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        _fail(path, "invalid base64 data")


def unpaired_surrogate(value: Any, pointer: str = "") -> str | None:
    """The JSON pointer of the first string (or key) holding an unpaired UTF-16 surrogate, which
    is not Unicode and which the API's JSON parser rejects; None when there is none. Only called
    once encoding has failed, so its walk costs nothing on valid bodies."""
    if isinstance(value, str):
        return None if _encodes(value) else pointer or "/"
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{pointer}/{key}"
            if not _encodes(str(key)):
                return where
            found = unpaired_surrogate(item, where)
            if found is not None:
                return found
    if isinstance(value, list):
        for k, item in enumerate(value):
            found = unpaired_surrogate(item, f"{pointer}/{k}")
            if found is not None:
                return found
    return None


# A tuple: `isinstance` with a union (`dict | list`) is twice as slow, and this runs on every node.
_CONTAINERS = (dict, list)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether objects and arrays nest more than `limit` levels: one level at a time, without
    recursion (and without a look at the strings, which are most of a body's bytes)."""
    level: list[Any] = [value]
    for _ in range(limit):
        level = [
            item
            for node in level
            for item in (node if isinstance(node, list) else node.values())
            if isinstance(item, _CONTAINERS)
        ]
        if not level:
            return False
    return True


def _encodes(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


# -- types -----------------------------------------------------------------------------------------


def _fail(path: Path, message: str, at: Path | None = None) -> NoReturn:
    """The API's 400: `message` after the dotted `path`; the JSON pointer is `at`'s, when the API
    names a containing field (`messages: Unexpected role ...`) but the problem is deeper."""
    api = ".".join(p.name if isinstance(p, _Tag) else str(p) for p in path)
    parts = [str(p) for p in (path if at is None else at) if not isinstance(p, _Tag)]
    raise InvalidRequest(f"{api}: {message}" if api else message, path="/" + "/".join(parts))


def _required(holder: Mapping[str, Any], key: str, path: Path) -> Any:
    if holder.get(key) is None:
        _fail((*path, key), "Field required")
    return holder[key]


def _object(value: Any, path: Path) -> None:
    if not isinstance(value, dict):
        _fail(path, "Input should be an object")


def _array(value: Any, path: Path) -> list[Any]:
    if not isinstance(value, list):
        _fail(path, "Input should be a valid array")
    return value


def _string(value: Any, path: Path) -> None:
    if not isinstance(value, str):
        _fail(path, "Input should be a valid string")


def _integer(value: Any, path: Path) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, "Input should be a valid integer")


def _number(value: Any, path: Path) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _fail(path, "Input should be a valid number")
