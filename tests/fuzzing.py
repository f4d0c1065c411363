"""Messages API bodies for fuzzing: a grammar of the API's shapes, and mutations of them.

The grammar draws requests in the API's shapes (models from the catalog, every block and tool
kind, markers of either TTL wherever a marker may go, automatic caching, the other parameters);
such a request may still break a caching rule, which is the API's 400 to give. The mutations then
break it: a wrong type at any path, a key dropped or added, a marker where none belongs, deep
nesting, a long string, a lone surrogate, NaN or infinity. `wire()` writes any of them as the
bytes a careless client sends (NaN as `NaN`, lone surrogates as `\\ud800` escapes, nesting deeper
than Python's JSON reads).

The grammar is written once against `Pick`, a handful of choices, and driven two ways: by
hypothesis (`bodies()`, which shrinks a failure to a small body) in tests/test_fuzz.py, and by
`random` (`random_body()`, many times faster) in bench/fuzz.py's long runs.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import random
import string
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from hypothesis import strategies as st

from cachewise.catalog import catalog

__all__ = ["Pick", "bodies", "nested", "paths", "random_body", "valid_bodies", "wire"]

T = TypeVar("T")
MODELS = [m.id for m in catalog().models]
MARKERS: list[dict[str, Any]] = [
    {"type": "ephemeral"},
    {"type": "ephemeral", "ttl": "5m"},
    {"type": "ephemeral", "ttl": "1h"},
]
ODD_MARKERS: list[Any] = [
    {"type": "ephemeral", "ttl": "2h"},
    {"type": "ephemeral", "ttl": math.nan},
    {"type": "ephemeral", "ttl": None},
    {"type": "ephemeral", "ttl": ["1h"]},
    {"type": "persistent"},
    {"type": ["ephemeral"]},
    {},
    "ephemeral",
    [],
    0,
    True,
]
ODD_SCALARS: list[Any] = [math.nan, math.inf, -math.inf, 2**70, -(2**63), -1, 0, 1.5, 1e308]
ODD_SCALARS += ["", " ", "\n", "\x00", True, False, None, [], {}, [[]], {"type": None}]
LONE_SURROGATES = ["\ud800", "a\udfffb", "\ud83d\u0041", "ok\ud83d\ude00\udc00", "\udbff"]
_PNG = base64.b64encode(
    bytes.fromhex("89504e470d0a1a0a0000000d49484452000000200000001008020000009dc7d3b7")
).decode()
_PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF").decode()
_WORDS = "cache prefix token ledger harbor lantern meadow orchard invoice 2026-05-01 #41 €3.50"
_WORDS += ' 日本語 ümlaut emoji😀 tab\tnew\nline "quoted" back\\slash'
_ALPHABET = string.printable + "éß中文😀\u200b\u0085\x7f"
_KEYS = ["cache_control", "type", "content", "text", "input", "source", "name", "ttl", "role"]
_SERVER_TOOLS = [
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    {"type": "web_fetch_20250910", "name": "web_fetch"},
    {"type": "bash_20250124", "name": "bash"},
    {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
    {"type": "code_execution_20250825", "name": "code_execution"},
    {"type": "memory_20250818", "name": "memory"},
]
_PROPS = [
    {"type": "string"},
    {"type": "integer"},
    {"type": "string", "enum": ["a", "b"]},
    {"type": "array", "items": {"type": "string"}},
    {"type": "object", "properties": {"x": {"type": "number"}}},
]


class Pick:
    """The grammar's choices. Hypothesis shrinks each toward its first option, its low bound,
    False and the empty string: so toward a small, plain body."""

    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any] | None, seed: int = 0):
        self._draw = draw
        self._rng = random.Random(seed)

    def one(self, options: Sequence[T]) -> T:
        if self._draw is None:
            return options[self._rng.randrange(len(options))]
        return self._draw(st.sampled_from(options))  # type: ignore[no-any-return]

    def between(self, low: int, high: int) -> int:
        if self._draw is None:
            return self._rng.randint(low, high)
        return self._draw(st.integers(low, high))  # type: ignore[no-any-return]

    def chance(self, p: float) -> bool:
        return self.between(0, 999) >= 1000 - p * 1000

    def real(self) -> float:
        if self._draw is None:
            return self._rng.random()
        return self._draw(st.floats(0, 1))  # type: ignore[no-any-return]

    def text(self) -> str:
        """Prose mostly; sometimes any characters (but no lone surrogates: a mutation's job).
        Drawn by `random`, from a fixed pool: counting a text's tokens costs once per text, and
        the tokenizer is not what is fuzzed."""
        if self._draw is None:
            return _POOL[self._rng.randrange(len(_POOL))]
        if self.chance(0.7):
            return " ".join(self.one(_WORDS.split()) for _ in range(self.between(1, 12)))
        return self._draw(st.text(min_size=1, max_size=30))  # type: ignore[no-any-return]

    def name(self) -> str:
        if self._draw is None:  # a pool again: a tool's name is counted with its definition
            return _NAMES[self._rng.randrange(len(_NAMES))]
        return self.one("abcdefgh") + "".join(
            self.one("abcxyz019_") for _ in range(self.between(0, 8))
        )

    def json(self, depth: int = 2) -> Any:
        """A small JSON value, as tool inputs and unknown fields carry."""
        kind = self.between(0, 6 if depth else 4)
        if kind == 0:
            return self.text()
        if kind == 1:
            return self.one([0, 1, -1, 7, 42, 1024, 2**31, -(2**40), 2**53 + 1])
        if kind == 2:
            return self.one([0.5, -2.25, 1e-7, 3.14159, 1e21, 123456.789])
        if kind == 3:
            return self.one([None, True, False])
        if kind == 4:
            return self.name()
        if kind == 5:
            return [self.json(depth - 1) for _ in range(self.between(0, 3))]
        return {self.name(): self.json(depth - 1) for _ in range(self.between(0, 3))}

    def odd(self) -> Any:
        """A value that does not belong wherever it lands."""
        kind = self.between(0, 6)
        if kind == 0:
            return self.json()
        if kind == 1:
            return copy.deepcopy(self.one(ODD_SCALARS))
        if kind == 2:
            return self.one(LONE_SURROGATES)
        if kind == 3:
            return copy.deepcopy(self.one(ODD_MARKERS))
        if kind == 4:
            return nested(self.between(10, 3000), "deep", self.chance(0.5))
        if kind == 5:
            # Long, but bounded (200 KB); of a few sizes, so that counting each costs once.
            return "lantern " * self.one([100, 4_000, 25_000])
        return copy.deepcopy(self.one(MARKERS))


def _pool(size: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = _WORDS.split()
    out = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) for _ in range(size)]
    for n in range(0, size, 4):  # one in four: any characters
        out[n] = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 30)))
    return out


_POOL = _pool(4096)
_NAMES = [f"{a}{b}" for a in "abcdefgh" for b in ("", "x", "_1", "zz9", "name_", "y0y")][:48]


def nested(depth: int, leaf: Any = None, dicts: bool = False) -> Any:
    """`leaf` inside `depth` arrays (or objects)."""
    for _ in range(depth):
        leaf = {"a": leaf} if dicts else [leaf]
    return leaf


# -- the grammar ---------------------------------------------------------------------------------


def _marked(p: Pick, block: dict[str, Any], chance: float = 0.3) -> dict[str, Any]:
    if p.chance(chance):
        block["cache_control"] = dict(p.one(MARKERS))
    return block


def _text(p: Pick) -> dict[str, Any]:
    return _marked(p, {"type": "text", "text": p.text()})


def _image(p: Pick) -> dict[str, Any]:
    source = p.one(
        [
            {"type": "base64", "media_type": "image/png", "data": _PNG},
            {"type": "url", "url": "https://example.com/a.png"},
            {"type": "file", "file_id": "file_01"},
        ]
    )
    return _marked(p, {"type": "image", "source": dict(source)})


def _document(p: Pick) -> dict[str, Any]:
    kind = p.between(0, 4)
    if kind == 0:
        source: dict[str, Any] = {"type": "text", "media_type": "text/plain", "data": p.text()}
    elif kind == 1:
        source = {"type": "base64", "media_type": "application/pdf", "data": _PDF}
    elif kind == 2:
        inner: Any = p.text() if p.chance(0.3) else [_text(p) for _ in range(p.between(1, 3))]
        source = {"type": "content", "content": inner}
    elif kind == 3:
        source = {"type": "url", "url": "https://example.com/a.pdf"}
    else:
        source = {"type": "file", "file_id": "file_02"}
    block: dict[str, Any] = {"type": "document", "source": source}
    if p.chance(0.3):
        block["title"] = p.text()
    if p.chance(0.3):
        block["context"] = p.text()
    if p.chance(0.3):
        block["citations"] = {"enabled": p.chance(0.5)}
    return _marked(p, block)


def _search_result(p: Pick) -> dict[str, Any]:
    block = {
        "type": "search_result",
        "source": "https://example.com/kb",
        "title": p.text(),
        "content": [_text(p) for _ in range(p.between(1, 2))],
        "citations": {"enabled": p.chance(0.5)},
    }
    return _marked(p, block)


def _tool_result(p: Pick, ids: list[str]) -> dict[str, Any]:
    kind = p.between(0, 2)
    content: Any = None if kind == 0 else p.text() if kind == 1 else []
    for _ in range(p.between(1, 3) if kind == 2 else 0):
        content.append(p.one([_text, _text, _image, _document, _search_result])(p))
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": p.one(ids or ["toolu_0"])}
    if content is not None:
        block["content"] = content
    if p.chance(0.2):
        block["is_error"] = p.chance(0.5)
    return _marked(p, block)


def _assistant_block(p: Pick, tools: list[str], n: int) -> dict[str, Any]:
    kind = p.between(0, 4)
    if kind == 0:
        return _text(p)
    if kind == 1:
        name = p.one(tools or ["lookup"])
        args = {p.name(): p.json() for _ in range(p.between(0, 3))}
        return _marked(p, {"type": "tool_use", "id": f"toolu_{n}", "name": name, "input": args})
    if kind == 2:
        return {"type": "thinking", "thinking": p.text(), "signature": "c2ln"}
    if kind == 3:
        return {"type": "redacted_thinking", "data": "cmVkYWN0ZWQ="}
    return {
        "type": "server_tool_use",
        "id": f"srvtoolu_{n}",
        "name": "web_search",
        "input": {"query": p.text()},
    }


def _user_block(p: Pick, ids: list[str]) -> dict[str, Any]:
    kind = p.between(0, 5)
    if kind <= 1:
        return _text(p)
    if kind == 2:
        return _tool_result(p, ids)
    return p.one([_image, _document, _search_result])(p)


def _tool(p: Pick) -> dict[str, Any]:
    if p.chance(0.25):
        return _marked(p, dict(p.one(_SERVER_TOOLS)))
    props = {p.name(): copy.deepcopy(p.one(_PROPS)) for _ in range(p.between(0, 3))}
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if props and p.chance(0.5):
        schema["required"] = sorted(props)[: p.between(1, len(props))]
    tool: dict[str, Any] = {"name": p.name(), "input_schema": schema}
    if p.chance(0.6):
        tool["description"] = p.text()
    if p.chance(0.15):
        tool["strict"] = True
    if p.chance(0.1):
        tool["defer_loading"] = True
    return _marked(p, tool)


def _params(p: Pick) -> dict[str, Any]:
    """The other parameters, a few at a time."""
    choices: dict[str, Callable[[], Any]] = {
        "temperature": p.real,
        "top_p": p.real,
        "top_k": lambda: p.between(0, 500),
        "stop_sequences": lambda: [p.text() for _ in range(p.between(0, 2))],
        "metadata": lambda: {"user_id": "user-7"},
        "thinking": lambda: dict(
            p.one(
                [
                    {"type": "enabled", "budget_tokens": 1024},
                    {"type": "adaptive"},
                    {"type": "disabled"},
                ]
            )
        ),
        "output_config": lambda: p.one(
            [
                {"effort": "low"},
                {"effort": "high"},
                {"format": {"type": "json_schema", "schema": {"type": "object"}}},
            ]
        ),
        "service_tier": lambda: p.one(["auto", "standard_only"]),
        "inference_geo": lambda: p.one(["global", "us"]),
        "speed": lambda: p.one(["standard", "fast"]),
        "context_management": lambda: {"edits": [{"type": "clear_tool_uses_20250919"}]},
        "cache_control": lambda: dict(p.one(MARKERS)),  # automatic caching
        "stream": lambda: p.chance(0.5),
    }
    out = {}
    for _ in range(p.between(0, 4)):
        key = p.one(sorted(choices))
        out[key] = copy.deepcopy(choices[key]())
    return out


def grammar_body(p: Pick) -> dict[str, Any]:
    """A request in the API's shapes (it may still break a caching rule)."""
    body: dict[str, Any] = {"model": p.one(MODELS), "max_tokens": p.one([1, 16, 1024, 0])}
    tools: list[dict[str, Any]] = []
    for _ in range(p.between(0, 4)):
        tool = _tool(p)
        if tool["name"] not in {t["name"] for t in tools}:
            tools.append(tool)
    if tools:
        body["tools"] = tools
        if p.chance(0.4):
            choice = p.one(["auto", "any", "tool", "none"])
            body["tool_choice"] = {"type": choice}
            if choice == "tool":
                body["tool_choice"]["name"] = p.one([t["name"] for t in tools])
            if p.chance(0.2):
                body["tool_choice"]["disable_parallel_tool_use"] = True
    if p.chance(0.5):
        body["system"] = p.text() if p.chance(0.3) else [_text(p) for _ in range(p.between(1, 3))]
    names = [t["name"] for t in tools if "input_schema" in t]
    messages: list[dict[str, Any]] = []
    ids: list[str] = []
    for n in range(p.between(1, 6)):
        role = "user" if n % 2 == 0 else "assistant"
        if p.chance(0.1):
            role = p.one(["user", "assistant"])
        if p.chance(0.25):
            messages.append({"role": role, "content": p.text()})
            continue
        size = p.between(1, 4)
        if role == "user":
            content = [_user_block(p, ids) for _ in range(size)]
        else:
            content = [_assistant_block(p, names, n * 10 + b) for b in range(size)]
            ids = [b["id"] for b in content if b["type"] == "tool_use"]
        messages.append({"role": role, "content": content})
    body["messages"] = messages
    body.update(_params(p))
    return body


# -- mutations -----------------------------------------------------------------------------------

Path = tuple[str | int, ...]


def paths(value: Any, here: Path = ()) -> Iterator[Path]:
    """Every path into `value`, itself first; not into a deep nest a mutation made."""
    yield here
    if len(here) > 12:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*here, key))
    elif isinstance(value, list):
        for k, item in enumerate(value):
            yield from paths(item, (*here, k))


