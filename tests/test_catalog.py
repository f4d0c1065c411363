"""The catalog holds every model of the reference's tables, as data, with unknowns explicit."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from cachewise import UnknownModel, get_model
from cachewise.catalog import Catalog, catalog

# (id or alias, minimum, input, 5m write, 1h write, read, output) from anthropic-caching.md §3-4.
TABLE = [
    ("claude-fable-5", 512, "10", "12.50", "20", "1.00", "50"),
    ("claude-mythos-5", 512, "10", "12.50", "20", "1.00", "50"),
    ("claude-opus-5", 512, "5", "6.25", "10", "0.50", "25"),
    ("claude-opus-4-8", 1024, "5", "6.25", "10", "0.50", "25"),
    ("claude-opus-4-7", 2048, "5", "6.25", "10", "0.50", "25"),
    ("claude-opus-4-6", 4096, "5", "6.25", "10", "0.50", "25"),
    ("claude-opus-4-5", 4096, "5", "6.25", "10", "0.50", "25"),
    ("claude-opus-4-5-20251101", 4096, "5", "6.25", "10", "0.50", "25"),
    ("claude-opus-4-1", 1024, "15", "18.75", "30", "1.50", "75"),
    ("claude-opus-4-20250514", 1024, "15", "18.75", "30", "1.50", "75"),
    ("claude-sonnet-5", 1024, "2", "2.50", "4", "0.20", "10"),
    ("claude-sonnet-4-6", 1024, "3", "3.75", "6", "0.30", "15"),
    ("claude-sonnet-4-5", 1024, "3", "3.75", "6", "0.30", "15"),
    ("claude-sonnet-4-0", 1024, "3", "3.75", "6", "0.30", "15"),
    ("claude-haiku-4-5", 4096, "1", "1.25", "2", "0.10", "5"),
    ("claude-3-5-haiku-20241022", 2048, "0.80", "1", "1.60", "0.08", "4"),
    ("claude-3-7-sonnet-20250219", 1024, "3", "3.75", "6", "0.30", "15"),
    ("claude-3-haiku-20240307", 2048, "0.25", "0.30", "0.50", "0.03", "1.25"),
    ("claude-3-5-sonnet-20240620", 1024, "3", "3.75", "6", "0.30", "15"),
    ("claude-3-5-sonnet-20241022", 1024, "3", "3.75", "6", "0.30", "15"),
    ("claude-fable-5-1", 512, "10", "12.50", "20", "0.25", "50"),
    ("claude-opus-5-5", None, "4", "5", "8", "0.20", "20"),
    ("claude-sonnet-5-5", None, "2", "2.50", "4", "0.10", "10"),
    ("claude-haiku-5-5", None, "0.10", "0.125", "0.20", "0.01", "0.50"),
    ("claude-fable-5-2", None, "8", "10", "16", "0.20", "40"),
]


@pytest.mark.parametrize(("name", "minimum", "inp", "w5", "w1", "read", "out"), TABLE)
def test_reference_prices_and_minimums(
    name: str, minimum: int | None, inp: str, w5: str, w1: str, read: str, out: str
) -> None:
    m = get_model(name)
    assert m.min_cacheable_tokens == minimum
    assert m.prices is not None
    assert (
        m.prices.input,
        m.prices.cache_write_5m,
        m.prices.cache_write_1h,
        m.prices.cache_read,
        m.prices.output,
    ) == tuple(map(Decimal, (inp, w5, w1, read, out)))


def test_retired_models_that_traces_contain_are_present_and_marked() -> None:
    for name in (
        "claude-3-5-sonnet-20240620",
        "claude-3-5-sonnet-20241022",
        "claude-sonnet-4-0",
        "claude-opus-4-1",
    ):
        assert get_model(name).retired


def test_aliases_resolve_to_the_pinned_id() -> None:
    assert get_model("claude-opus-4-5").id == "claude-opus-4-5-20251101"
    assert get_model("claude-sonnet-4-0").id == "claude-sonnet-4-20250514"


def test_unknown_values_are_null_with_a_note_never_guessed() -> None:
    for m in catalog().models:
        if m.min_cacheable_tokens is None:
            assert any("inimum" in n for n in m.notes), m.id
        if m.prices is None:
            assert m.notes, m.id
        assert m.sources, m.id


def test_tokenizer_families_follow_ctok() -> None:
    assert get_model("claude-opus-4-6").tokenizer == "3.0"
    assert get_model("claude-opus-4-7").tokenizer == "4.7"
    assert get_model("claude-opus-4-8").tokenizer == "4.8"
    assert get_model("claude-sonnet-5").framing.ctok_version == "4.8"


def test_unknown_model_is_an_error() -> None:
    with pytest.raises(UnknownModel):
        get_model("claude-imaginary-9")


def test_unknown_model_suggests_the_closest_ids_and_aliases() -> None:
    with pytest.raises(UnknownModel) as typo:
        get_model("claude-sonet-4-6")
    assert typo.value.suggestions[0] == "claude-sonnet-4-6"
    assert "did you mean claude-sonnet-4-6," in str(typo.value)
    with pytest.raises(UnknownModel) as alias:
        get_model("claude-opus-4.5")
    assert alias.value.suggestions[0] == "claude-opus-4-5"  # an alias is a name users type
    with pytest.raises(UnknownModel) as nothing_close:
        get_model("gpt-4o")
    assert nothing_close.value.suggestions == () and "did you mean" not in str(nothing_close.value)


def test_json_shape() -> None:
    data = json.loads(json.dumps(catalog().to_json()))
    first = data["models"][0]
    assert {"id", "aliases", "min_cacheable_tokens", "prices"} <= set(first)
    assert set(first["prices"]) == {
        "input",
        "output",
        "cache_write_5m",
        "cache_write_1h",
        "cache_read",
    }


def test_haiku_5_5_has_two_bands() -> None:
    m = get_model("claude-haiku-5-5")
    assert m.prices_for(100_000) == m.prices
    high = m.prices_for(100_001)
    assert high is not None and high.input == Decimal("0.50")


def test_message_batch_limits_are_catalog_data() -> None:
    limits = catalog().batches
    assert (limits.max_requests, limits.max_bytes) == (100_000, 256 * 1024 * 1024)
    assert limits.custom_id.fullmatch("q_" + "9" * 62)
    assert not any(limits.custom_id.fullmatch(c) for c in ("", "a" * 65, "no spaces", "a\n"))
    assert "source" in catalog().data["batches"]


def test_a_framing_profile_inherits_what_it_does_not_give() -> None:
    data = json.loads(json.dumps(catalog().data))
    data["framing"]["child"] = {"inherits": "claude-4", "tools_before": 1}
    data["models"][0]["framing"] = "child"
    child = Catalog(data).models[0].framing
    parent = catalog().get("claude-sonnet-4-5").framing
    assert child.name == "child" and child.tools_before == 1
    assert child.tools_after == parent.tools_after and child.tool_template == parent.tool_template


def test_a_framing_profile_that_lacks_a_field_is_named() -> None:
    data = json.loads(json.dumps(catalog().data))
    del data["framing"]["claude-3"]["tail"]
    with pytest.raises(ValueError, match="'claude-3' lacks tail"):
        Catalog(data)


def test_tool_framing_is_data_for_every_calibrated_tool_profile() -> None:
    for name in ("claude-4", "claude-4.0", "claude-haiku-4.5", "claude-haiku-3.5"):
        f = next(m.framing for m in catalog().models if m.framing.name == name)
        assert f.tool_template and "{json}" in f.tool_template and f.tool_call_template
        assert f.tools_before is not None and f.tools_after is not None
