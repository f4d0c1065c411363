"""The model catalog: ids, aliases, tokenizer family, framing, cache minimums and prices, as data.

The figures live in `data/models.json`, each with its source; this module only reads them. Unknown
values stay explicit (`None`), and whoever needs one must say what it assumed instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from difflib import get_close_matches
from functools import cache
from importlib.resources import files
from typing import Any, Literal

from .errors import UnknownModel

__all__ = ["BatchLimits", "Catalog", "Framing", "Model", "Prices", "catalog", "get_model"]

PRICE_KINDS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")


@dataclass(frozen=True)
class Prices:
    """Absolute USD rates per million tokens (newer models do not read at 0.1x input)."""

    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Prices:
        return cls(**{kind: Decimal(data[kind]) for kind in PRICE_KINDS})

    def to_json(self) -> dict[str, float]:
        return {kind: float(getattr(self, kind)) for kind in PRICE_KINDS}

    def times(self, factor: Decimal) -> Prices:
        return Prices(**{kind: getattr(self, kind) * factor for kind in PRICE_KINDS})


@dataclass(frozen=True)
class PriceBand:
    """Prices that apply when the prompt (input + cache read + cache write) is at most a size."""

    max_prompt_tokens: int | None
    prices: Prices


@dataclass(frozen=True)
class Framing:
    """Tokens the API adds around the content, fitted to recorded calls (see docs/fidelity.md).

    `start` precedes everything; `system_extra` follows a system prompt; `messages_start` opens
    the first message; each later message opens with `message_separator` tokens, or
    `same_role_separator` when it has the same role as the one before; `tail` follows the last
    block and is therefore never cached. Tools: each custom definition is counted as
    `tool_template` with `{json}` replaced by the JSON of {description, name, parameters}
    (non-ASCII escaped when `tool_json_ascii`, keys sorted when `tool_json_sorted`, an empty
    description left out when `tool_omit_empty_description`); `tools_before` precedes the first
    definition, `tools_between` separates two, and `tools_after` follows the last (None: the
    pricing page's tool-use system prompt size, all before), of which `tools_after_system`
    comes after the system prompt when there is one; a request with both adds
    `tools_system_extra`. Forcing a tool adds
    `tool_choice_any_extra` / `tool_choice_tool_extra`, placed by `tool_choice_place` before the
    first message ("messages") or after the last block ("tail"), both past the system level,
    where a tool_choice change invalidates the cache; a request with a `strict` tool adds
    `strict_tools_extra` after the tools. A `tool_use` block is counted as `tool_call_template`
    ({ns}: `tool_call_ns`, {name}, {params}: one `tool_param_template` per input key with {key}
    and {value}), and the first call of a message brings `tool_calls_extra` before it (the block
    around the calls); without a template it is its name and input JSON plus `tool_use_extra`.
    `tool_result_extra` wraps each result (plus `tool_result_block_extra` per block when its
    content is a list of blocks), and each result after the first in a message costs
    `parallel_result_extra` more. Thinking turned on adds `thinking_extra` before the first
    message; a thinking block kept in the prompt costs `thinking_block_extra` over its text.
    `output_extra` is added to a reply's text count.

    A profile in `models.json` may name another in `inherits` and give only what differs.
    """

    name: str
    ctok_version: str
    start: int
    system_extra: int
    messages_start: int
    message_separator: int
    same_role_separator: int
    tail: int
    tools_before: int | None
    tools_after: int | None
    tools_between: int
    tools_after_system: int
    tools_system_extra: int
    tool_choice_any_extra: int | None
    tool_choice_tool_extra: int | None
    strict_tools_extra: int
    tool_template: str | None
    tool_json_ascii: bool
    tool_json_sorted: bool
    tool_omit_empty_description: bool
    tool_choice_place: Literal["messages", "tail"]
    tool_call_template: str | None
    tool_param_template: str | None
    tool_call_ns: str
    tool_calls_extra: int
    parallel_result_extra: int
    tool_result_block_extra: int
    tool_use_extra: int
    tool_result_extra: int
    thinking_extra: int
    thinking_block_extra: int
    output_extra: int
    calibrated: bool


@dataclass(frozen=True)
class Model:
    """One model as the cache and the bill see it."""

    id: str
    name: str
    aliases: tuple[str, ...]
    status: Literal["active", "deprecated", "retired"]
    retired_on: str | None
    tokenizer: str
    framing: Framing
    min_cacheable_tokens: int | None
    legacy_min_cacheable_tokens: int | None
    prices: Prices | None
    price_bands: tuple[PriceBand, ...]
    batch_factor: Decimal
    inference_geo_us_multiplier: Decimal | None
    fast_mode_multiplier: Decimal | None  # `speed: "fast"` prices, caching multipliers on top
    fast_mode_rejected: bool  # `speed: "fast"` is an error (elsewhere it runs at standard speed)
    tool_system_prompt_tokens: dict[str, int] | None
    keeps_thinking: str | None
    itpm_counts_cache_reads: bool
    system_messages: bool | None  # accepts `role: "system"` messages; None: not documented
    sources: dict[str, str]
    notes: tuple[str, ...]
    raw: dict[str, Any]

    @property
    def retired(self) -> bool:
        return self.status == "retired"

    def tool_frame(self, choice: str) -> tuple[int, int, int]:
        """Tokens (before the first tool, after the last, forced) that tool definitions bring
        with `tool_choice` of this type, the forced ones placed by `framing.tool_choice_place`;
        calibrated where the framing is."""
        f = self.framing
        table = self.tool_system_prompt_tokens or {}
        forced = choice in ("any", "tool")
        if f.tools_before is None or f.tools_after is None:
            auto = table.get("auto", 0)
            return auto, 0, table.get("any", auto) - auto if forced else 0
        fitted = f.tool_choice_any_extra if choice == "any" else f.tool_choice_tool_extra
        return f.tools_before, f.tools_after, (fitted or 0) if forced else 0

    def runs_at(self, speed: str | None) -> str:
        """The speed a request asking for `speed` runs at: "fast" only on a model with fast mode
        (the others run a fast request at standard speed and price)."""
        return "fast" if speed == "fast" and self.fast_mode_multiplier is not None else "standard"

    def prices_for(self, prompt_tokens: int, speed: str | None = None) -> Prices | None:
        """The prices that apply to a request whose prompt has `prompt_tokens` tokens, at the
        speed it runs at (see `runs_at`)."""
        prices = self.prices
        for band in self.price_bands:
            if band.max_prompt_tokens is None or prompt_tokens <= band.max_prompt_tokens:
                prices = band.prices
                break
        if prices is None or self.fast_mode_multiplier is None or self.runs_at(speed) != "fast":
            return prices
        return prices.times(self.fast_mode_multiplier)


@dataclass(frozen=True)
class BatchLimits:
    """What one Message Batch may hold: requests, bytes, and the form of each `custom_id`."""

    max_requests: int
    max_bytes: int
    custom_id: re.Pattern[str]


class Catalog:
    """All models, looked up by id or alias, and the API's limits that are data too."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.as_of: str = data["as_of"]
        self.default_min_cacheable_tokens: int = data["default_min_cacheable_tokens"]
        self.ttl_seconds: dict[str, int] = dict(data["ttl_seconds"])
        b = data["batches"]
        self.batches = BatchLimits(
            b["max_requests"], b["max_bytes"], re.compile(b["custom_id_pattern"])
        )
        framings = {name: _framing(name, data["framing"]) for name in data["framing"]}
        self.models: tuple[Model, ...] = tuple(_model(m, framings) for m in data["models"])
        self._by_name: dict[str, Model] = {}
        for model in self.models:
            for name in (model.id, *model.aliases):
                self._by_name[name] = model

    def get(self, name: str) -> Model:
        """The model with this id or alias.

        Raises:
            UnknownModel: no model has that id or alias; it carries the closest ones.
        """
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownModel(name, get_close_matches(name, self._by_name, n=3)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def to_json(self) -> dict[str, Any]:
        """The catalog in the shape `cachewise models --format json` prints."""
        return {"as_of": self.as_of, "models": [m.raw for m in self.models]}


def _framing(name: str, profiles: dict[str, Any], seen: tuple[str, ...] = ()) -> Framing:
    """The profile `name` with what it inherits filled in (a child gives only what differs)."""
    if name in seen:
        raise ValueError(f"models.json: framing profiles inherit in a loop: {' -> '.join(seen)}")
    fields = set(Framing.__dataclass_fields__) - {"name"}
    own = profiles[name]
    values: dict[str, Any] = {}
    if "inherits" in own:
        parent = _framing(own["inherits"], profiles, (*seen, name))
        values = {k: getattr(parent, k) for k in fields}
    values.update({k: v for k, v in own.items() if k in fields})
    missing = fields - set(values)
    if missing:
        raise ValueError(f"models.json: framing {name!r} lacks {', '.join(sorted(missing))}")
    return Framing(name=name, **values)


def _model(m: dict[str, Any], framings: dict[str, Framing]) -> Model:
    prices = Prices.from_json(m["prices"]) if m["prices"] else None
    bands = tuple(
        PriceBand(b["max_prompt_tokens"], Prices.from_json(b["prices"]) if b["prices"] else prices)  # type: ignore[arg-type]
        for b in m.get("price_bands") or ()
    )
    geo = m.get("inference_geo_us_multiplier")
    fast = m.get("fast_mode_multiplier")
    return Model(
        id=m["id"],
        name=m["name"],
        aliases=tuple(m["aliases"]),
        status=m["status"],
        retired_on=m.get("retired_on"),
        tokenizer=m["tokenizer"],
        framing=framings[m["framing"]],
        min_cacheable_tokens=m["min_cacheable_tokens"],
        legacy_min_cacheable_tokens=m.get("legacy_min_cacheable_tokens"),
        prices=prices,
        price_bands=bands,
        batch_factor=Decimal(m["batch_factor"]),
        inference_geo_us_multiplier=Decimal(geo) if geo else None,
        fast_mode_multiplier=Decimal(fast) if fast else None,
        fast_mode_rejected=bool(m.get("fast_mode_rejected")),
        tool_system_prompt_tokens=m.get("tool_system_prompt_tokens"),
        keeps_thinking=m.get("keeps_thinking"),
        itpm_counts_cache_reads=bool(m.get("itpm_counts_cache_reads")),
        system_messages=m.get("system_messages"),
        sources=dict(m.get("sources") or {}),
        notes=tuple(m.get("notes") or ()),
        raw=m,
    )


@cache
def catalog() -> Catalog:
    """The catalog shipped with cachewise."""
    text = files("cachewise").joinpath("data/models.json").read_text(encoding="utf-8")
    return Catalog(json.loads(text))


def get_model(name: str) -> Model:
    """The shipped catalog's model with this id or alias.

    Raises:
        UnknownModel: no model has that id or alias; it carries the closest ones.
    """
    return catalog().get(name)