def mutate(p: Pick, body: dict[str, Any]) -> Any:
    """`body` broken in one place (in place): a path's value replaced, dropped, given an extra
    key, marked, or a list item repeated; or the whole body replaced."""
    where = p.one(list(paths(body)))
    op = p.one(["replace", "replace", "drop", "extra", "mark", "repeat"])
    if not where:
        if op == "replace" and p.chance(0.2):
            return p.odd()
        where, op = (p.one(list(body)),), "replace"
    parent: Any = body
    for part in where[:-1]:
        parent = parent[part]
    key, value = where[-1], parent[where[-1]]
    if op == "replace":
        parent[key] = p.odd()
    elif op == "drop":
        del parent[key]
    elif op == "extra" and isinstance(value, dict):
        value[p.one(_KEYS) if p.chance(0.5) else p.name()] = p.odd()
    elif op == "mark" and isinstance(value, dict):
        value["cache_control"] = copy.deepcopy(p.one(MARKERS + ODD_MARKERS))
    elif op == "repeat" and isinstance(parent, list):
        parent.insert(int(key), value)  # shared: a nest may be too deep to copy
    return body


def fuzz_body(p: Pick) -> Any:
    """A body from the grammar, broken in 0 to 3 places (unbroken one time in five)."""
    body: Any = grammar_body(p)
    for _ in range(p.one([1, 0, 1, 2, 3])):
        if not isinstance(body, dict) or not body:
            break
        body = mutate(p, body)
    return body


