"""The cache's view of a Messages API request: ordered positions with hashes, tokens and markers.

A request renders as tools -> system -> messages. Each tool definition, each system block and each
content block of each message is one *position* (a string `system` or `content` is one text
position). Each position gets canonical bytes (the block without its `cache_control`, with nested
object key order kept, because the rendered prompt keeps it), a token count, and the prefix hash
of everything up to and including it. The parameters that invalidate a level are folded into the
hash where that level begins, so that changing `tool_choice` keeps the system prefix and loses the
messages prefix, as the documented invalidation table says.

Nothing here decides what the cache does: that is the engine's job. This module only describes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from .body import TTL, UNMARKABLE, markable, text_blocks
from .catalog import Catalog, Framing, Model, catalog
from .errors import InvalidRequest
from .identity import canon as _canon
from .identity import chain, plain, plain_digest, tool_digest, tool_use
from .identity import digest as _digest
from .identity import envelope as _envelope
from .tokens import (
    PDF_PAGE_TOKENS,
    UNKNOWN_IMAGE_TOKENS,
    Slot,
    Tokenizer,
    base64_image_tokens,
    base64_pdf_tokens,
    default_tokenizer,
)
from .validate import TOO_DEEP, UNPAIRED_SURROGATE, Seen, check_request, unpaired_surrogate

__all__ = [
    "Level",
    "Marker",
    "MarkerProblem",
    "Position",
    "Prompt",
    "parse_request",
    "render_tool",
    "render_tool_use",
]

Level = Literal["tools", "system", "messages"]
Segment = tuple[str, int, TTL | None]


@dataclass(frozen=True)
class Marker:
    """A `cache_control` marker: its TTL and where it sits (JSON pointer, and the API's path)."""

    ttl: TTL
    path: str
    api_path: str


@dataclass(frozen=True)
class MarkerProblem:
    """A marker the API rejects, found while parsing; the engine turns it into the API's 400."""

    kind: Literal["thinking", "empty_text", "inner_content", "bad_type", "bad_ttl", "deferred"]
    path: str
    api_path: str
    block_type: str = ""


@dataclass(slots=True)
class Position:
    """One block in cache order. Treat it as immutable: it is a plain slotted dataclass only
    because a big prompt has thousands, made on every parse, and frozen ones cost 4x to build."""

    index: int
    level: Level
    path: str
    kind: str
    tokens: int
    cumulative: int
    digest: str
    prefix_hash: str
    marker: Marker | None
    eligible: bool
    message: int | None = None


@dataclass(frozen=True)
class Prompt:
    """A parsed request: positions, totals, markers, and what the rules need to know about it."""

    model: Model
    positions: tuple[Position, ...]
    total_tokens: int
    automatic: Marker | None = None
    problems: tuple[MarkerProblem, ...] = ()
    whitespace_text: tuple[str, ...] = ()
    prewarm: bool = False
    prewarm_conflicts: tuple[str, ...] = ()
    level_params: Mapping[str, Any] = field(default_factory=dict)
    body: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def derived[T](self, name: str, make: Callable[[], T]) -> T:
        """A value computed from this prompt alone, once: a Prompt never changes, and a server
        meets the same one call after call (its reader remembers parses by the body's bytes).
        Two threads may both compute it; either result is the same."""
        known: dict[str, Any] = self.__dict__.setdefault("_derived", {})
        if name not in known:
            known[name] = make()
        return known[name]  # type: ignore[no-any-return]

    @property
    def speed(self) -> str:
        """The speed it runs at (`Model.runs_at`), as folded into the system level."""
        return str(self.level_params.get("system", {}).get("speed", "standard"))

    @property
    def markers(self) -> list[Marker]:
        return [p.marker for p in self.positions if p.marker is not None]

    def changed_params(self, other: Prompt) -> list[tuple[str, str]]:
        """The (level, parameter) pairs whose values differ from `other`'s: the parameters that
        invalidate a level from where they are folded in."""
        out = []
        for level in ("system", "messages"):
            a, b = other.level_params.get(level, {}), self.level_params.get(level, {})
            out += [(level, k) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        return out

    def remarked(self, body: Mapping[str, Any]) -> Prompt:
        """The same request with the markers `body` carries, for a `body` made from this prompt's
        by changing `cache_control` only (as every caching strategy does). Markers are no part
        of a position's identity, count or hash, so those are kept and only the markers (and the
        problems they make) are read again: a strategy's request without parsing it anew. A
        change the walk sees (the model, a parameter, the number, kinds or places of the blocks)
        is parsed in full; a change inside a block is not looked for: do not pass one.

        Raises:
            InvalidRequest: the API would reject `body`.
        """
        if body.get("model") != self.body.get("model"):
            return parse_request(body, betas=self.level_params["messages"]["betas"])
        betas = frozenset(self.level_params["messages"]["betas"])
        try:
            return _parse(body, self.model, default_tokenizer(), betas, base=self)
        except _Mismatch:
            return parse_request(body, betas=betas)

    @classmethod
    def from_segments(cls, model: Model, segments: Iterable[Segment]) -> Prompt:
        """A prompt made of opaque segments: (identity, tokens, ttl or None) each, in order.

        For scenarios and simulations that know token counts but have no text: segments with
        the same identity at the same place share a prefix, exactly like identical blocks.
        """
        builder = _Builder(model)
        for n, (identity, tokens, ttl) in enumerate(segments):
            path = f"/segments/{n}"
            marker = Marker(ttl, path, f"segments.{n}") if ttl else None
            digest = _digest("messages", identity)
            builder.add("messages", path, "segment", digest, tokens, marker, eligible=True)
        return cls(model=model, positions=tuple(builder.positions), total_tokens=builder.cumulative)


def parse_request(
    body: Mapping[str, Any],
    *,
    betas: Iterable[str] = (),
    tokenizer: Tokenizer | None = None,
    models: Catalog | None = None,
) -> Prompt:
    """Parse a Messages API request body into the cache's view of it.

    Args:
        body: the request JSON, as sent to `POST /v1/messages`.
        betas: the `anthropic-beta` header values (their set invalidates the messages level).
        tokenizer: counts content tokens; defaults to the memoized offline ctok tokenizer.
        models: the catalog to resolve `model` in; defaults to the shipped one.

    Raises:
        InvalidRequest: the body is not a request the API would accept structurally.
        UnknownModel: the model is not in the catalog.
    """
    if not isinstance(body, Mapping):
        raise InvalidRequest("request body: Input should be an object")
    model_name = body.get("model")
    if model_name is None:
        raise InvalidRequest("model: Field required", path="/model")
    if not isinstance(model_name, str):
        raise InvalidRequest("model: Input should be a valid string", path="/model")
    if not model_name:
        raise InvalidRequest("model: String should have at least 1 character", path="/model")
    model = (models or catalog()).get(model_name)
    return _parse(body, model, tokenizer or default_tokenizer(), frozenset(betas))


def _parse(
    body: Mapping[str, Any],
    model: Model,
    tokenizer: Tokenizer,
    betas: frozenset[str],
    base: Prompt | None = None,
) -> Prompt:
    try:
        seen = check_request(body, model)
        return _Parser(body, model, tokenizer, betas, seen, base).run()
    except RecursionError:
        raise InvalidRequest(TOO_DEEP, path="/") from None
    except UnicodeEncodeError:
        raise InvalidRequest(UNPAIRED_SURROGATE, path=unpaired_surrogate(body) or "/") from None


class _Builder:
    """Appends positions, chaining the prefix hash and attributing frame tokens."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.positions: list[Position] = []
        self.cumulative = 0
        self.pending_frame = 0
        self.hash = hashlib.sha256(f"model\x00{model.id}".encode()).hexdigest()

    def add(
        self,
        level: Level,
        path: str,
        kind: str,
        digest: str,
        tokens: int,
        marker: Marker | None,
        eligible: bool,
        message: int | None = None,
    ) -> None:
        """Append a position whose identity is `digest` (`_digest` of its rendered content,
        markers excluded)."""
        tokens += self.pending_frame  # frame tokens belong to the block they precede
        self.pending_frame = 0
        # The count is part of the identity, so equal prefix hashes mean equal token counts by
        # construction, whatever the frames before a block (a turn whose blocks were all dropped
        # still leaves its separator).
        self.hash = chain(self.hash, digest, tokens)
        self.cumulative += tokens
        self.positions.append(  # positional: a big prompt makes thousands, and keywords cost
            Position(
                len(self.positions),
                level,
                path,
                kind,
                tokens,
                self.cumulative,
                digest,
                self.hash,
                marker,
                eligible,
                message,
            )
        )

    def fold(self, level: str, params: Any) -> None:
        self.hash = hashlib.sha256(
            f"{self.hash}\x00{level}\x00{_canon(params)}".encode()
        ).hexdigest()


class _Mismatch(Exception):
    """The body given to `Prompt.remarked` is not its prompt's body with other markers."""


class _Parser(_Builder):
    """The walk over a body. With a `base`, a prompt of the same request whose markers alone may
    differ, the positions' identities, counts and hashes are taken from it (`Prompt.remarked`)."""

    def __init__(
        self,
        body: Mapping[str, Any],
        model: Model,
        tokenizer: Tokenizer,
        betas: frozenset[str],
        seen: Seen,
        base: Prompt | None = None,
    ) -> None:
        super().__init__(model)
        self.base = base
        self.seen = seen
        self.body = body
        self.tok = tokenizer
        self._count_block: Callable[[Hashable, Callable[[], int]], int] | None = getattr(
            tokenizer, "count_block", None
        )
        self.framing_name = model.framing.name
        self.version = model.framing.ctok_version
        self.betas = betas
        self.problems: list[MarkerProblem] = []
        self.whitespace: list[str] = []
        self.after_system = 0  # tool-use prompt tokens placed after the system prompt

    # -- the walk ------------------------------------------------------------------------------

    def run(self) -> Prompt:
        """Tools, system, then messages, each level's parameters folded in where it begins."""
        body = self.body
        tools = body.get("tools") or []
        messages = body["messages"]
        params = self._level_params(tools, messages)
        f = self.model.framing
        self.pending_frame = f.start
        forced = self._tools(tools)
        self.fold("system", params["system"])
        self._system(body.get("system"))
        self.fold("messages", params["messages"])
        # What a forced tool_choice adds is rendered past the system level (changing it keeps
        # the system prefix): before the first message, or after the last block, where a
        # recorded call shows it uncached behind a breakpoint on the last block.
        tail_forced = forced if f.tool_choice_place == "tail" else 0
        self.pending_frame += f.messages_start + forced - tail_forced
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
            # The thinking configuration is rendered into the prompt (documented); where is not
            # recorded: with the messages, whose level a thinking change invalidates.
            self.pending_frame += f.thinking_extra
        self._messages(messages)
        return self._prompt(params, tail_forced)

    def _tools(self, tools: list[Any]) -> int:
        """The tools level; returns the frame tokens a forced tool_choice adds to the messages."""
        f = self.model.framing
        live_tools = [(i, t) for i, t in enumerate(tools) if not _deferred(t)]
        for i, tool in enumerate(tools):
            if _deferred(tool) and tool.get("cache_control") is not None:
                # A deferred tool is not in the prompt: it cannot end a cached prefix.
                path = f"/tools/{i}/cache_control"
                self.problems.append(MarkerProblem("deferred", path, f"tools.{i}.cache_control"))
        choice = self.body.get("tool_choice")
        choice_type = str(choice.get("type", "auto")) if isinstance(choice, dict) else "auto"
        before, after, forced = self.model.tool_frame(choice_type) if live_tools else (0, 0, 0)
        self.pending_frame += before
        for n, (i, tool) in enumerate(live_tools):
            self.pending_frame += f.tools_between if n else 0
            marker = self._marker(tool, f"/tools/{i}", f"tools.{i}")
            if self.base is not None:
                self._as_base("tools", f"/tools/{i}", "tool", marker, True, None)
                continue
            digest = tool_digest(tool)
            tokens = self._counted(digest, partial(self._tool_tokens, tool))
            self.add("tools", f"/tools/{i}", "tool", digest, tokens, marker, eligible=True)
        system = self.body.get("system")
        if live_tools and system:
            # Recorded (3.5 Haiku): part of the tool-use prompt follows the system prompt, so a
            # system breakpoint caches less of it than a tool breakpoint leaves uncached.
            self.after_system = min(after, f.tools_after_system)
            self.pending_frame += f.tools_system_extra
        self.pending_frame += after - self.after_system
        if any(isinstance(t, dict) and t.get("strict") for _, t in live_tools):
            self.pending_frame += f.strict_tools_extra
        return forced

    def _system(self, system: Any) -> None:
        """The system level: a string is one text block (even "", unlike message content)."""
        if system is None:
            return
        blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system
        for j, block in enumerate(blocks):
            self._block("system", f"/system/{j}", f"system.{j}", block, role=None, message=None)
        if blocks:
            self.pending_frame += self.model.framing.system_extra + self.after_system

    def _messages(self, messages: list[Any]) -> None:
        """The messages level: each message's blocks, after the separator from the one before."""
        f = self.model.framing
        stripped = self._stripped_thinking(messages)
        for m, message in enumerate(messages):
            role = message["role"]
            if type(role) is not str:  # a str-valued Enum: by its value, as JSON sends it
                role = str.__str__(role)
            # The first block that stays carries the turn's start in its identity: its role, and
            # whether it follows a turn of the same role (a different separator).
            tag: str | None = role
            if m:
                same = isinstance(messages[m - 1], dict) and messages[m - 1].get("role") == role
                self.pending_frame += f.same_role_separator if same else f.message_separator
                tag = f"{role}=" if same else role
            content = text_blocks(message["content"])
            calls = results = 0
            for b, block in enumerate(content):
                path, api_path = f"/messages/{m}/content/{b}", f"messages.{m}.content.{b}"
                kind = block.get("type")
                # A message's tool calls share one calls block, whose tags are a frame before
                # the first; each tool result after a message's first costs a recorded extra.
                if kind == "tool_use" and f.tool_call_template is not None:
                    self.pending_frame += f.tool_calls_extra if not calls else 0
                    calls += 1
                elif kind == "tool_result":
                    self.pending_frame += f.parallel_result_extra if results else 0
                    results += 1
                if (m, b) not in stripped:
                    self._block("messages", path, api_path, block, role=tag, message=m)
                    tag = None
                elif block.get("cache_control") is not None:
                    # Not in the prompt, but the API still checks its marker.
                    kind = str(block.get("type"))
                    self.problems.append(
                        MarkerProblem("thinking", path, f"{api_path}.{kind}", kind)
                    )

    def _prompt(self, params: dict[str, Any], tail_forced: int = 0) -> Prompt:
        """The walk's result, once every level is in."""
        body = self.body
        total = self.cumulative + self.pending_frame + self.model.framing.tail + tail_forced
        base = self.base
        if base is not None and (
            len(self.positions) != len(base.positions)
            or total != base.total_tokens
            or params != base.level_params
        ):
            raise _Mismatch
        return Prompt(
            model=self.model,
            positions=tuple(self.positions),
            total_tokens=total,
            automatic=self._marker(body, "", "cache_control", top=True),
            problems=tuple(self.problems),
            whitespace_text=tuple(self.whitespace),
            prewarm=body.get("max_tokens") == 0,
            prewarm_conflicts=_prewarm_conflicts(body),
            level_params=params,
            body=body,
        )

    def _block(
        self,
        level: Level,
        path: str,
        api_path: str,
        block: Any,
        *,
        role: str | None,
        message: int | None,
    ) -> None:
        kind = block["type"]
        # (Checked here first: most blocks hold no marker, and this runs for every block.)
        marker = self._marker(block, path, api_path) if "cache_control" in block else None
        if kind == "text":
            text = block["text"]
            if marker and not text:
                self.problems.append(MarkerProblem("empty_text", path, api_path, kind))
                marker = None
            elif text.isspace():  # not `strip()`: that copies the text, often a big one
                self.whitespace.append(path)  # a JSON pointer, as every error's path is
        if kind in UNMARKABLE and block.get("cache_control") is not None:
            self.problems.append(MarkerProblem("thinking", path, f"{api_path}.{kind}", kind))
            marker = None
        if kind in _NESTING:
            marker = self._inner_markers(block, path, api_path) or marker
        eligible = markable(block)
        if self.base is not None:
            self._as_base(level, path, kind, marker, eligible, message)
            return
        slot: Slot = "system" if level == "system" else "user"
        count: Callable[[], int]
        if kind == "tool_use" and block.keys() <= _PLAIN_TOOL_USE_KEYS:
            # The input's JSON is both its identity and what is counted: encode it once.
            name, args = str(block.get("name", "")), _canon(block.get("input", {}))

            def count() -> int:
                return self._tool_use_tokens(block, name, args)

            digest = plain_digest(level, tool_use(role, block.get("id"), name, args))
        else:

            def count() -> int:
                return self._block_tokens(block, slot)

            # A tool result's content blocks render apart from the same text given as a string.
            suffix = (
                "\x00blocks"
                if kind == "tool_result"
                and self.model.framing.tool_result_block_extra
                and isinstance(block.get("content"), list)
                else ""
            )
            parts = plain(block, role)
            if parts is not None:
                digest = plain_digest(level, parts, suffix)
            else:
                whole = [role, _envelope(block)] if role else _envelope(block)
                digest = _digest(level, _canon(whole) + suffix)
        # An image is counted from its header by formula: nothing a memo would save.
        if kind == "image" or self._count_block is None:
            tokens = count()
        else:
            tokens = self._count_block((self.framing_name, digest), count)
        self.add(level, path, kind, digest, tokens, marker, eligible, message)

    def _as_base(
        self,
        level: Level,
        path: str,
        kind: str,
        marker: Marker | None,
        eligible: bool,
        message: int | None,
    ) -> None:
        """The base prompt's position here, with this walk's marker."""
        assert self.base is not None
        index = len(self.positions)
        if index >= len(self.base.positions):
            raise _Mismatch
        b = self.base.positions[index]
        if b.path != path or b.kind != kind:
            raise _Mismatch
        self.pending_frame = 0  # its frames are in its count already
        self.cumulative, self.hash = b.cumulative, b.prefix_hash
        marked = Position(index, level, path, kind, b.tokens, b.cumulative, b.digest, b.prefix_hash,
                          marker, eligible, message)  # fmt: skip
        self.positions.append(marked)

    def _counted(self, digest: str, count: Callable[[], int]) -> int:
        """A block's content tokens: from the tokenizer's block memo by its digest (which holds
        everything its count depends on but the framing), else counted part by part."""
        if self._count_block is None:
            return count()
        return self._count_block((self.framing_name, digest), count)

    # -- markers ---------------------------------------------------------------------------------

    def _marker(
        self, holder: Mapping[str, Any], path: str, api_path: str, *, top: bool = False
    ) -> Marker | None:
        cc = holder.get("cache_control")
        if cc is None:
            return None
        where = path + "/cache_control" if not top else "/cache_control"
        if not isinstance(cc, dict) or cc.get("type") != "ephemeral":
            self.problems.append(
                MarkerProblem(
                    "bad_type", where, f"{api_path}.type" if not top else "cache_control.type"
                )
            )
            return None
        ttl = cc.get("ttl", "5m")
        if ttl not in ("5m", "1h"):
            self.problems.append(MarkerProblem("bad_ttl", where, f"{api_path}.cache_control.ttl"))
            return None
        return Marker(ttl=ttl, path=path or "/", api_path=api_path)

    def _inner_markers(self, block: dict[str, Any], path: str, api_path: str) -> Marker | None:
        """A marker on the last inner block of tool_result/document content moves to the parent;
        one on any other inner block is rejected (release notes, 2025-05-01)."""
        kind = block["type"]
        if kind == "tool_result":
            inner, ipath, iapi = block.get("content"), f"{path}/content", f"{api_path}.content"
        elif kind == "document" and isinstance(block.get("source"), dict):
            inner = block["source"].get("content")
            ipath, iapi = f"{path}/source/content", f"{api_path}.source.content"
        else:
            return None
        if not isinstance(inner, list):
            return None
        moved = None
        for k, sub in enumerate(inner):
            if isinstance(sub, dict) and sub.get("cache_control") is not None:
                if k == len(inner) - 1:
                    moved = self._marker(sub, f"{ipath}/{k}", f"{iapi}.{k}")
                    if moved:
                        moved = Marker(moved.ttl, path, api_path)
                else:
                    self.problems.append(
                        MarkerProblem(
                            "inner_content",
                            f"{ipath}/{k}/cache_control",
                            f"{iapi}.{k}.cache_control",
                            str(sub.get("type", "")),
                        )
                    )
        return moved

    # -- tokens ----------------------------------------------------------------------------------

    def _text(self, text: str, slot: Slot = "user") -> int:
        return self.tok.count(text, self.version, slot)

    def _tool_tokens(self, tool: dict[str, Any]) -> int:
        if tool.get("type", "custom") == "custom" and "name" in tool:
            return self._text(render_tool(tool, self.model.framing))
        return self._text(_canon(_envelope(tool)))

    def _tool_use_tokens(self, block: dict[str, Any], name: str, args: str) -> int:
        """A tool call: rendered as the family's call element (one per call, parameters as
        elements; the block around a message's calls is a frame, see `_messages`), or else
        counted as its name and input JSON plus a fitted constant."""
        f = self.model.framing
        if f.tool_call_template is not None:
            return self._text(render_tool_use(block, f))
        return f.tool_use_extra + self._text(name) + self._text(args)

    def _block_tokens(self, block: dict[str, Any], slot: Slot = "user") -> int:
        kind = block["type"]
        f = self.model.framing
        if kind == "text":
            return self._text(block.get("text", ""), slot)
        if kind == "thinking":
            return f.thinking_block_extra + self._text(str(block.get("thinking", "")))
        if kind == "redacted_thinking":
            return len(str(block.get("data", ""))) // 4
        if kind == "image":
            return _image_tokens(block.get("source"))
        if kind == "document":
            return self._document_tokens(block)
        if kind == "tool_use":
            name, args = str(block.get("name", "")), _canon(block.get("input", {}))
            return self._tool_use_tokens(block, name, args)
        if kind == "tool_result":
            content = block.get("content")
            # Recorded on the Haikus: content given as blocks costs more than the same text as a
            # string, per block.
            listed = len(content) * f.tool_result_block_extra if isinstance(content, list) else 0
            return f.tool_result_extra + listed + self._content_tokens(content)
        if kind == "search_result":
            return self._text(
                f"{block.get('title', '')}\n{block.get('source', '')}"
            ) + self._content_tokens(block.get("content"))
        return self._text(_canon(_envelope(block)))

    def _content_tokens(self, content: Any) -> int:
        if content is None:
            return 0
        if isinstance(content, str):
            return self._text(content)
        total = 0
        for sub in content if isinstance(content, list) else []:
            if isinstance(sub, dict) and isinstance(sub.get("type"), str):
                total += self._block_tokens(sub)
        return total

    def _document_tokens(self, block: dict[str, Any]) -> int:
        source = block.get("source") or {}
        kind = source.get("type") if isinstance(source, dict) else None
        extra = self._text(str(block.get("title") or "")) + self._text(
            str(block.get("context") or "")
        )
        if kind == "text":
            return extra + self._text(str(source.get("data", "")))
        if kind == "content":
            return extra + self._content_tokens(source.get("content"))
        if kind == "base64":
            return extra + base64_pdf_tokens(str(source.get("data", "")))
        return extra + PDF_PAGE_TOKENS

    # -- levels and thinking ---------------------------------------------------------------------

    def _level_params(self, tools: list[Any], messages: list[Any]) -> dict[str, Any]:
        body = self.body
        types = {str(t.get("type", "custom")) for t in tools if isinstance(t, dict)}
        # Anywhere in the messages, inside tool results too; citations on documents and search
        # results alike: the validation's walk saw them.
        citations, images = self.seen.citations, self.seen.images
        output_config = dict(body.get("output_config") or {})
        output_config.setdefault("effort", "high")  # the documented default: omitting = default
        thinking = body.get("thinking") or {"type": "disabled"}
        choice = body.get("tool_choice") or {"type": "auto"}
        return {
            "system": {
                "web_search": any(t.startswith("web_search") for t in types),
                "web_fetch": any(t.startswith("web_fetch") for t in types),
                "citations": citations,
                "speed": self.model.runs_at(body.get("speed")),  # the speed it runs at
            },
            "messages": {
                "tool_choice": choice,
                "images": images,
                "thinking": thinking,
                "output_config": output_config,
                "output_format": body.get("output_format"),
                "context_management": body.get("context_management"),
                "betas": sorted(self.betas),
            },
        }

    def _stripped_thinking(self, messages: list[Any]) -> set[tuple[int, int]]:
        """Models that keep only the last turn's thinking drop earlier thinking blocks once a user
        message that is not a tool result arrives; those blocks are not part of the prompt."""
        if self.model.keeps_thinking != "last_turn":
            return set()
        last_plain_user = -1
        for m, msg in enumerate(messages):
            if isinstance(msg, dict) and msg.get("role") == "user" and not _all_tool_results(msg):
                last_plain_user = m
        return {
            (m, b)
            for m, msg in enumerate(messages[:last_plain_user])
            if isinstance(msg, dict)
            and msg.get("role") == "assistant"
            and isinstance(msg.get("content"), list)
            for b, block in enumerate(msg["content"])
            if isinstance(block, dict) and block.get("type") in UNMARKABLE
        }


def render_tool(tool: Mapping[str, Any], framing: Framing) -> str:
    """A custom tool definition as the family's tool-use prompt renders it, for counting.

    Recorded calls fit the JSON of {description, name, parameters} with Python's default
    separators, in the family's `tool_template` (one `<function>` element per tool: a request
    with one more tool costs the element's tokens more); with keys sorted at every level where
    the family sorts them (the same tool-use prompt size then fits tools whose schemas list
    `type` first and last); without an empty description where the family drops it; non-ASCII
    escaped where the family does (a long description with two emoji and three dashes wrote 17
    tokens more than unescaped). Counting only: a definition's identity keeps its key order.
    """
    description = tool.get("description", "")
    fields = {
        "description": description,
        "name": tool["name"],
        "parameters": tool.get("input_schema", {}),
    }
    if not description and framing.tool_omit_empty_description:
        del fields["description"]
    rendered = json.dumps(
        fields, ensure_ascii=framing.tool_json_ascii, sort_keys=framing.tool_json_sorted
    )
    template = framing.tool_template
    return template.replace("{json}", rendered) if template else rendered


def render_tool_use(block: Mapping[str, Any], framing: Framing) -> str:
    """A tool call as the family renders it in the prompt, for counting: the call element with
    one parameter element per input key (strings as they are, other values as JSON). Recorded
    tool rounds of four models fit it within a token, where counting the input's JSON left
    8 to 15 tokens per parameter unexplained."""
    template, param = framing.tool_call_template or "", framing.tool_param_template or ""
    ns = framing.tool_call_ns
    given = block.get("input")
    inputs = given if isinstance(given, dict) else {}
    params = "".join(
        param.replace("{ns}", ns)
        .replace("{key}", str(k))
        .replace("{value}", v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
        for k, v in inputs.items()
    )
    name = str(block.get("name", ""))
    return template.replace("{ns}", ns).replace("{name}", name).replace("{params}", params)


def _prewarm_conflicts(body: Mapping[str, Any]) -> tuple[str, ...]:
    if body.get("max_tokens") != 0:
        return ()
    found = []
    if body.get("stream"):
        found.append("stream")
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        found.append("thinking")
    output_config = body.get("output_config")
    if isinstance(output_config, dict) and output_config.get("format") is not None:
        found.append("output_config.format")
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        found.append("tool_choice")
    return tuple(found)


def _image_tokens(source: Any) -> int:
    if isinstance(source, dict) and source.get("type") == "base64":
        return base64_image_tokens(str(source.get("data", "")))
    return UNKNOWN_IMAGE_TOKENS


def _all_tool_results(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return (
        isinstance(content, list)
        and bool(content)
        and all(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
    )


_PLAIN_TOOL_USE_KEYS = frozenset({"type", "id", "name", "input", "cache_control"})
_NESTING = ("tool_result", "document")  # blocks whose inner blocks may hold markers


def _deferred(tool: Any) -> bool:
    # Deferred tools are appended later as tool_reference blocks, leaving the prefix intact.
    return isinstance(tool, dict) and tool.get("defer_loading") is True