@st.composite
def valid_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """The grammar, unbroken, for hypothesis."""
    return grammar_body(Pick(draw))


@st.composite
def bodies(draw: st.DrawFn) -> Any:
    """The grammar, broken in 0 to 3 places, for hypothesis."""
    return fuzz_body(Pick(draw))


def random_body(seed: int) -> Any:
    """The body number `seed` of a long run: the same seed, the same body."""
    return fuzz_body(Pick(None, seed))


# -- the wire ------------------------------------------------------------------------------------


def wire(value: Any) -> bytes:
    """`value` as JSON bytes the way a careless client writes it: NaN and infinity as Python's
    `json` writes them, lone surrogates as escapes, and no depth limit (an explicit stack)."""
    try:
        return json.dumps(value).encode()
    except RecursionError:
        pass
    out: list[str] = []
    stack: list[tuple[bool, Any]] = [(False, value)]
    while stack:
        literal, item = stack.pop()
        if literal:
            out.append(item)
        elif isinstance(item, dict):
            parts: list[tuple[bool, Any]] = [(True, "{")]
            for n, (k, v) in enumerate(item.items()):
                parts += [(True, ("," if n else "") + json.dumps(str(k)) + ":"), (False, v)]
            stack += reversed([*parts, (True, "}")])
        elif isinstance(item, list):
            parts = [(True, "[")]
            for n, v in enumerate(item):
                parts += [(True, ","), (False, v)] if n else [(False, v)]
            stack += reversed([*parts, (True, "]")])
        else:
            out.append(json.dumps(item))
    return "".join(out).encode()
